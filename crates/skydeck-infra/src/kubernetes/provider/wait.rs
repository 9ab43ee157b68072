//! Reading a pod's status as SkyPilot's `_wait_for_pods_to_schedule` and
//! `_wait_for_pods_to_run` do: what is fatal at once (an image that cannot
//! be pulled, a crashing container, a deleted pod), what only a timeout
//! makes fatal (not scheduled), and when it is ready. Pure, unit-tested.

use k8s_openapi::api::core::v1::Pod;

/// Container waiting reasons that mean the image will not come.
const IMAGE_FAILURES: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
];
/// Waiting reasons that are only progress.
const PROGRESS: &[&str] = &["ContainerCreating", "PodInitializing"];

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Running, every container running; its IP.
    Ready { ip: String },
    /// Not there yet. `scheduled`: placed on a node; `why`: the
    /// scheduler's message while it is not.
    Waiting {
        scheduled: bool,
        why: Option<String>,
    },
    /// It will never run: why.
    Failed(String),
}

/// What pod `pod` (node of cluster, image `image`) is now.
pub fn verdict(pod: &Pod) -> Verdict {
    let name = pod.metadata.name.clone().unwrap_or_default();
    if pod.metadata.deletion_timestamp.is_some() {
        return Verdict::Failed(format!("pod {name} is being deleted"));
    }
    let Some(status) = &pod.status else {
        return Verdict::Waiting {
            scheduled: false,
            why: None,
        };
    };
    let image = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let phase = status.phase.as_deref().unwrap_or("Pending");
    let containers = status.container_statuses.as_deref().unwrap_or_default();
    for container in containers {
        let Some(state) = &container.state else {
            continue;
        };
        if let Some(waiting) = &state.waiting {
            let reason = waiting.reason.as_deref().unwrap_or_default();
            let message = waiting.message.as_deref().unwrap_or_default();
            if IMAGE_FAILURES.contains(&reason) {
                return Verdict::Failed(format!(
                    "pod {name} cannot get its image {image} ({reason}{}): check the image's \
                     name and that the cluster's nodes can pull it (imagePullSecrets in \
                     kubernetes.pod_config for a private registry)",
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    }
                ));
            }
            if !reason.is_empty() && !PROGRESS.contains(&reason) {
                return Verdict::Failed(format!(
                    "pod {name}'s container cannot start ({reason}{})",
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    }
                ));
            }
        }
        if let Some(done) = &state.terminated {
            return Verdict::Failed(format!(
                "pod {name}'s container exited with {}{} (image {image}: it must have /bin/sh)",
                done.exit_code,
                done.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ));
        }
    }
    match phase {
        "Failed" | "Succeeded" | "Unknown" => {
            return Verdict::Failed(format!(
                "pod {name} is {phase}{}",
                status
                    .reason
                    .as_deref()
                    .or(status.message.as_deref())
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ));
        }
        "Running"
            if !containers.is_empty()
                && containers
                    .iter()
                    .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some())) =>
        {
            if let Some(ip) = status.pod_ip.clone().filter(|ip| !ip.is_empty()) {
                return Verdict::Ready { ip };
            }
        }
        _ => {}
    }
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let unscheduled = conditions
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False");
    let scheduled = phase != "Pending"
        || pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some()
        || conditions
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True");
    Verdict::Waiting {
        scheduled,
        why: unscheduled.and_then(|c| c.message.clone()),
    }
}

/// The failure of a pod the scheduler could not place within the
/// timeout, in SkyPilot's words, with the scheduler's own message.
pub fn unschedulable(pod: &str, context: &str, why: Option<&str>) -> String {
    let why = why.unwrap_or("the scheduler gave no reason");
    let short = ["cpu", "memory", "nvidia.com/gpu", "amd.com/gpu"]
        .iter()
        .filter(|r| why.contains(&format!("Insufficient {r}")))
        .map(|r| match *r {
            "cpu" => "CPUs",
            "memory" => "Memory",
            _ => "GPUs",
        })
        .collect::<Vec<_>>();
    let hint = if short.is_empty() {
        String::new()
    } else {
        format!(" Insufficient resources: {}.", short.join(", "))
    };
    format!(
        "pod {pod} could not be scheduled on Kubernetes context {context}: {why}.{hint} Ask for \
         less, free the cluster's nodes, or raise kubernetes.provision_timeout to wait longer"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "c-head"},
            "spec": {"containers": [{"name": "ray-node", "image": "nope:1"}]},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn an_image_that_cannot_be_pulled_fails_at_once_naming_it() {
        for reason in IMAGE_FAILURES {
            let v = verdict(&pod(json!({"phase": "Pending", "containerStatuses": [{
                "name": "ray-node", "image": "nope:1", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": reason, "message": "not found"}},
            }]})));
            let Verdict::Failed(message) = v else {
                panic!("{v:?}")
            };
            assert!(message.contains("image nope:1"), "{message}");
            assert!(message.contains(reason), "{message}");
        }
    }

    #[test]
    fn an_unscheduled_pod_waits_with_the_schedulers_reason() {
        let v = verdict(&pod(json!({"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
        }]})));
        assert_eq!(
            v,
            Verdict::Waiting {
                scheduled: false,
                why: Some("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.".into())
            }
        );
        let message = unschedulable(
            "c-head",
            "ctx",
            Some("0/1 nodes are available: 1 Insufficient nvidia.com/gpu."),
        );
        assert!(message.contains("Insufficient nvidia.com/gpu"), "{message}");
        assert!(
            message.contains("Insufficient resources: GPUs"),
            "{message}"
        );
    }

    #[test]
    fn creating_is_progress_and_running_is_ready() {
        let creating = verdict(&pod(json!({"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "True"}], "containerStatuses": [{
            "name": "ray-node", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ContainerCreating"}}}]})));
        assert_eq!(
            creating,
            Verdict::Waiting {
                scheduled: true,
                why: None
            }
        );
        let ready = verdict(&pod(json!({"phase": "Running", "podIP": "10.244.0.7",
            "containerStatuses": [{"name": "ray-node", "image": "x", "imageID": "", "ready": true,
            "restartCount": 0, "state": {"running": {}}}]})));
        assert_eq!(
            ready,
            Verdict::Ready {
                ip: "10.244.0.7".into()
            }
        );
        let evicted = verdict(&pod(json!({"phase": "Failed", "reason": "Evicted"})));
        assert_eq!(
            evicted,
            Verdict::Failed("pod c-head is Failed: Evicted".into())
        );
    }
}
