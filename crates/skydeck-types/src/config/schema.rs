//! The keys of SkyPilot's `config.yaml`, after SkyPilot 0.14's config
//! schema (`sky/utils/schemas.py`, `get_config_schema`), in `Shape` form.
//!
//! Sections Skydeck reads are typed key by key; deep per-cloud options it
//! only carries along are listed by name (so a mistyped key is caught) with
//! their values accepted as given.

use super::error::ConfigError;
use super::shape::{Others, Shape};
use crate::task::{Autostop, FieldPath, INFRA_KINDS, Resources, TaskError};
use serde_json::Value as Json;

/// Clouds SkyPilot only uses for storage; `allowed_clouds` may name them.
const STORAGE_ONLY_CLOUDS: &[&str] = &["cloudflare", "coreweave"];

const ANY_MAP: Shape = Shape::Map(&[], Others::Accept);
const STRINGS: Shape = Shape::List(&Shape::Str);
const STRINGS_OR_ALL: Shape = Shape::Either(&[STRINGS, Shape::Word(&["all"])]);
const STRING_MAP: Shape = Shape::MapOf(&Shape::Str);
const DISABLED_ONLY: Shape = Shape::Map(&[("disabled", Shape::Bool)], Others::Reject);

/// The whole config.
pub(crate) const CONFIG: Shape = Shape::Map(TOP_LEVEL, Others::Infra(&ANY_MAP));

const TOP_LEVEL: &[(&str, Shape)] = &[
    ("api_server", API_SERVER),
    ("allowed_clouds", Shape::List(&INFRA_NAME)),
    ("active_workspace", Shape::Str),
    // Read by `workspace`, which also checks the names.
    ("workspaces", Shape::MapOf(&WORKSPACE)),
    (
        "workspace_config",
        Shape::Map(&[("read_access", READ_ACCESS)], Others::Reject),
    ),
    // The legacy spelling of active_workspace.
    ("workspace", Shape::Str),
    // Read and checked by `policy`.
    ("admin_policy", Shape::Any),
    ("jobs", JOBS),
    ("serve", SERVE),
    ("db", Shape::Str),
    (
        "docker",
        Shape::Map(
            &[("run_options", Shape::Either(&[Shape::Str, STRINGS]))],
            Others::Reject,
        ),
    ),
    (
        "nvidia_gpus",
        Shape::Map(&[("disable_ecc", Shape::Bool)], Others::Reject),
    ),
    (
        "provision",
        Shape::Map(
            &[("ssh_timeout", Shape::Int), ("install_conda", Shape::Bool)],
            Others::Reject,
        ),
    ),
    ("daemons", Shape::MapOf(&DAEMON)),
    ("logs", LOGS),
    (
        "data",
        Shape::Map(
            &[(
                "mount_cached",
                Shape::Map(&[("sequential_upload", Shape::Bool)], Others::Reject),
            )],
            Others::Reject,
        ),
    ),
    ("dashboard", DASHBOARD),
    ("rbac", RBAC),
    (
        "metrics",
        Shape::Map(
            &[(
                "prometheus",
                Shape::Map(
                    &[
                        ("namespace", Shape::Str),
                        ("service", Shape::Str),
                        ("port", Shape::Int),
                    ],
                    Others::Reject,
                ),
            )],
            Others::Reject,
        ),
    ),
    ("usage", ANY_MAP),
    ("plugins", ANY_MAP),
    ("kubernetes", KUBERNETES),
    ("ssh", SSH),
    ("slurm", SLURM),
    ("aws", AWS),
    ("gcp", GCP),
    ("azure", AZURE),
    (
        "oci",
        Shape::Map(&[("region_configs", ANY_MAP)], Others::Reject),
    ),
    (
        "vast",
        Shape::Map(
            &[
                ("datacenter_only", Shape::Bool),
                ("create_instance_kwargs", ANY_MAP),
                ("remote_identity", REMOTE_IDENTITY),
            ],
            Others::Reject,
        ),
    ),
    ("nebius", NEBIUS),
];

const API_SERVER: Shape = Shape::Map(
    &[
        (
            "endpoint",
            Shape::Check("an http:// or https:// URL", http_url),
        ),
        (
            "service_account_token",
            Shape::Check("a token starting with sky_, or null", service_account_token),
        ),
        ("requests_retention_hours", Shape::Int),
        ("logs_retention_hours", Shape::Int),
        ("cluster_event_retention_hours", Shape::Num),
        ("cluster_debug_event_retention_hours", Shape::Num),
        ("cluster_terminal_event_retention_hours", Shape::Num),
        ("launch_attempt_retention_hours", Shape::Num),
        ("daemon_log_max_bytes", Shape::Int),
    ],
    Others::Reject,
);

const READ_ACCESS: Shape = Shape::Word(&["allowed_users", "all"]);

/// One workspace: who may use it and, per infrastructure, whether it is
/// disabled there and with which settings.
pub(crate) const WORKSPACE: Shape = Shape::Map(
    &[
        ("private", Shape::Bool),
        ("allowed_users", STRINGS),
        ("read_access", READ_ACCESS),
        (
            "aws",
            Shape::Map(
                &[
                    ("profile", Shape::Str),
                    ("disabled", Shape::Bool),
                    ("capabilities", CAPABILITIES),
                    ("remote_identity", NAMED_REMOTE_IDENTITY),
                ],
                Others::Reject,
            ),
        ),
        (
            "gcp",
            Shape::Map(
                &[
                    ("project_id", Shape::Str),
                    ("disabled", Shape::Bool),
                    ("capabilities", CAPABILITIES),
                    ("remote_identity", REMOTE_IDENTITY),
                ],
                Others::Reject,
            ),
        ),
        (
            "ssh",
            Shape::Map(
                &[("allowed_node_pools", STRINGS), ("disabled", Shape::Bool)],
                Others::Reject,
            ),
        ),
        (
            "kubernetes",
            Shape::Map(
                &[
                    ("allowed_contexts", STRINGS_OR_ALL),
                    ("disabled", Shape::Bool),
                    ("namespace", Shape::Str),
                    ("kueue", ANY_MAP),
                    ("quota", ANY_MAP),
                    ("context_configs", Shape::MapOf(&ANY_MAP)),
                    ("remote_identity", KUBERNETES_REMOTE_IDENTITY),
                ],
                Others::Reject,
            ),
        ),
        (
            "slurm",
            Shape::Map(
                &[
                    ("disabled", Shape::Bool),
                    ("allowed_clusters", STRINGS_OR_ALL),
                    ("sbatch_options", ANY_MAP),
                    ("quota", ANY_MAP),
                    ("cluster_configs", Shape::MapOf(&ANY_MAP)),
                ],
                Others::Reject,
            ),
        ),
        (
            "nebius",
            Shape::Map(
                &[
                    ("credentials_file_path", Shape::Str),
                    ("tenant_id", Shape::Str),
                    ("domain", Shape::Str),
                    ("disabled", Shape::Bool),
                ],
                Others::Reject,
            ),
        ),
    ],
    // Every other infrastructure (Skydeck's `local` included) can only be
    // disabled.
    Others::Infra(&DISABLED_ONLY),
);

/// The managed-jobs (and serve) controller.
const CONTROLLER: Shape = Shape::Map(
    &[
        (
            "resources",
            Shape::Check("a resources mapping", controller_resources),
        ),
        ("high_availability", Shape::Bool),
        (
            "autostop",
            Shape::Check("an autostop setting", controller_autostop),
        ),
        ("consolidation_mode", Shape::Bool),
        ("controller_logs_gc_retention_hours", Shape::Int),
        ("task_logs_gc_retention_hours", Shape::Int),
    ],
    Others::Reject,
);

const BUCKET: Shape = Shape::Check("a bucket URL such as s3://my-bucket", bucket_url);

const JOBS: Shape = Shape::Map(
    &[
        ("controller", CONTROLLER),
        ("bucket", BUCKET),
        ("force_disable_cloud_bucket", Shape::Bool),
        (
            "status_check",
            Shape::Map(
                &[
                    ("min_elapsed_seconds", Shape::Num),
                    ("min_retries", Shape::Int),
                ],
                Others::Reject,
            ),
        ),
    ],
    Others::Reject,
);

const SERVE: Shape = Shape::Map(
    &[
        ("controller", CONTROLLER),
        ("bucket", BUCKET),
        ("force_disable_cloud_bucket", Shape::Bool),
    ],
    Others::Reject,
);

const DAEMON: Shape = Shape::Map(
    &[
        ("log_level", Shape::Word(&["DEBUG", "INFO", "WARNING"])),
        ("interval_seconds", Shape::Int),
    ],
    Others::Reject,
);

const LOGS: Shape = Shape::Map(
    &[
        ("store", Shape::Word(&["gcp", "aws"])),
        ("gcp", ANY_MAP),
        ("aws", ANY_MAP),
    ],
    Others::Reject,
);

const DASHBOARD: Shape = Shape::Map(
    &[(
        "external_links",
        Shape::List(&Shape::Map(
            &[
                ("label", Shape::Str),
                ("regex", Shape::Str),
                ("url", Shape::Str),
                ("scope", Shape::List(&Shape::Word(&["cluster", "jobs"]))),
            ],
            Others::Reject,
        )),
    )],
    Others::Reject,
);

const RBAC: Shape = Shape::Map(
    &[
        // SkyPilot also has `viewer`. Skydeck has no read-only role yet, and
        // reading it as `user` would give more than the admin meant.
        ("default_role", Shape::Word(&["admin", "user"])),
        ("restrict_config_to_admins", Shape::Bool),
        ("roles", Shape::MapOf(&ANY_MAP)),
    ],
    Others::Reject,
);

const CAPABILITIES: Shape = Shape::List(&Shape::Word(&["compute", "storage"]));
const REMOTE_IDENTITY: Shape = Shape::Word(&["LOCAL_CREDENTIALS", "SERVICE_ACCOUNT", "NO_UPLOAD"]);
/// AWS and Azure: a role name, or `[{cluster-glob: role}, …]` in order.
const NAMED_REMOTE_IDENTITY: Shape = Shape::Either(&[Shape::Str, Shape::List(&STRING_MAP)]);
const KUBERNETES_REMOTE_IDENTITY: Shape = Shape::Either(&[Shape::Str, STRING_MAP]);
const SSH_PROXY_COMMAND: Shape = Shape::Either(&[Shape::Str, ANY_MAP]);

/// Keys every Kubernetes context (and SSH node pool) may set.
macro_rules! context_keys {
    ($($extra:expr),* $(,)?) => {
        &[
            ("pod_config", ANY_MAP),
            ("provision_timeout", Shape::Int),
            ("max_inline_command_length", Shape::Int),
            ("custom_metadata", ANY_MAP),
            $($extra),*
        ]
    };
}

/// Keys a Kubernetes context may set, both at the top of `kubernetes:` and
/// under `context_configs.<name>`.
macro_rules! kubernetes_context_keys {
    ($($extra:expr),* $(,)?) => {
        context_keys![
            $($extra,)*
            ("allowed_nodes", ANY_MAP),
            ("rdma", ANY_MAP),
            ("networking", Shape::Word(&["portforward", "nodeport"])),
            ("ports", Shape::Word(&["loadbalancer", "ingress", "podip"])),
            ("namespace", Shape::Str),
            ("autoscaler", Shape::Str),
            ("high_availability", ANY_MAP),
            ("kueue", ANY_MAP),
            ("quota", ANY_MAP),
            ("dws", ANY_MAP),
            ("remote_identity", KUBERNETES_REMOTE_IDENTITY),
            ("post_provision_runcmd", STRINGS),
            ("apt_mirrors", STRINGS),
            (
                "set_pod_resource_limits",
                Shape::Either(&[Shape::Bool, Shape::Num])
            ),
            ("pricing", ANY_MAP),
            ("auto_mounts", Shape::List(&ANY_MAP)),
            ("enable_docker", Shape::Any),
        ]
    };
}

const KUBERNETES_CONTEXT: Shape = Shape::Map(kubernetes_context_keys![], Others::Reject);

const KUBERNETES: Shape = Shape::Map(
    kubernetes_context_keys![
        ("allowed_contexts", STRINGS_OR_ALL),
        ("context_configs", Shape::MapOf(&KUBERNETES_CONTEXT)),
    ],
    Others::Reject,
);

const SSH: Shape = Shape::Map(
    context_keys![
        ("allowed_node_pools", STRINGS),
        (
            "context_configs",
            Shape::MapOf(&Shape::Map(context_keys![], Others::Reject))
        ),
        ("remote_identity", REMOTE_IDENTITY),
    ],
    Others::Reject,
);

const SLURM: Shape = Shape::Map(
    &[
        ("allowed_clusters", STRINGS_OR_ALL),
        ("provision_timeout", Shape::Int),
        ("submit_as_user", Shape::Bool),
        ("username_map", STRING_MAP),
        ("pricing", ANY_MAP),
        ("sbatch_options", ANY_MAP),
        ("quota", ANY_MAP),
        ("gpu_partition_map", ANY_MAP),
        ("cpu_partition", Shape::Str),
        ("container_mounts", ANY_MAP),
        ("prometheus", ANY_MAP),
        ("cluster_configs", Shape::MapOf(&ANY_MAP)),
        ("remote_identity", REMOTE_IDENTITY),
    ],
    Others::Reject,
);

const AWS: Shape = Shape::Map(
    &[
        ("prioritize_reservations", Shape::Bool),
        ("specific_reservations", STRINGS),
        ("disk_encrypted", Shape::Bool),
        ("ssh_user", Shape::Str),
        ("security_group_name", NAMED_REMOTE_IDENTITY),
        ("vpc_name", Shape::Any),
        ("vpc_names", Shape::Any),
        ("subnet_names", Shape::Any),
        ("use_ssm", Shape::Bool),
        ("post_provision_runcmd", Shape::List(&Shape::Any)),
        ("enforce_tags", STRINGS),
        ("capabilities", CAPABILITIES),
        ("labels", STRING_MAP),
        ("instance_tags", STRING_MAP),
        ("use_internal_ips", Shape::Bool),
        ("ssh_proxy_command", SSH_PROXY_COMMAND),
        ("remote_identity", NAMED_REMOTE_IDENTITY),
    ],
    Others::Reject,
);

const GCP: Shape = Shape::Map(
    &[
        ("prioritize_reservations", Shape::Bool),
        ("specific_reservations", STRINGS),
        ("managed_instance_group", ANY_MAP),
        ("force_enable_external_ips", Shape::Bool),
        ("enable_gvnic", Shape::Bool),
        ("enable_gpu_direct", Shape::Bool),
        ("placement_policy", Shape::Str),
        ("vpc_name", Shape::Any),
        ("subnet_names", Shape::Any),
        ("capabilities", CAPABILITIES),
        ("labels", STRING_MAP),
        ("instance_tags", STRING_MAP),
        ("use_internal_ips", Shape::Bool),
        ("ssh_proxy_command", SSH_PROXY_COMMAND),
        ("remote_identity", REMOTE_IDENTITY),
    ],
    Others::Reject,
);

const AZURE: Shape = Shape::Map(
    &[
        ("storage_account", Shape::Str),
        ("resource_group_vm", Shape::Str),
        ("vpc_name", Shape::Any),
        ("capabilities", CAPABILITIES),
        ("labels", STRING_MAP),
        ("instance_tags", STRING_MAP),
        ("use_internal_ips", Shape::Bool),
        ("ssh_proxy_command", SSH_PROXY_COMMAND),
        ("remote_identity", NAMED_REMOTE_IDENTITY),
    ],
    Others::Reject,
);

const NEBIUS: Shape = Shape::Map(
    &[
        ("use_internal_ips", Shape::Bool),
        ("ssh_proxy_command", SSH_PROXY_COMMAND),
        ("use_static_ip_address", Shape::Bool),
        ("disk_encrypted", Shape::Bool),
        ("tenant_id", Shape::Str),
        ("domain", Shape::Str),
        ("use_personal_pricing", Shape::Bool),
        ("security_group_name", NAMED_REMOTE_IDENTITY),
        ("region_configs", Shape::MapOf(&ANY_MAP)),
        ("remote_identity", REMOTE_IDENTITY),
    ],
    Others::Reject,
);

/// An infrastructure name in `allowed_clouds`, in any case.
const INFRA_NAME: Shape = Shape::Check(
    "an infrastructure name such as aws or kubernetes",
    infra_name,
);

fn infra_name(value: &Json, path: &str) -> Result<(), ConfigError> {
    const EXPECTED: &str = "an infrastructure name such as aws, kubernetes or local";
    let Json::String(name) = value else {
        return Err(ConfigError::expected(path, EXPECTED, value));
    };
    let lower = name.to_ascii_lowercase();
    if lower == "k8s"
        || INFRA_KINDS.contains(&lower.as_str())
        || STORAGE_ONLY_CLOUDS.contains(&lower.as_str())
    {
        return Ok(());
    }
    let mut error = ConfigError::expected(path, EXPECTED, value);
    let known = INFRA_KINDS.iter().chain(STORAGE_ONLY_CLOUDS).copied();
    if let Some(near) = super::error::closest(&lower, known) {
        error.message.push_str(&format!("; did you mean `{near}`?"));
    }
    Err(error)
}

fn http_url(value: &Json, path: &str) -> Result<(), ConfigError> {
    match value {
        Json::String(url) if is_http_url(url) => Ok(()),
        _ => Err(ConfigError::expected(
            path,
            "an http:// or https:// URL",
            value,
        )),
    }
}

pub(crate) fn is_http_url(text: &str) -> bool {
    ["http://", "https://"].iter().any(|scheme| {
        text.len() > scheme.len() && text[..scheme.len()].eq_ignore_ascii_case(scheme)
    })
}

fn service_account_token(value: &Json, path: &str) -> Result<(), ConfigError> {
    match value {
        Json::Null => Ok(()),
        Json::String(token) if token.len() > 4 && token.starts_with("sky_") => Ok(()),
        Json::String(token) if token == super::REDACTED => Err(ConfigError::new(
            path,
            "still holds the <redacted> placeholder, and there is no saved token to put back; \
             give the token itself (it starts with sky_)",
        )),
        _ => Err(ConfigError::expected(
            path,
            "a token starting with sky_, or null",
            value,
        )),
    }
}

fn bucket_url(value: &Json, path: &str) -> Result<(), ConfigError> {
    const EXPECTED: &str = "a bucket URL such as s3://my-bucket (schemes https, s3, gs, r2, cos)";
    let ok = value.as_str().is_some_and(|url| {
        ["https://", "s3://", "gs://", "r2://", "cos://"]
            .iter()
            .any(|scheme| url.len() > scheme.len() && url.starts_with(scheme))
    });
    if ok {
        Ok(())
    } else {
        Err(ConfigError::expected(path, EXPECTED, value))
    }
}

/// A task error about a config value, at the same place in the config.
fn task_error(error: &TaskError) -> ConfigError {
    let mut message = error.message().to_owned();
    if let Some(suggestion) = error.suggestion() {
        message.push_str("; ");
        message.push_str(suggestion);
    }
    ConfigError::new(&error.path().to_string(), message)
}

/// The `FieldPath` of a dotted config path, so task readers report the
/// config's own key.
fn field_path(path: &str) -> FieldPath {
    path.split('.').fold(FieldPath::root(), |p, key| p.key(key))
}

fn to_yaml(value: &Json, path: &str) -> Result<serde_yaml_ng::Value, ConfigError> {
    serde_yaml_ng::to_value(value)
        .map_err(|e| ConfigError::new(path, format!("cannot be read as YAML data: {e}")))
}

fn controller_resources(value: &Json, path: &str) -> Result<(), ConfigError> {
    if !value.is_object() {
        return Err(ConfigError::expected(
            path,
            "a resources mapping (cpus, memory, infra…)",
            value,
        ));
    }
    Resources::from_yaml(&to_yaml(value, path)?, &field_path(path), false)
        .map(drop)
        .map_err(|e| task_error(&e))
}

fn controller_autostop(value: &Json, path: &str) -> Result<(), ConfigError> {
    Autostop::from_yaml(&to_yaml(value, path)?, &field_path(path))
        .map(drop)
        .map_err(|e| task_error(&e))
}

#[cfg(test)]
mod tests {
    use super::super::error::describe;
    use super::*;
    use serde_json::json;

    fn check(value: Json) -> Result<(), ConfigError> {
        CONFIG.check(&value, "")
    }

    #[test]
    fn a_full_config_passes() {
        check(json!({
            "api_server": {"endpoint": "https://sky.example.com", "service_account_token": "sky_abc",
                           "requests_retention_hours": 24},
            "allowed_clouds": ["AWS", "k8s", "local", "cloudflare"],
            "active_workspace": "default",
            "workspaces": {"default": {}, "team-a": {"private": true, "allowed_users": ["alice"],
                           "aws": {"disabled": true}, "local": {"disabled": false},
                           "kubernetes": {"allowed_contexts": ["ctx1"]}}},
            "jobs": {"controller": {"resources": {"cpus": "4+", "memory": 16}, "autostop": {"idle_minutes": 10}},
                     "bucket": "s3://bucket"},
            "serve": {"controller": {"resources": {"infra": "k8s"}}},
            "db": "postgresql://u:p@h/db",
            "kubernetes": {"allowed_contexts": "all", "remote_identity": {"ctx-*": "sa"},
                           "pod_config": {"spec": {"runtimeClassName": "nvidia"}}, "provision_timeout": 600,
                           "context_configs": {"ctx1": {"namespace": "team"}}},
            "ssh": {"allowed_node_pools": ["pool"]},
            "slurm": {"allowed_clusters": ["c1"], "sbatch_options": {"qos": "high"}},
            "aws": {"labels": {"team": "ml"}, "remote_identity": [{"prod-*": "role"}]},
            "gcp": {"enable_gvnic": true},
            "lambda": {"anything": 1},
            "runpod": {},
            "docker": {"run_options": ["--shm-size=1g"]},
            "nvidia_gpus": {"disable_ecc": true},
            "provision": {"ssh_timeout": 10},
            "daemons": {"skypilot-status-refresh-daemon": {"log_level": "debug", "interval_seconds": 60}},
            "logs": {"store": "aws", "aws": {"region": "us-east-1"}},
            "rbac": {"default_role": "user"},
            "dashboard": {"external_links": [{"label": "Grafana", "url": "https://g"}]},
            "usage": {"anything": true},
            "admin_policy": "https://policy.example.com",
        }))
        .unwrap();
    }

    #[test]
    fn mistakes_name_their_key() {
        let cases = [
            (
                json!({"api_servr": {}}),
                "api_servr",
                "did you mean `api_server`?",
            ),
            (
                json!({"jobs": {"controler": {}}}),
                "jobs.controler",
                "did you mean `controller`?",
            ),
            (
                json!({"allowed_clouds": ["aws", "gpc"]}),
                "allowed_clouds[1]",
                "did you mean `gcp`?",
            ),
            (
                json!({"api_server": {"endpoint": "sky.example.com"}}),
                "api_server.endpoint",
                "expected an http:// or https:// URL",
            ),
            (
                json!({"api_server": {"service_account_token": "abc"}}),
                "api_server.service_account_token",
                "starting with sky_",
            ),
            (
                json!({"kubernetes": {"allowed_contexts": "some"}}),
                "kubernetes.allowed_contexts",
                "expected a list of strings or one of all",
            ),
            (
                json!({"kubernetes": {"provision_timeout": "10m"}}),
                "kubernetes.provision_timeout",
                "expected a whole number",
            ),
            (
                json!({"kubernetes": {"context_configs": {"c": {"namespce": "x"}}}}),
                "kubernetes.context_configs.c.namespce",
                "did you mean `namespace`?",
            ),
            (
                json!({"workspaces": {"t": {"aws": {"disable": true}}}}),
                "workspaces.t.aws.disable",
                "did you mean `disabled`?",
            ),
            (
                json!({"workspaces": {"t": {"local": {"profile": "x"}}}}),
                "workspaces.t.local.profile",
                "the keys allowed here are disabled",
            ),
            (
                json!({"workspaces": {"t": {"privat": true}}}),
                "workspaces.t.privat",
                "did you mean `private`?",
            ),
            (
                json!({"jobs": {"controller": {"resources": {"cpu": 4}}}}),
                "jobs.controller.resources.cpu",
                "did you mean \"cpus\"?",
            ),
            (
                json!({"jobs": {"controller": {"resources": {"cpus": "many"}}}}),
                "jobs.controller.resources.cpus",
                "invalid value \"many\"",
            ),
            (
                json!({"jobs": {"controller": {"autostop": "soon"}}}),
                "jobs.controller.autostop",
                "idle minutes",
            ),
            (
                json!({"jobs": {"bucket": "my-bucket"}}),
                "jobs.bucket",
                "s3://",
            ),
            (
                json!({"rbac": {"default_role": "root"}}),
                "rbac.default_role",
                "one of admin, user",
            ),
            (
                json!({"rbac": {"default_role": "viewer"}}),
                "rbac.default_role",
                "one of admin, user",
            ),
            (json!({"db": 5}), "db", "expected a string, got 5"),
        ];
        for (config, path, hint) in cases {
            let error = check(config.clone()).expect_err(&config.to_string());
            assert_eq!(error.path, path, "{config}: {error}");
            assert!(error.message.contains(hint), "{config}: {error}");
        }
    }

    #[test]
    fn http_urls() {
        assert!(is_http_url("https://x"));
        assert!(is_http_url("HTTP://x"));
        assert!(!is_http_url("https://"));
        assert!(!is_http_url("ftp://x"));
    }

    #[test]
    fn unknown_top_level_keys_point_to_the_docs_when_nothing_is_close() {
        let error = check(json!({"frobnicate": 1})).unwrap_err();
        assert_eq!(error.path, "frobnicate");
        assert!(
            error
                .message
                .starts_with("unknown key at the top level; see https://docs.skypilot.co"),
            "{error}"
        );
    }

    #[test]
    fn task_readers_describe_the_value() {
        let error = controller_resources(&json!([1]), "jobs.controller.resources").unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "expected a resources mapping (cpus, memory, infra…), got {}",
                describe(&json!([1]))
            )
        );
    }
}
