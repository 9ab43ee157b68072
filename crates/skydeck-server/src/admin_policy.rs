//! SkyPilot's REST admin policy: the server asks a policy service to accept,
//! mutate or reject each launch and exec.
