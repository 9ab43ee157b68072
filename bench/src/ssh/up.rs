//! `ssh up` of the pool, as `sky ssh up --infra POOL` asks for it: cold
//! (the agent not on the hosts: it is copied to each) and warm (the same
//! build already there: content-addressed, so nothing is copied), each
//! after an `ssh down` that removes the agent again.
//!
//! Whether a run really was cold or warm is read from the request's log,
//! which says per host whether the agent was "installed at" or "already
//! at" its path; a run that is not what it claims is an error.

use crate::clusters::api::Api;
use crate::progress;
use crate::stats::Summary;
use anyhow::bail;
use std::time::{Duration, Instant};

pub struct UpRun {
    /// `ssh up` with the agent on no host.
    pub cold: Summary,
    /// `ssh up` again right after, the agent on every host.
    pub warm: Summary,
    /// `ssh down` (the agent removed from every host), before each cold run.
    pub down: Summary,
}

/// `rounds` times: down, cold up, warm up. Each time is from sending the
/// request until `/api/get` returned.
pub async fn run(api: &Api, pool: &str, hosts: usize, rounds: u32) -> anyhow::Result<UpRun> {
    let (mut cold, mut warm, mut down) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        progress(&format!(
            "ssh up: round {round}/{rounds}: down, cold up, warm up"
        ));
        down.push(timed(api, pool, false).await?.0);
        let (took, log) = timed(api, pool, true).await?;
        expect_agents(&log, "installed at", hosts, "cold")?;
        cold.push(took);
        let (took, log) = timed(api, pool, true).await?;
        expect_agents(&log, "already at", hosts, "warm")?;
        warm.push(took);
    }
    Ok(UpRun {
        cold: Summary::of(cold),
        warm: Summary::of(warm),
        down: Summary::of(down),
    })
}

/// One `ssh up` (or down), waited for; its time and its log.
async fn timed(api: &Api, pool: &str, up: bool) -> anyhow::Result<(Duration, Vec<String>)> {
    let start = Instant::now();
    let id = api.submit_ssh_pool(pool, up).await?;
    let outcome = api.wait(&id).await;
    let took = start.elapsed();
    let log: Vec<String> = api
        .request_log(&id)
        .await?
        .into_iter()
        .map(|(_, line)| line)
        .collect();
    if let Err(err) = outcome {
        bail!(
            "ssh {} of pool {pool} failed: {err:#}; its log:\n{}",
            if up { "up" } else { "down" },
            log.join("\n")
        );
    }
    Ok((took, log))
}

/// Every one of the pool's hosts has a ✓ line saying `what` of the agent.
fn expect_agents(log: &[String], what: &str, hosts: usize, run: &str) -> anyhow::Result<()> {
    let matching = log
        .iter()
        .filter(|line| line.trim_start().starts_with('✓') && line.contains(what))
        .count();
    if matching != hosts {
        bail!(
            "the {run} `ssh up` should say \"agent {what}\" for each of the {hosts} hosts, \
             but {matching} lines do; its log:\n{}",
            log.join("\n")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::expect_agents;

    #[test]
    fn a_run_is_cold_only_when_every_host_got_the_agent_copied() {
        let log: Vec<String> = [
            "Found 1 Node Pool: bench",
            "  ✓ 10.0.0.1: h1 (x86_64, glibc 2.39), 2 CPUs, 7.6 GiB memory, no GPUs; agent installed at ~/.skydeck/bin/a/skydeck",
            "  ✓ 10.0.0.2: h2 (x86_64, glibc 2.39), 2 CPUs, 7.6 GiB memory, no GPUs; agent already at ~/.skydeck/bin/a/skydeck",
        ]
        .map(str::to_owned)
        .to_vec();
        assert!(expect_agents(&log, "installed at", 1, "cold").is_ok());
        let err = expect_agents(&log, "installed at", 2, "cold").unwrap_err();
        assert!(err.to_string().contains("1 lines do"), "{err}");
    }
}
