pub mod kube;
pub mod ssh_hosts;
