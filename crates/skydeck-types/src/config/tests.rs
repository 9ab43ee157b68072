//! Whole configs, as an admin writes them (YAML) or sends them (JSON).

use super::*;
use serde_json::json;

const TEAM_CONFIG: &str = r#"
api_server:
  endpoint: https://skydeck.example.com
  service_account_token: sky_abc123
  requests_retention_hours: 48
allowed_clouds: [local, kubernetes, AWS]
active_workspace: team-a
workspaces:
  default: {}
  team-a:
    private: true
    allowed_users: [alice, bob]
    aws: {disabled: true}
    kubernetes: {allowed_contexts: [ctx1]}
admin_policy:
  required_labels: [team]
  max_cpus: 16
db: postgresql://skydeck:hunter2@db/skydeck
kubernetes:
  allowed_contexts: [ctx1, ctx2]
  remote_identity: SERVICE_ACCOUNT
  provision_timeout: 900
  pod_config:
    spec:
      tolerations: [{key: gpu, operator: Exists}]
"#;

fn rejected(text: &str) -> ConfigError {
    match parse_config(text) {
        Ok(config) => panic!("accepted: {config:?}\n{text}"),
        Err(error) => error,
    }
}

#[test]
fn reads_a_team_config() {
    let config = parse_config(TEAM_CONFIG).unwrap();
    assert_eq!(config.workspace_names(), ["default", "team-a"]);
    assert_eq!(config.active_workspace(), "team-a");
    assert_eq!(
        config.allowed_clouds().unwrap(),
        ["local", "kubernetes", "aws"]
    );
    assert_eq!(config.db(), Some("postgresql://skydeck:hunter2@db/skydeck"));
    assert_eq!(
        config.get(&["api_server", "requests_retention_hours"]),
        Some(&json!(48))
    );
    assert_eq!(config.get(&["api_server", "nothing"]), None);
    let team = config.workspace("team-a").unwrap();
    assert!(team.admits("u-1", "alice", false));
    assert!(!team.admits("u-3", "mallory", false));
    assert!(matches!(
        config.admin_policy(),
        Some(AdminPolicy::Rules(rules)) if rules.max_cpus == Some(16.0)
    ));
}

#[test]
fn yaml_and_json_read_the_same() {
    let from_yaml = parse_config(TEAM_CONFIG).unwrap();
    let from_json = SkyConfig::from_json(from_yaml.as_json().clone()).unwrap();
    assert_eq!(from_json, from_yaml);
    // And back through the YAML a REST policy receives.
    assert_eq!(parse_config(&from_yaml.to_yaml()).unwrap(), from_yaml);
}

#[test]
fn empty_configs() {
    for text in ["", "  \n", "# nothing yet\n", "~\n"] {
        let config = parse_config(text).unwrap();
        assert_eq!(config.workspace_names(), ["default"], "{text:?}");
        assert_eq!(config.workspace("default"), Some(&Workspace::default()));
        assert_eq!(config.active_workspace(), "default");
        assert_eq!(config.admin_policy(), None);
        assert_eq!(config.allowed_clouds(), None);
    }
    assert_eq!(
        SkyConfig::from_json(Json::Null).unwrap(),
        SkyConfig::default()
    );
    assert_eq!(SkyConfig::default().to_yaml(), "{}\n");
}

#[test]
fn keys_with_no_value_count_as_absent() {
    let config = parse_config("kubernetes:\nworkspaces:\n  team-a:\nallowed_clouds:\n").unwrap();
    assert_eq!(config.workspace_names(), ["default", "team-a"]);
    assert_eq!(config.allowed_clouds(), None);
}

#[test]
fn the_top_level_must_be_a_mapping() {
    let error = rejected("- api_server\n- db\n");
    assert_eq!(error.path, "");
    assert_eq!(
        error.to_string(),
        "config: the top level must be a mapping of config keys such as api_server, workspaces \
         or kubernetes, got a list"
    );
    assert!(SkyConfig::from_json(json!("db: x")).is_err());
}

#[test]
fn bad_yaml_says_where() {
    let error = rejected("api_server:\n  endpoint: [unclosed\n");
    assert_eq!(error.path, "");
    assert!(error.message.starts_with("invalid YAML: "), "{error}");
    assert!(error.message.contains("line"), "{error}");
    let error = rejected("db: a\ndb: b\n");
    assert!(error.message.contains("duplicate"), "{error}");
}

#[test]
fn errors_name_the_dotted_key() {
    let error = rejected("workspaces:\n  team-a:\n    private: maybe\n");
    assert_eq!(
        error.to_string(),
        "config key `workspaces.team-a.private`: expected true or false, got \"maybe\""
    );
    let error = rejected("workspaces:\n  team-a:\n    private: \"yes\"\n");
    assert_eq!(error.path, "workspaces.team-a.private");
    assert!(
        error
            .message
            .starts_with("expected true or false, got \"yes\""),
        "{error}"
    );
    let error = rejected("kubernetes:\n  allowed_context: [a]\n");
    assert_eq!(
        error.to_string(),
        "config key `kubernetes.allowed_context`: unknown key under `kubernetes`; did you mean `allowed_contexts`?"
    );
    let error = rejected("workspace:\n  team-a: {}\n");
    assert_eq!(error.path, "workspace");
    let error = rejected("alowed_clouds: [aws]\n");
    assert_eq!(
        error.to_string(),
        "config key `alowed_clouds`: unknown key at the top level; did you mean `allowed_clouds`?"
    );
    let error = rejected("allowed_clouds: aws\n");
    assert_eq!(error.path, "allowed_clouds");
    assert!(error.message.starts_with("expected a list"), "{error}");
}

#[test]
fn workspace_names_and_the_active_workspace_are_checked() {
    let error = rejected("workspaces:\n  team a: {}\n");
    assert_eq!(error.path, "workspaces.team a");
    let error = rejected("active_workspace: team-b\nworkspaces: {team-a: {}}\n");
    assert_eq!(error.path, "active_workspace");
    assert!(error.message.contains("did you mean `team-a`?"), "{error}");
    // The legacy key is read too.
    let config = parse_config("workspace: team-a\nworkspaces: {team-a: {}}\n").unwrap();
    assert_eq!(config.active_workspace(), "team-a");
    // A workspace the config does not list may not be active, default aside.
    parse_config("active_workspace: default\n").unwrap();
}

#[test]
fn admin_policy_forms() {
    let rest = parse_config("admin_policy: https://policy.internal/apply\n").unwrap();
    assert_eq!(
        rest.admin_policy(),
        Some(&AdminPolicy::Rest {
            url: "https://policy.internal/apply".into()
        })
    );
    let error = rejected("admin_policy: example_policy.DoNothingPolicy\n");
    assert_eq!(error.path, "admin_policy");
    assert!(error.message.contains("Python policy class"), "{error}");
    let error = rejected("admin_policy: {max_gpus: 8}\n");
    assert_eq!(error.path, "admin_policy.max_gpus");
}

#[test]
fn infra_checks_combine_allowed_clouds_and_the_workspace() {
    let config = parse_config(TEAM_CONFIG).unwrap();
    config.infra_allowed("default", "local").unwrap();
    config.infra_allowed("default", "K8s").unwrap();
    config.infra_allowed("default", "aws").unwrap();
    config.infra_allowed("team-a", "kubernetes").unwrap();

    let error = config.infra_allowed("team-a", "aws").unwrap_err();
    assert_eq!(
        error,
        "infrastructure `aws` is disabled in workspace `team-a` (server config: \
         workspaces.team-a.aws.disabled: true); use other infrastructure or another \
         workspace, or ask an admin to remove that setting"
    );
    let error = config.infra_allowed("default", "gcp").unwrap_err();
    assert_eq!(
        error,
        "infrastructure `gcp` is not enabled on this server: the server config's allowed_clouds \
         lists only local, kubernetes, aws; use one of those, or ask an admin to add gcp to \
         allowed_clouds"
    );
    let error = config.infra_allowed("team-z", "local").unwrap_err();
    assert!(
        error.starts_with("workspace `team-z` is not defined"),
        "{error}"
    );
    assert!(error.contains("default, team-a"), "{error}");

    // Without allowed_clouds, only the workspace's own settings count.
    let open = parse_config("workspaces: {ws: {local: {disabled: true}}}\n").unwrap();
    open.infra_allowed("ws", "slurm").unwrap();
    assert!(open.infra_allowed("ws", "local").is_err());
    open.infra_allowed("default", "local").unwrap();
}

#[test]
fn redacted_json_hides_secrets_and_restores() {
    let config = parse_config(TEAM_CONFIG).unwrap();
    let mut shown = config.redacted_json();
    let text = shown.to_string();
    assert!(
        !text.contains("sky_abc123") && !text.contains("hunter2"),
        "{text}"
    );
    // A redacted copy saved as is is refused, not stored as a token.
    let error = SkyConfig::from_json(shown.clone()).unwrap_err();
    assert_eq!(error.path, "api_server.service_account_token");
    restore_redacted(&mut shown, config.as_json());
    assert_eq!(SkyConfig::from_json(shown).unwrap(), config);
}
