//! `skydeck status --endpoints` / `--endpoint PORT`, as `sky status`
//! takes them: the ports of exactly one cluster, printed as `endpoints`
//! prints them.

use super::clusters::endpoints;
use crate::cli::{EndpointsArgs, StatusArgs};
use skydeck_client::Client;
use skydeck_server::config::Paths;
use skydeck_types::names::ClusterName;
use std::process::ExitCode;

pub async fn show(paths: &Paths, client: &Client, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let [cluster] = args.clusters.as_slice() else {
        eprintln!(
            "--endpoints and --endpoint show one cluster's ports: name exactly one cluster \
             (skydeck status --endpoints CLUSTER)."
        );
        return Ok(ExitCode::from(2));
    };
    let cluster = match ClusterName::new(cluster) {
        Ok(cluster) => cluster,
        Err(err) => {
            eprintln!("{err}");
            return Ok(ExitCode::from(2));
        }
    };
    let args = EndpointsArgs {
        cluster,
        port: args.endpoint,
    };
    endpoints(paths, client, &args).await
}
