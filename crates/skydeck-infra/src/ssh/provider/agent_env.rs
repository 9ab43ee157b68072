//! The server's settings that a remote agent needs as well. A local agent
//! inherits the server's environment; one started over SSH gets the
//! login's, so these are handed to `start_agent` explicitly.

/// Seconds in the agent's autostop "minute" (tests shorten it); read by
/// `skydeck agent daemon`.
const AUTOSTOP_UNIT: &str = "SKYDECK_AGENT_AUTOSTOP_UNIT_SECS";

/// `NAME=VALUE` for each setting the server has that the agent reads. A
/// value that is not what the agent accepts is left out (the agent would
/// refuse to start), so nothing the server was given reaches a remote
/// shell unchecked.
pub fn forwarded() -> Vec<String> {
    std::env::var(AUTOSTOP_UNIT)
        .ok()
        .and_then(|value| autostop_unit(&value))
        .into_iter()
        .collect()
}

fn autostop_unit(value: &str) -> Option<String> {
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds > 0.0).then(|| format!("{AUTOSTOP_UNIT}={seconds}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_positive_number_of_seconds_is_forwarded() {
        assert_eq!(
            autostop_unit("0.2").as_deref(),
            Some("SKYDECK_AGENT_AUTOSTOP_UNIT_SECS=0.2")
        );
        for bad in ["", "x", "-1", "0", "inf", "1; rm -rf ~", "NaN"] {
            assert_eq!(autostop_unit(bad), None, "{bad}");
        }
    }
}
