//! The autostop a launch or exec asks for. Since 0.12 the official client
//! folds `-i` and `--down` into the task's `resources.autostop` and sends
//! the body's flags empty; older clients (and `skydeck`) send the flags.
//! Both reach the cluster the way SkyPilot applies them: the flags override
//! the task's setting, and what results is the cluster's autostop.

use skydeck_types::config::PolicyRequestOptions;
use skydeck_types::task::Autostop;

/// What a request does to its cluster's autostop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutostopRequest {
    /// Nothing asked: the cluster keeps what it has.
    Unchanged,
    /// `autostop: false` (or `-i` below 0): turn it off.
    Off,
    /// Stop (or tear down) after this many idle minutes.
    After { minutes: u32, down: bool },
}

impl AutostopRequest {
    /// The task's `resources.autostop` overridden by the body's `-i` and
    /// `--down`, as SkyPilot's `override_autostop_config` does. A setting
    /// without idle minutes (`--down` alone, `autostop: true`) means 0:
    /// as soon as the jobs are done, as in SkyPilot (whose `AutostopConfig`
    /// defaults `idle_minutes` to 0).
    pub fn of(task: Option<&Autostop>, flag_minutes: Option<i64>, flag_down: bool) -> Self {
        if let Some(minutes) = flag_minutes
            && minutes < 0
        {
            return Self::Off;
        }
        let flagged = flag_minutes.is_some() || flag_down;
        let (enabled, task_minutes, task_down) = match task {
            Some(a) => (a.enabled, a.idle_minutes, a.down.unwrap_or(false)),
            None if flagged => (true, None, false),
            None => return Self::Unchanged,
        };
        // A flag on the command line wins over `autostop: false` in the file.
        if !enabled && !flagged {
            return Self::Off;
        }
        let minutes = flag_minutes
            .map(|m| u64::try_from(m).unwrap_or(0))
            .or(if enabled { task_minutes } else { None })
            .unwrap_or(0);
        Self::After {
            minutes: u32::try_from(minutes).unwrap_or(u32::MAX),
            down: flag_down || (enabled && task_down),
        }
    }

    /// The request's options as an admin policy sees them
    /// (`idle_minutes_to_autostop`, `down`), SkyPilot's way: the final
    /// values, with `-1` for off.
    pub fn to_options(self, options: &mut PolicyRequestOptions) {
        let (minutes, down) = match self.setting() {
            Some((minutes, down)) => (Some(minutes), down),
            None => (None, false),
        };
        options.idle_minutes_to_autostop = minutes;
        options.down = down;
    }

    /// `(minutes, down)` for the agent and the cluster record; `None` when
    /// unchanged. Off is `-1`.
    pub fn setting(self) -> Option<(i64, bool)> {
        match self {
            Self::Unchanged => None,
            Self::Off => Some((-1, false)),
            Self::After { minutes, down } => Some((i64::from(minutes), down)),
        }
    }
}

/// The autostop a request's task YAML carries (its first resource
/// choice's, which the cluster is planned from); `None` when it sets none
/// or cannot be read (the plan reports why).
pub fn task_autostop(task_yaml: &str) -> Option<Autostop> {
    let task = skydeck_types::task::parse_tasks(task_yaml)
        .ok()?
        .into_iter()
        .next()?;
    task.resource_choices().into_iter().next()?.autostop
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(yaml: &str) -> Autostop {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn after(minutes: u32, down: bool) -> AutostopRequest {
        AutostopRequest::After { minutes, down }
    }

    #[test]
    fn nothing_asked_leaves_the_cluster_alone() {
        assert_eq!(
            AutostopRequest::of(None, None, false),
            AutostopRequest::Unchanged
        );
    }

    #[test]
    fn the_official_clients_task_setting_is_applied() {
        // What `sky launch -i 1 --down` sends: the flags in the task.
        let sent = task("{idle_minutes: 1, down: true}");
        assert_eq!(
            AutostopRequest::of(Some(&sent), None, false),
            after(1, true)
        );
        // `sky launch --down` alone: idle 0, down.
        let sent = task("{idle_minutes: 0, down: true}");
        assert_eq!(
            AutostopRequest::of(Some(&sent), None, false),
            after(0, true)
        );
        // Every YAML form.
        assert_eq!(
            AutostopRequest::of(Some(&task("10")), None, false),
            after(10, false)
        );
        assert_eq!(
            AutostopRequest::of(Some(&task("2h")), None, false),
            after(120, false)
        );
        assert_eq!(
            AutostopRequest::of(Some(&task("true")), None, false),
            after(0, false)
        );
        assert_eq!(
            AutostopRequest::of(Some(&task("false")), None, false),
            AutostopRequest::Off
        );
    }

    #[test]
    fn body_flags_override_the_task_as_the_cli_does() {
        assert_eq!(AutostopRequest::of(None, Some(5), false), after(5, false));
        assert_eq!(AutostopRequest::of(None, None, true), after(0, true));
        let yaml = task("{idle_minutes: 30, down: true}");
        assert_eq!(
            AutostopRequest::of(Some(&yaml), Some(5), false),
            after(5, true)
        );
        assert_eq!(
            AutostopRequest::of(Some(&yaml), None, false),
            after(30, true)
        );
        assert_eq!(
            AutostopRequest::of(Some(&task("false")), Some(7), false),
            after(7, false)
        );
        assert_eq!(
            AutostopRequest::of(Some(&yaml), Some(-1), false),
            AutostopRequest::Off
        );
    }

    #[test]
    fn the_setting_is_what_the_agent_and_record_take() {
        assert_eq!(after(3, true).setting(), Some((3, true)));
        assert_eq!(AutostopRequest::Off.setting(), Some((-1, false)));
        assert_eq!(AutostopRequest::Unchanged.setting(), None);
        let mut options = PolicyRequestOptions::default();
        after(3, true).to_options(&mut options);
        assert_eq!(
            (options.idle_minutes_to_autostop, options.down),
            (Some(3), true)
        );
    }
}
