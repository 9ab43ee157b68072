//! Applying the built-in declarative policy to a task: reject what breaks
//! a cap or lacks a required label, fill in what the policy forces.

use super::policy::{DEFAULT_IDLE_MINUTES, PolicyRequestOptions, PolicyRules};
use crate::task::{Accelerators, Autostop, Infra, Resources, TaskSpec};
use std::fmt;

/// Why the policy refused a task, in words for the user who sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyViolation {
    /// The rule, as its config key: `admin_policy.max_cpus`.
    pub rule: String,
    /// What the task asked for against what the rule allows, e.g.
    /// `resources.cpus 32 is over the cap of 16 (admin_policy.max_cpus)`.
    pub message: String,
}

impl PolicyViolation {
    fn new(rule: &str, message: impl Into<String>) -> Self {
        Self {
            rule: format!("admin_policy.{rule}"),
            message: message.into(),
        }
    }
}

impl fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Task rejected by the admin policy: {}", self.message)
    }
}

impl std::error::Error for PolicyViolation {}

impl PolicyRules {
    /// Applies every rule to a launch: the task's checks and the forced
    /// autostop. Returns notes on what was changed; on a violation nothing
    /// is changed.
    pub fn apply(
        &self,
        task: &mut TaskSpec,
        request: &mut PolicyRequestOptions,
    ) -> Result<Vec<String>, PolicyViolation> {
        let mut notes = self.apply_to_task(task)?;
        notes.extend(self.force_autostop(task, request));
        Ok(notes)
    }

    /// The rules about the task alone, for requests that start no cluster
    /// of their own (exec, managed jobs): caps, labels, infrastructure.
    pub fn apply_to_task(&self, task: &mut TaskSpec) -> Result<Vec<String>, PolicyViolation> {
        if let Some(max) = self.max_num_nodes
            && task.num_nodes > max
        {
            return Err(PolicyViolation::new(
                "max_num_nodes",
                format!(
                    "num_nodes {} is over the cap of {max} (admin_policy.max_num_nodes)",
                    task.num_nodes
                ),
            ));
        }
        // Work on a copy so that a rejected task is left as it came.
        let mut resources = task.resources.clone();
        let mut notes = Vec::new();
        if let Some(allowed) = &self.allowed_infra {
            notes.extend(restrict_infra(&mut resources, allowed)?);
        }
        let choices = resources.choices();
        for (index, choice) in choices.iter().enumerate() {
            let place = if choices.len() > 1 {
                format!(" (choice {} of {})", index + 1, choices.len())
            } else {
                String::new()
            };
            self.check_choice(choice, &place)?;
        }
        task.resources = resources;
        Ok(notes)
    }

    fn check_choice(&self, choice: &Resources, place: &str) -> Result<(), PolicyViolation> {
        if let Some(label) = self
            .required_labels
            .iter()
            .find(|label| !choice.labels.contains_key(*label))
        {
            return Err(PolicyViolation::new(
                "required_labels",
                format!(
                    "resources.labels{place} has no `{label}` label, which the admin policy \
                     requires (admin_policy.required_labels); add it, e.g. \
                     resources: {{labels: {{{label}: <value>}}}}"
                ),
            ));
        }
        if let (Some(max), Some(cpus)) = (self.max_cpus, choice.cpus)
            && cpus.count > max
        {
            return Err(over_cap(
                "cpus",
                &cpus.to_string(),
                place,
                max,
                "",
                "max_cpus",
            ));
        }
        if let (Some(max), Some(memory)) = (self.max_memory_gb, choice.memory)
            && memory.gb > max
        {
            let asked = format!("{} GB", number(memory.gb));
            return Err(over_cap("memory", &asked, place, max, " GB", "max_memory"));
        }
        if let (Some(max), Some(accelerator)) = (self.max_accelerators, choice.accelerator())
            && accelerator.count > max
        {
            return Err(over_cap(
                "accelerators",
                &accelerator.to_string(),
                place,
                max,
                " per node",
                "max_accelerators",
            ));
        }
        Ok(())
    }

    /// Sets the policy's autostop where the request asks for none, turns
    /// it off, or waits longer; adds `down` when the policy wants it.
    pub fn force_autostop(
        &self,
        task: &mut TaskSpec,
        request: &mut PolicyRequestOptions,
    ) -> Vec<String> {
        let Some(forced) = self.autostop else {
            return Vec::new();
        };
        let asked = requested_minutes(request, task.resources.autostop.as_ref());
        let too_long = asked.is_none_or(|minutes| minutes > forced.idle_minutes);
        let asked_down = request.down
            || task
                .resources
                .autostop
                .as_ref()
                .is_some_and(|a| a.down == Some(true));
        let down = forced.down || asked_down;
        let note = if too_long {
            let was = asked.map_or_else(|| "none".to_owned(), |m| format!("{m} minutes"));
            format!(
                "autostop set to {} minutes idle{} (admin_policy.autostop); the request asked for {was}",
                forced.idle_minutes,
                if down { ", then down" } else { "" },
            )
        } else if down != asked_down {
            "autostop set to tear the cluster down (admin_policy.autostop.down)".to_owned()
        } else {
            return Vec::new();
        };
        let minutes = asked.filter(|_| !too_long).unwrap_or(forced.idle_minutes);
        request.idle_minutes_to_autostop = Some(i64::try_from(minutes).unwrap_or(i64::MAX));
        request.down = down;
        let resources = &mut task.resources;
        resources.autostop = Some(clamped(resources.autostop.as_ref(), minutes, down));
        // A choice's own autostop replaces the task's, so clamp those too.
        for entry in resources
            .any_of
            .iter_mut()
            .chain(resources.ordered.iter_mut())
        {
            if let Some(own) = &entry.autostop {
                let own_minutes = requested_minutes(&PolicyRequestOptions::default(), Some(own))
                    .filter(|m| *m <= forced.idle_minutes)
                    .unwrap_or(forced.idle_minutes);
                let own_down = down || own.down == Some(true);
                entry.autostop = Some(clamped(Some(own), own_minutes, own_down));
            }
        }
        vec![note]
    }
}

fn over_cap(
    field: &str,
    asked: &str,
    place: &str,
    max: f64,
    unit: &str,
    rule: &str,
) -> PolicyViolation {
    PolicyViolation::new(
        rule,
        format!(
            "resources.{field} {asked}{place} is over the cap of {}{unit} (admin_policy.{rule})",
            number(max)
        ),
    )
}

/// A number as people write it: `16`, not `16.0`.
fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// The idle minutes a launch asks for: the request's flag first (as a CLI
/// flag overrides the YAML), then the task's `resources.autostop`; `None`
/// when autostop is off or not set.
fn requested_minutes(request: &PolicyRequestOptions, task: Option<&Autostop>) -> Option<u64> {
    if let Some(minutes) = request.idle_minutes_to_autostop {
        return u64::try_from(minutes).ok();
    }
    let autostop = task.filter(|a| a.enabled)?;
    Some(autostop.idle_minutes.unwrap_or(DEFAULT_IDLE_MINUTES))
}

/// `existing` (its hook and wait mode kept) with the forced idle time.
fn clamped(existing: Option<&Autostop>, minutes: u64, down: bool) -> Autostop {
    let mut autostop = existing.cloned().unwrap_or(Autostop {
        enabled: true,
        idle_minutes: None,
        down: None,
        wait_for: None,
        hook: None,
        hook_timeout: None,
    });
    autostop.enabled = true;
    autostop.idle_minutes = Some(minutes);
    autostop.down = Some(down);
    autostop
}

/// Keeps the task on `allowed` infrastructure: a choice that names other
/// infrastructure is a violation; one that names none is pinned to the
/// only allowed kind, or spread over the allowed kinds with `any_of`.
fn restrict_infra(
    resources: &mut Resources,
    allowed: &[String],
) -> Result<Vec<String>, PolicyViolation> {
    let allowed_list = allowed.join(", ");
    let not_allowed = |kind: &str| {
        PolicyViolation::new(
            "allowed_infra",
            format!(
                "resources.infra {kind} is not allowed (admin_policy.allowed_infra: {allowed_list}); \
                 use one of those"
            ),
        )
    };
    let mut notes = Vec::new();
    let entries_given = !resources.any_of.is_empty() || !resources.ordered.is_empty();
    if !entries_given {
        let base = effective_infra(resources, None);
        match base.as_ref().and_then(|i| i.kind.clone()) {
            Some(kind) if allowed.contains(&kind) => return Ok(notes),
            Some(kind) => return Err(not_allowed(&kind)),
            None => {}
        }
        if let [only] = allowed {
            pin(resources, base, only);
            notes.push(format!(
                "resources.infra set to {only} (admin_policy.allowed_infra)"
            ));
            return Ok(notes);
        }
        // Spreading over several kinds needs any_of, which cannot carry a
        // region of its own here nor sit beside a preference list.
        let spreadable =
            base.is_none() && !matches!(resources.accelerators, Some(Accelerators::Ordered(_)));
        if !spreadable {
            return Err(PolicyViolation::new(
                "allowed_infra",
                format!(
                    "resources.infra names no infrastructure kind, and the admin policy allows only \
                     {allowed_list} (admin_policy.allowed_infra); set resources.infra to one of them"
                ),
            ));
        }
        resources.any_of = allowed
            .iter()
            .map(|kind| Resources {
                infra: Some(kind.clone()),
                ..Resources::default()
            })
            .collect();
        notes.push(format!(
            "resources.any_of set to infra {allowed_list}: the task named none (admin_policy.allowed_infra)"
        ));
        return Ok(notes);
    }
    let base_for_entries = Resources {
        any_of: Vec::new(),
        ordered: Vec::new(),
        ..resources.clone()
    };
    let entries = if resources.any_of.is_empty() {
        &mut resources.ordered
    } else {
        &mut resources.any_of
    };
    for (index, entry) in entries.iter_mut().enumerate() {
        let effective = effective_infra(entry, Some(&base_for_entries));
        match effective.as_ref().and_then(|i| i.kind.clone()) {
            Some(kind) if allowed.contains(&kind) => {}
            Some(kind) => return Err(not_allowed(&kind)),
            None => {
                let [only] = allowed else {
                    return Err(PolicyViolation::new(
                        "allowed_infra",
                        format!(
                            "resources choice {} names no infrastructure kind, and the admin policy \
                             allows only {allowed_list} (admin_policy.allowed_infra); set infra in \
                             each choice",
                            index + 1
                        ),
                    ));
                };
                pin(entry, effective, only);
                notes.push(format!(
                    "infra of resources choice {} set to {only} (admin_policy.allowed_infra)",
                    index + 1
                ));
            }
        }
    }
    Ok(notes)
}

/// Where `resources` (over `base`, for a choice) may run, from `infra` or
/// the legacy `cloud`/`region`/`zone`, as a choice merges them.
fn effective_infra(resources: &Resources, base: Option<&Resources>) -> Option<Infra> {
    let pick = |own: &Option<String>, from_base: fn(&Resources) -> &Option<String>| {
        own.clone()
            .or_else(|| base.and_then(|b| from_base(b).clone()))
    };
    Resources {
        infra: pick(&resources.infra, |b| &b.infra),
        cloud: pick(&resources.cloud, |b| &b.cloud),
        region: pick(&resources.region, |b| &b.region),
        zone: pick(&resources.zone, |b| &b.zone),
        ..Resources::default()
    }
    .infra_spec()
}

/// Names `kind` as the infrastructure of `resources`, keeping any region
/// and zone it already gives.
fn pin(resources: &mut Resources, effective: Option<Infra>, kind: &str) {
    let legacy =
        resources.cloud.is_some() || resources.region.is_some() || resources.zone.is_some();
    if legacy && resources.infra.is_none() {
        // infra may not sit beside the legacy keys in one mapping.
        resources.cloud = Some(kind.to_owned());
        return;
    }
    let mut infra = effective.unwrap_or(Infra {
        kind: None,
        region: None,
        zone: None,
    });
    infra.kind = Some(kind.to_owned());
    resources.infra = Some(infra.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ForcedAutostop;
    use crate::task::parse_tasks;

    fn task(yaml: &str) -> TaskSpec {
        parse_tasks(yaml).unwrap().remove(0)
    }

    fn caps() -> PolicyRules {
        PolicyRules {
            max_cpus: Some(16.0),
            max_memory_gb: Some(64.0),
            max_accelerators: Some(8.0),
            max_num_nodes: Some(4),
            ..PolicyRules::default()
        }
    }

    fn reject(rules: &PolicyRules, yaml: &str) -> PolicyViolation {
        let mut task = task(yaml);
        let before = task.clone();
        let error = rules
            .apply(&mut task, &mut PolicyRequestOptions::default())
            .expect_err(yaml);
        assert_eq!(task, before, "a rejected task is left as it came");
        error
    }

    #[test]
    fn caps_accept_what_fits() {
        let mut task = task(
            "resources: {cpus: 16, memory: 64GB, accelerators: H100:8}\nnum_nodes: 4\nrun: x\n",
        );
        let before = task.clone();
        let notes = caps()
            .apply(&mut task, &mut PolicyRequestOptions::default())
            .unwrap();
        assert!(notes.is_empty());
        assert_eq!(task, before);
        // Nothing asked, nothing to cap.
        caps()
            .apply(
                &mut self::task("run: x\n"),
                &mut PolicyRequestOptions::default(),
            )
            .unwrap();
    }

    #[test]
    fn each_cap_rejects_with_its_rule() {
        let rules = caps();
        let error = reject(&rules, "resources: {cpus: 32}\nrun: x\n");
        assert_eq!(
            error.to_string(),
            "Task rejected by the admin policy: resources.cpus 32 is over the cap of 16 (admin_policy.max_cpus)"
        );
        assert_eq!(error.rule, "admin_policy.max_cpus");
        let error = reject(&rules, "resources: {memory: 128+}\nrun: x\n");
        assert_eq!(
            error.message,
            "resources.memory 128 GB is over the cap of 64 GB (admin_policy.max_memory)"
        );
        let error = reject(&rules, "resources: {accelerators: A100:16}\nrun: x\n");
        assert_eq!(
            error.message,
            "resources.accelerators A100:16 is over the cap of 8 per node (admin_policy.max_accelerators)"
        );
        let error = reject(&rules, "num_nodes: 8\nrun: x\n");
        assert_eq!(
            error.message,
            "num_nodes 8 is over the cap of 4 (admin_policy.max_num_nodes)"
        );
    }

    #[test]
    fn every_choice_must_fit() {
        let error = reject(
            &caps(),
            "resources: {any_of: [{cpus: 8}, {cpus: 32}]}\nrun: x\n",
        );
        assert_eq!(
            error.message,
            "resources.cpus 32 (choice 2 of 2) is over the cap of 16 (admin_policy.max_cpus)"
        );
        let error = reject(
            &caps(),
            "resources: {accelerators: [H100:8, A100:16]}\nrun: x\n",
        );
        assert!(error.message.contains("A100:16 (choice 2 of 2)"), "{error}");
    }

    #[test]
    fn required_labels() {
        let rules = PolicyRules {
            required_labels: vec!["team".into(), "project".into()],
            ..PolicyRules::default()
        };
        let mut ok = task("resources: {labels: {team: ml, project: llm}}\nrun: x\n");
        rules
            .apply(&mut ok, &mut PolicyRequestOptions::default())
            .unwrap();
        let error = reject(&rules, "resources: {labels: {team: ml}}\nrun: x\n");
        assert_eq!(error.rule, "admin_policy.required_labels");
        assert!(
            error
                .message
                .starts_with("resources.labels has no `project` label"),
            "{error}"
        );
        // Labels merge from the task into each choice.
        let mut merged = task(
            "resources: {labels: {team: ml}, any_of: [{labels: {project: a}}, {labels: {project: b}}]}\nrun: x\n",
        );
        rules
            .apply(&mut merged, &mut PolicyRequestOptions::default())
            .unwrap();
        let error = reject(
            &rules,
            "resources: {labels: {team: ml}, any_of: [{labels: {project: a}}, {cpus: 2}]}\nrun: x\n",
        );
        assert!(error.message.contains("(choice 2 of 2)"), "{error}");
    }

    #[test]
    fn allowed_infra_rejects_other_kinds() {
        let rules = PolicyRules {
            allowed_infra: Some(vec!["local".into(), "kubernetes".into()]),
            ..PolicyRules::default()
        };
        let mut ok = task("resources: {infra: k8s/ctx}\nrun: x\n");
        assert!(
            rules
                .apply(&mut ok, &mut PolicyRequestOptions::default())
                .unwrap()
                .is_empty()
        );
        let error = reject(&rules, "resources: {infra: aws/us-east-1}\nrun: x\n");
        assert_eq!(
            error.message,
            "resources.infra aws is not allowed (admin_policy.allowed_infra: local, kubernetes); use one of those"
        );
        reject(&rules, "resources: {cloud: aws}\nrun: x\n");
        reject(
            &rules,
            "resources: {any_of: [{infra: local}, {infra: gcp}]}\nrun: x\n",
        );
        // Only the choices count: each entry replaces the task's infra.
        let mut overridden =
            task("resources: {infra: aws, any_of: [{infra: local}, {infra: k8s}]}\nrun: x\n");
        rules
            .apply(&mut overridden, &mut PolicyRequestOptions::default())
            .unwrap();
        reject(
            &rules,
            "resources: {infra: aws, any_of: [{infra: local}, {cpus: 2}]}\nrun: x\n",
        );
    }

    #[test]
    fn allowed_infra_fills_in_a_missing_kind() {
        let one = PolicyRules {
            allowed_infra: Some(vec!["kubernetes".into()]),
            ..PolicyRules::default()
        };
        let mut pinned = task("resources: {cpus: 2}\nrun: x\n");
        let notes = one
            .apply(&mut pinned, &mut PolicyRequestOptions::default())
            .unwrap();
        assert_eq!(pinned.resources.infra.as_deref(), Some("kubernetes"));
        assert_eq!(
            notes,
            ["resources.infra set to kubernetes (admin_policy.allowed_infra)"]
        );
        let mut regional = task("resources: {infra: '*/us-east-1'}\nrun: x\n");
        one.apply(&mut regional, &mut PolicyRequestOptions::default())
            .unwrap();
        assert_eq!(
            regional.resources.infra.as_deref(),
            Some("kubernetes/us-east-1")
        );
        let mut entries = task("resources: {any_of: [{cpus: 2}, {infra: k8s, cpus: 4}]}\nrun: x\n");
        one.apply(&mut entries, &mut PolicyRequestOptions::default())
            .unwrap();
        assert!(
            entries
                .resource_choices()
                .iter()
                .all(|c| c.infra_kind().as_deref() == Some("kubernetes"))
        );

        let several = PolicyRules {
            allowed_infra: Some(vec!["local".into(), "kubernetes".into()]),
            ..PolicyRules::default()
        };
        let mut spread = task("resources: {cpus: 2}\nrun: x\n");
        several
            .apply(&mut spread, &mut PolicyRequestOptions::default())
            .unwrap();
        let kinds: Vec<_> = spread
            .resource_choices()
            .iter()
            .map(|c| c.infra_kind().unwrap())
            .collect();
        assert_eq!(kinds, ["local", "kubernetes"]);
        // The result is still a task SkyPilot and Skydeck read.
        let yaml = spread.to_yaml();
        assert_eq!(parse_tasks(&yaml).unwrap()[0], spread, "{yaml}");
        let error = reject(
            &several,
            "resources: {accelerators: [H100, A100]}\nrun: x\n",
        );
        assert!(
            error.message.contains("set resources.infra to one of them"),
            "{error}"
        );
    }

    fn forcing(idle_minutes: u64, down: bool) -> PolicyRules {
        PolicyRules {
            autostop: Some(ForcedAutostop { idle_minutes, down }),
            ..PolicyRules::default()
        }
    }

    #[test]
    fn autostop_is_forced_when_missing_or_longer() {
        let rules = forcing(30, false);
        let mut none = task("run: x\n");
        let mut request = PolicyRequestOptions::default();
        let notes = rules.apply(&mut none, &mut request).unwrap();
        assert_eq!(request.idle_minutes_to_autostop, Some(30));
        assert!(!request.down);
        assert_eq!(
            none.resources.autostop.as_ref().unwrap().idle_minutes,
            Some(30)
        );
        assert_eq!(
            notes,
            ["autostop set to 30 minutes idle (admin_policy.autostop); the request asked for none"]
        );

        let mut longer =
            task("resources: {autostop: {idle_minutes: 120, wait_for: jobs}}\nrun: x\n");
        let mut request = PolicyRequestOptions::default();
        let notes = rules.apply(&mut longer, &mut request).unwrap();
        let autostop = longer.resources.autostop.unwrap();
        assert_eq!(autostop.idle_minutes, Some(30));
        assert_eq!(
            autostop.wait_for.as_deref(),
            Some("jobs"),
            "the rest of the setting is kept"
        );
        assert!(
            notes[0].ends_with("the request asked for 120 minutes"),
            "{notes:?}"
        );

        let mut off = task("resources: {autostop: false}\nrun: x\n");
        rules
            .apply(&mut off, &mut PolicyRequestOptions::default())
            .unwrap();
        assert!(off.resources.autostop.unwrap().enabled);

        let mut cancelled = task("run: x\n");
        let mut request = PolicyRequestOptions {
            idle_minutes_to_autostop: Some(-1),
            ..PolicyRequestOptions::default()
        };
        rules.apply(&mut cancelled, &mut request).unwrap();
        assert_eq!(request.idle_minutes_to_autostop, Some(30));
    }

    #[test]
    fn choices_with_their_own_autostop_are_clamped_too() {
        let mut task = task(
            "resources: {any_of: [{infra: local, autostop: 120}, {infra: k8s, autostop: {idle_minutes: 5, down: true}}]}\nrun: x\n",
        );
        forcing(30, false)
            .apply(&mut task, &mut PolicyRequestOptions::default())
            .unwrap();
        let settings: Vec<_> = task
            .resource_choices()
            .iter()
            .map(|c| {
                let autostop = c.autostop.as_ref().unwrap();
                (autostop.idle_minutes, autostop.down)
            })
            .collect();
        assert_eq!(settings, [(Some(30), Some(false)), (Some(5), Some(true))]);
    }

    #[test]
    fn a_shorter_autostop_is_kept() {
        let rules = forcing(30, false);
        let mut shorter = task("resources: {autostop: 10}\nrun: x\n");
        let before = shorter.clone();
        let mut request = PolicyRequestOptions::default();
        assert!(rules.apply(&mut shorter, &mut request).unwrap().is_empty());
        assert_eq!(shorter, before);
        assert_eq!(request, PolicyRequestOptions::default());
        let mut flag = task("run: x\n");
        let mut request = PolicyRequestOptions {
            idle_minutes_to_autostop: Some(5),
            ..PolicyRequestOptions::default()
        };
        assert!(rules.apply(&mut flag, &mut request).unwrap().is_empty());
        assert_eq!(request.idle_minutes_to_autostop, Some(5));
    }

    #[test]
    fn forced_down_applies_even_to_short_autostops() {
        let rules = forcing(30, true);
        let mut short = task("resources: {autostop: 10}\nrun: x\n");
        let mut request = PolicyRequestOptions::default();
        let notes = rules.apply(&mut short, &mut request).unwrap();
        assert!(request.down);
        assert_eq!(request.idle_minutes_to_autostop, Some(10));
        let autostop = short.resources.autostop.unwrap();
        assert_eq!(
            (autostop.idle_minutes, autostop.down),
            (Some(10), Some(true))
        );
        assert_eq!(
            notes,
            ["autostop set to tear the cluster down (admin_policy.autostop.down)"]
        );
    }

    #[test]
    fn task_rules_alone_leave_autostop() {
        let rules = PolicyRules {
            autostop: Some(ForcedAutostop {
                idle_minutes: 30,
                down: false,
            }),
            ..caps()
        };
        let mut task = task("run: x\n");
        assert!(rules.apply_to_task(&mut task).unwrap().is_empty());
        assert_eq!(task.resources.autostop, None);
    }
}
