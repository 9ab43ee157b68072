//! Hiding secret values before a task is logged or shown to other users.
//!
//! What counts as secret follows SkyPilot's `redact_task_yaml_dict`: the
//! values under `secrets:` and the registry password in
//! `resources._docker_login_config`. A `secrets:` entry without a value is
//! a reference, kept as null so the YAML stays launchable.

use super::resources::Resources;
use super::spec::{EnvValue, TaskSpec};
use serde::Deserialize;
use serde_json::Value as Json;
use serde_yaml_ng::Value;

/// What a secret value is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Shown instead of a task YAML that cannot be read, since it might hold
/// secrets in places we cannot find.
const UNREADABLE: &str = "# (task YAML hidden: it could not be parsed to redact its secrets)\n";

impl TaskSpec {
    /// Every secret value in the task, for scrubbing logs.
    pub fn secret_values(&self) -> Vec<&str> {
        let mut values: Vec<&str> = self
            .secrets
            .values()
            .filter_map(EnvValue::as_str)
            .filter(|v| !v.is_empty())
            .collect();
        values.extend(docker_passwords(&self.resources));
        values
    }

    /// The task with every secret value replaced by `<redacted>`.
    pub fn redacted(&self) -> TaskSpec {
        let mut task = self.clone();
        for value in task.secrets.values_mut() {
            if let EnvValue::Set(secret) = value {
                *secret = REDACTED.to_owned();
            }
        }
        redact_resources(&mut task.resources);
        if let Some(Json::String(original)) = task.passthrough.get_mut("_user_specified_yaml") {
            *original = redact_task_yaml(original);
        }
        task
    }
}

fn docker_passwords(resources: &Resources) -> Vec<&str> {
    std::iter::once(resources)
        .chain(&resources.any_of)
        .chain(&resources.ordered)
        .filter_map(|r| {
            r.internal
                .get("_docker_login_config")?
                .get("password")?
                .as_str()
        })
        .filter(|p| !p.is_empty())
        .collect()
}

fn redact_resources(resources: &mut Resources) {
    redact_docker_login(resources.internal.get_mut("_docker_login_config"));
    for entry in resources
        .any_of
        .iter_mut()
        .chain(resources.ordered.iter_mut())
    {
        redact_docker_login(entry.internal.get_mut("_docker_login_config"));
    }
}

fn redact_docker_login(login: Option<&mut Json>) {
    if let Some(password) = login.and_then(|l| l.get_mut("password"))
        && !password.is_null()
    {
        *password = Json::String(REDACTED.to_owned());
    }
}

/// The task YAML text with secret values replaced by `<redacted>`. Text
/// without secrets comes back unchanged, comments and all; otherwise it is
/// re-written from the parsed documents. Text that is not YAML comes back
/// as a placeholder, since we cannot tell where its secrets are.
pub fn redact_task_yaml(text: &str) -> String {
    let mut documents = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        match Value::deserialize(document) {
            Ok(value) => documents.push(value),
            Err(_) => return UNREADABLE.to_owned(),
        }
    }
    let mut changed = false;
    for document in &mut documents {
        changed |= redact_document(document);
    }
    if !changed {
        return text.to_owned();
    }
    let mut out = String::new();
    for (i, document) in documents.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        match serde_yaml_ng::to_string(document) {
            Ok(yaml) => out.push_str(&yaml),
            Err(_) => return UNREADABLE.to_owned(),
        }
    }
    out
}

/// Redacts one parsed document in place; says whether anything changed.
fn redact_document(document: &mut Value) -> bool {
    let Value::Mapping(task) = document else {
        return false;
    };
    let mut changed = false;
    if let Some(Value::Mapping(secrets)) = task.get_mut("secrets") {
        for (key, value) in secrets.iter_mut() {
            let reference = key.as_str().is_some_and(|k| k.starts_with("secrets:"));
            if !value.is_null() && !reference && value.as_str() != Some(REDACTED) {
                *value = Value::String(REDACTED.to_owned());
                changed = true;
            }
        }
    }
    if let Some(Value::Mapping(resources)) = task.get_mut("resources") {
        changed |= redact_yaml_docker_login(resources.get_mut("_docker_login_config"));
        for key in ["any_of", "ordered"] {
            if let Some(Value::Sequence(entries)) = resources.get_mut(key) {
                for entry in entries {
                    changed |= redact_yaml_docker_login(entry.get_mut("_docker_login_config"));
                }
            }
        }
    }
    if let Some(Value::String(original)) = task.get_mut("_user_specified_yaml") {
        let redacted = redact_task_yaml(original);
        if redacted != *original {
            *original = redacted;
            changed = true;
        }
    }
    changed
}

fn redact_yaml_docker_login(login: Option<&mut Value>) -> bool {
    match login.and_then(|l| l.get_mut("password")) {
        Some(password) if !password.is_null() && password.as_str() != Some(REDACTED) => {
            *password = Value::String(REDACTED.to_owned());
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::parse_tasks;

    const WITH_SECRETS: &str = r#"name: train
envs:
  MODEL: llama
secrets:
  HF_TOKEN: hf_abc123
  WANDB_KEY: null
resources:
  _docker_login_config: {username: me, password: hunter2, server: ghcr.io}
run: echo $MODEL
_user_specified_yaml: "secrets:\n  HF_TOKEN: hf_abc123\nrun: echo\n"
"#;

    #[test]
    fn secret_values_lists_what_to_scrub() {
        let task = parse_tasks(WITH_SECRETS).unwrap().remove(0);
        assert_eq!(task.secret_values(), vec!["hf_abc123", "hunter2"]);
    }

    #[test]
    fn redacted_task_hides_every_secret() {
        let task = parse_tasks(WITH_SECRETS).unwrap().remove(0);
        let redacted = task.redacted();
        assert_eq!(redacted.secrets["HF_TOKEN"], EnvValue::Set(REDACTED.into()));
        assert_eq!(redacted.secrets["WANDB_KEY"], EnvValue::Required);
        assert_eq!(redacted.envs, task.envs);
        let yaml = redacted.to_yaml();
        assert!(!yaml.contains("hf_abc123"), "{yaml}");
        assert!(!yaml.contains("hunter2"), "{yaml}");
        assert!(redacted.secret_values().iter().all(|v| *v == REDACTED));
    }

    #[test]
    fn redacting_text() {
        let text = redact_task_yaml(WITH_SECRETS);
        assert!(!text.contains("hf_abc123"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("llama"));
        let task = parse_tasks(&text).unwrap().remove(0);
        assert_eq!(task.secrets["HF_TOKEN"], EnvValue::Set(REDACTED.into()));
        assert_eq!(task.secrets["WANDB_KEY"], EnvValue::Required);
    }

    #[test]
    fn text_without_secrets_is_untouched_and_bad_text_is_hidden() {
        let plain = "# my task\nrun: echo hi  # greet\n";
        assert_eq!(redact_task_yaml(plain), plain);
        assert_eq!(redact_task_yaml("secrets: {A: x\n"), UNREADABLE);
        let dag = "name: d\n---\nsecrets: {A: x}\nrun: a\n---\nrun: b\n";
        let redacted = redact_task_yaml(dag);
        assert_eq!(parse_tasks(&redacted).unwrap().len(), 2);
        assert!(!redacted.contains(": x"), "{redacted}");
    }
}
