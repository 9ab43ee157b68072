//! The admin policy applied to a launch or exec before anything runs: the
//! task (and, for launch, its autostop) may come back changed, or the
//! request is refused with the policy's reason.

use super::RequestContext;
use crate::admin_policy::{self, PolicyError, PolicyInput, PolicyUser};
use crate::skypilot::exception;
use skydeck_types::RequestError;
use skydeck_types::config::{AdminPolicy, PolicyRequestOptions};
use skydeck_types::task::{EnvValue, REDACTED, TaskDag, parse_dag, redact_task_yaml};
use skydeck_types::version::{API_VERSION, SKYPILOT_COMPAT_VERSION};
use std::sync::OnceLock;

/// The task and request options a request goes on with.
pub struct Policed {
    pub task_yaml: String,
    pub options: Option<PolicyRequestOptions>,
}

/// Runs the configured policy, if any, on `task_yaml` (the original, with
/// its secrets). `request_name` is SkyPilot's: `launch`, `exec`…
pub async fn police(
    ctx: &RequestContext,
    request_name: &str,
    task_yaml: String,
    options: Option<PolicyRequestOptions>,
) -> Result<Policed, RequestError> {
    let Some(policy) = ctx.config.admin_policy() else {
        return Ok(Policed { task_yaml, options });
    };
    let user = ctx.store.get_user(&ctx.user_id).await.ok().flatten();
    // A policy service is someone else's code: it sees the task with its
    // secrets redacted, and they are put back into what it returns.
    let remote = matches!(policy, AdminPolicy::Rest { .. });
    let input = PolicyInput {
        task_yaml: if remote {
            redact_task_yaml(&task_yaml)
        } else {
            task_yaml.clone()
        },
        config_yaml: serde_yaml_ng::to_string(&ctx.config.redacted_json())
            .expect("JSON values serialize to YAML"),
        request_name: request_name.to_owned(),
        request_options: options,
        user: Some(PolicyUser {
            id: ctx.user_id.clone(),
            name: user.map_or_else(|| ctx.user_id.clone(), |u| u.name),
        }),
        client_api_version: Some(API_VERSION),
        client_version: Some(SKYPILOT_COMPAT_VERSION.to_owned()),
    };
    let output = admin_policy::apply_policy(policy, http(), ctx.policy_timeout, &input)
        .await
        .map_err(|err| {
            let kind = match err {
                PolicyError::Rejected { .. } => exception::REJECTED_BY_POLICY,
                PolicyError::Failed { .. } => exception::POLICY_FAILED,
            };
            RequestError::new(kind, err.to_string())
        })?;
    for note in &output.notes {
        ctx.log.line(&format!("Admin policy: {note}"));
    }
    let task_yaml = if remote && output.task_yaml != input.task_yaml {
        restore_secrets(&output.task_yaml, &task_yaml)?
    } else if remote {
        task_yaml
    } else {
        output.task_yaml
    };
    Ok(Policed {
        task_yaml,
        options: output.request_options,
    })
}

/// `returned` with each secret still `<redacted>` set back to its value in
/// `original` (matched by task position and name).
fn restore_secrets(returned: &str, original: &str) -> Result<String, RequestError> {
    let unreadable = |err: skydeck_types::task::TaskError| {
        RequestError::new(
            exception::POLICY_FAILED,
            format!("The admin policy returned a task that cannot be read: {err}"),
        )
    };
    let mut dag: TaskDag = parse_dag(returned).map_err(unreadable)?;
    let source = parse_dag(original).map_err(unreadable)?;
    for (task, before) in dag.tasks.iter_mut().zip(&source.tasks) {
        for (name, value) in task.secrets.iter_mut() {
            if value.as_str() == Some(REDACTED)
                && let Some(secret) = before.secrets.get(name)
            {
                *value = secret.clone();
            }
        }
    }
    let restored_all = dag
        .tasks
        .iter()
        .flat_map(|t| t.secrets.values())
        .all(|v| !matches!(v, EnvValue::Set(s) if s == REDACTED));
    if !restored_all {
        return Err(RequestError::new(
            exception::POLICY_FAILED,
            "The admin policy returned a task with a redacted secret Skydeck cannot restore \
             (it renamed or added a secret).",
        ));
    }
    Ok(if dag.tasks.len() == 1 && dag.name.is_none() {
        dag.tasks[0].to_yaml()
    } else {
        dag.to_yaml()
    })
}

fn http() -> &'static reqwest::Client {
    static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
    HTTP.get_or_init(|| admin_policy::http_client().expect("an HTTP client can be built"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_redacted_for_a_policy_are_restored_in_what_it_returns() {
        let original = "run: echo hi\nsecrets:\n  TOKEN: abc123\n";
        let returned =
            "run: echo hi\nsecrets:\n  TOKEN: <redacted>\nresources:\n  labels:\n    team: ml\n";
        let restored = restore_secrets(returned, original).unwrap();
        assert!(restored.contains("abc123"), "{restored}");
        assert!(restored.contains("team"), "{restored}");

        let renamed = "run: echo hi\nsecrets:\n  OTHER: <redacted>\n";
        assert!(restore_secrets(renamed, original).is_err());
    }
}
