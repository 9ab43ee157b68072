//! Looking at clusters: `status`, `check`, `endpoints`, and the cluster
//! lookups the other commands share.

use super::api::finish;
use super::{base, failed};
use crate::cli::{CheckArgs, EndpointsArgs, StatusArgs};
use crate::endpoint;
use crate::table::{Table, ago};
use serde_json::Value;
use skydeck_client::{Client, ClientError};
use skydeck_server::config::Paths;
use skydeck_types::bodies::{EndpointsBody, RefreshArg, RefreshMode, StatusBody};
use skydeck_types::glob::GlobPattern;
use std::process::ExitCode;

/// Cluster records (`sky status` shape). With `names` (globs allowed),
/// those clusters whoever owns them; else the caller's, or everyone's
/// with `all_users`.
pub async fn records(
    paths: &Paths,
    client: &Client,
    names: Option<&[String]>,
    all_users: bool,
) -> Result<Vec<Value>, ClientError> {
    fetch(paths, client, names, all_users, false).await
}

async fn fetch(
    paths: &Paths,
    client: &Client,
    names: Option<&[String]>,
    all_users: bool,
    refresh: bool,
) -> Result<Vec<Value>, ClientError> {
    let body = StatusBody {
        base: base(paths),
        cluster_names: names
            .map(|names| GlobPattern::parse_all(names.iter().cloned()))
            .transpose()
            .map_err(|err| ClientError::Local(err.to_string()))?,
        refresh: RefreshArg::Mode(if refresh {
            RefreshMode::Force
        } else {
            RefreshMode::None
        }),
        all_users,
        include_credentials: false,
        summary_response: false,
        include_handle: true,
    };
    let id = client.submit("/status", &body).await?;
    let value = super::waiting::wait(client, &id).await?;
    Ok(value.as_array().cloned().unwrap_or_default())
}

/// The clusters `patterns` name, each pattern matched against existing
/// names; patterns that match nothing are returned apart, for the caller
/// to report.
pub async fn resolve(
    paths: &Paths,
    client: &Client,
    patterns: &[String],
) -> Result<(Vec<Value>, Vec<String>), ClientError> {
    let found = records(paths, client, Some(patterns), true).await?;
    let unmatched = patterns
        .iter()
        .filter(|p| {
            !found
                .iter()
                .any(|c| skydeck_client::glob::matches(p, c["name"].as_str().unwrap_or_default()))
        })
        .cloned()
        .collect();
    Ok((found, unmatched))
}

pub async fn status(paths: &Paths, client: &Client, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    if args.endpoints || args.endpoint.is_some() {
        return super::status_endpoints::show(paths, client, args).await;
    }
    let names = (!args.clusters.is_empty()).then_some(args.clusters.as_slice());
    let clusters = match fetch(paths, client, names, args.all_users, args.refresh).await {
        Ok(clusters) => clusters,
        Err(err) => return failed(err),
    };
    if clusters.is_empty() && args.clusters.is_empty() {
        println!("No existing clusters.");
        return Ok(ExitCode::SUCCESS);
    }
    if !clusters.is_empty() {
        println!("{}", status_table(&clusters, args.all_users, args.verbose));
        for reason in unhealthy_reasons(&clusters) {
            println!("{reason}");
        }
    }
    let missing: Vec<String> = args
        .clusters
        .iter()
        .filter(|p| {
            !clusters
                .iter()
                .any(|c| skydeck_client::glob::matches(p, c["name"].as_str().unwrap_or_default()))
        })
        .map(|p| format!("{p:?}"))
        .collect();
    if !missing.is_empty() {
        let noun = if missing.len() == 1 {
            "Cluster"
        } else {
            "Clusters"
        };
        println!("{noun} {} not found.", missing.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// SkyPilot's cluster table: NAME, INFRA, RESOURCES, STATUS, AUTOSTOP,
/// LAUNCHED; USER with every user's clusters; HEAD_IP and COMMAND when
/// verbose.
fn status_table(clusters: &[Value], with_user: bool, verbose: bool) -> String {
    let mut headers = vec!["NAME"];
    if with_user {
        headers.push("USER");
    }
    headers.extend(["INFRA", "RESOURCES", "STATUS", "AUTOSTOP", "LAUNCHED"]);
    if verbose {
        headers.extend(["HEAD_IP", "COMMAND"]);
    }
    let mut table = Table::new(&headers);
    let text = |value: &Value| value.as_str().unwrap_or("-").to_owned();
    for cluster in clusters {
        let mut row = vec![text(&cluster["name"])];
        if with_user {
            row.push(text(&cluster["user_name"]));
        }
        let resources = if verbose {
            &cluster["resources_str_full"]
        } else {
            &cluster["resources_str"]
        };
        row.extend([
            text(&cluster["infra"]),
            text(resources),
            status_text(cluster),
            autostop(cluster),
            cluster["launched_at"]
                .as_f64()
                .filter(|t| *t > 0.0)
                .map_or_else(|| "-".to_owned(), ago),
        ]);
        if verbose {
            row.push(text(&cluster["head_ip"]));
            row.push(text(&cluster["last_use"]));
        }
        table.row(row);
    }
    table.render()
}

/// The STATUS column: INIT that a check flipped shows as UNHEALTHY, as
/// `sky status` shows it.
fn status_text(cluster: &Value) -> String {
    if cluster["init_kind"] == "unhealthy" {
        return "UNHEALTHY".to_owned();
    }
    cluster["status"].as_str().unwrap_or("-").to_owned()
}

/// One line per unhealthy cluster saying why (the hosts that did not
/// answer, and what they said).
fn unhealthy_reasons(clusters: &[Value]) -> Vec<String> {
    clusters
        .iter()
        .filter(|c| c["init_kind"] == "unhealthy")
        .map(|c| {
            format!(
                "{}: {}",
                c["name"].as_str().unwrap_or("-"),
                c["init_status_reason"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

/// `10m`, `2h`, `10m (down)`, `(down)` or `-`, as `sky status` shows it.
fn autostop(cluster: &Value) -> String {
    let minutes = cluster["autostop"].as_i64().unwrap_or(-1);
    let mut parts = Vec::new();
    if minutes >= 0 {
        parts.push(if minutes > 0 && minutes % 60 == 0 {
            format!("{}h", minutes / 60)
        } else {
            format!("{minutes}m")
        });
    }
    if cluster["to_down"].as_bool().unwrap_or(false) {
        parts.push("(down)".to_owned());
    }
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(" ")
    }
}

pub async fn check(paths: &Paths, client: &Client, args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let mut body = endpoint::base_body(paths);
    let infra = (!args.infra.is_empty()).then(|| args.infra.clone());
    body.insert("clouds".into(), serde_json::json!(infra));
    body.insert("verbose".into(), serde_json::json!(args.verbose));
    let id = client.submit("/check", &body).await?;
    let checked = async {
        client
            .stream(&id, true, None, |line| println!("{line}"))
            .await?;
        client.wait(&id).await
    };
    finish(
        super::waiting::noting_the_wait(client, &id, checked)
            .await
            .map(|_| ()),
    )
}

pub async fn endpoints(
    paths: &Paths,
    client: &Client,
    args: &EndpointsArgs,
) -> anyhow::Result<ExitCode> {
    let body = EndpointsBody {
        base: base(paths),
        cluster: args.cluster.clone(),
        port: args.port.map(|p| serde_json::json!(p)),
    };
    let id = client.submit("/endpoints", &body).await?;
    let endpoints = match super::waiting::wait(client, &id).await {
        Ok(value) => value,
        Err(err) => return failed(err),
    };
    let Some(endpoints) = endpoints.as_object().filter(|m| !m.is_empty()) else {
        eprintln!(
            "Cluster {:?} exposes no ports; list them under resources.ports in the task (or \
             launch with --ports).",
            args.cluster
        );
        return Ok(ExitCode::FAILURE);
    };
    for (port, url) in endpoints {
        let url = url.as_str().unwrap_or_default();
        if args.port.is_some() {
            println!("{url}");
        } else {
            println!("{port}: {url}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_table_has_skypilots_columns() {
        let cluster = json!({
            "name": "c1", "infra": "Local", "resources_str": "1x(cpus=2, mem=4)",
            "resources_str_full": "1x(cpus=2, mem=4)", "status": "UP", "autostop": 10,
            "to_down": true, "launched_at": 0, "user_name": "alice", "last_use": "skydeck launch",
            "head_ip": "10.0.0.1",
        });
        let table = status_table(std::slice::from_ref(&cluster), false, false);
        let mut lines = table.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            [
                "NAME",
                "INFRA",
                "RESOURCES",
                "STATUS",
                "AUTOSTOP",
                "LAUNCHED"
            ]
        );
        let row = lines.next().unwrap();
        for cell in ["c1", "Local", "1x(cpus=2, mem=4)", "UP", "10m (down)"] {
            assert!(row.contains(cell), "{row}");
        }
        let verbose = status_table(&[cluster], true, true);
        assert!(verbose.starts_with("NAME  USER"), "{verbose}");
        assert!(
            verbose.contains("HEAD_IP") && verbose.contains("10.0.0.1"),
            "{verbose}"
        );
        assert!(verbose.contains("skydeck launch"), "{verbose}");
    }

    #[test]
    fn autostop_reads_like_sky_status() {
        assert_eq!(autostop(&json!({"autostop": -1, "to_down": false})), "-");
        assert_eq!(autostop(&json!({"autostop": 120, "to_down": false})), "2h");
        assert_eq!(
            autostop(&json!({"autostop": 0, "to_down": true})),
            "0m (down)"
        );
    }
}
