//! `skydeck ssh up/down`: set SSH Node Pools up on the server's hosts, or
//! take them down (admins only; the server reads its own pool file).

use super::api::finish;
use crate::cli::SshPoolArgs;
use crate::endpoint;
use skydeck_client::Client;
use skydeck_server::config::Paths;
use std::process::ExitCode;

pub async fn up(paths: &Paths, client: &Client, args: &SshPoolArgs) -> anyhow::Result<ExitCode> {
    run(paths, client, args, "/ssh_node_pools/deploy", false).await
}

pub async fn down(paths: &Paths, client: &Client, args: &SshPoolArgs) -> anyhow::Result<ExitCode> {
    run(paths, client, args, "/ssh_node_pools/down", true).await
}

async fn run(
    paths: &Paths,
    client: &Client,
    args: &SshPoolArgs,
    path: &str,
    cleanup: bool,
) -> anyhow::Result<ExitCode> {
    let mut body = endpoint::base_body(paths);
    body.insert("infra".into(), serde_json::json!(args.infra));
    body.insert("cleanup".into(), serde_json::json!(cleanup));
    let id = client.submit(path, &body).await?;
    let done = async {
        client
            .stream(&id, true, None, |line| println!("{line}"))
            .await?;
        client.wait(&id).await
    };
    finish(
        super::waiting::noting_the_wait(client, &id, done)
            .await
            .map(|_| ()),
    )
}
