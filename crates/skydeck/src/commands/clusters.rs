//! Cluster commands. Clusters themselves arrive with the local
//! infrastructure; `status` and `check` already go through the server.

use super::api::finish;
use crate::cli::{CheckArgs, StatusArgs};
use crate::endpoint;
use skydeck_client::Client;
use skydeck_server::config::Paths;
use std::process::ExitCode;

pub async fn status(paths: &Paths, client: &Client, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let mut body = endpoint::base_body(paths);
    let names = (!args.clusters.is_empty()).then(|| args.clusters.clone());
    body.insert("cluster_names".into(), serde_json::json!(names));
    body.insert(
        "refresh".into(),
        serde_json::json!(if args.refresh { "FORCE" } else { "NONE" }),
    );
    body.insert("all_users".into(), serde_json::json!(args.all_users));
    let id = client.submit("/status", &body).await?;
    let clusters = client.wait(&id).await?;
    match clusters.as_array() {
        Some(list) if !list.is_empty() => {
            for cluster in list {
                println!("{}", cluster["name"].as_str().unwrap_or("?"));
            }
        }
        _ => println!("No existing clusters."),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn check(paths: &Paths, client: &Client, args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let mut body = endpoint::base_body(paths);
    let infra = (!args.infra.is_empty()).then(|| args.infra.clone());
    body.insert("clouds".into(), serde_json::json!(infra));
    body.insert("verbose".into(), serde_json::json!(args.verbose));
    let id = client.submit("/check", &body).await?;
    client
        .stream(&id, true, None, |line| println!("{line}"))
        .await?;
    finish(client.wait(&id).await.map(|_| ()))
}
