//! `skydeck config …`: the API server's shared config, which admins change
//! without a restart.

use crate::cli::{ConfigFormat, ConfigGetArgs, ConfigSetArgs};
use anyhow::{Context, bail};
use serde_json::{Map, Value};
use skydeck_client::{Client, ClientError};
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

pub async fn get(client: &Client, args: &ConfigGetArgs) -> anyhow::Result<ExitCode> {
    let answer = client.get_config().await.map_err(without_config_api)?;
    match args.output {
        // The whole answer: scripts want the version and the source too.
        ConfigFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "config": answer.config,
                "source": answer.source,
                "version": answer.version,
            }))?
        ),
        // The config alone (with a comment), so the output can be edited
        // and given back to `skydeck config set`.
        ConfigFormat::Yaml => {
            println!(
                "# Skydeck API server config, version {} (from the {}); secrets read <redacted>.",
                answer.version, answer.source
            );
            print!("{}", serde_yaml_ng::to_string(&answer.config)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn set(client: &Client, args: &ConfigSetArgs) -> anyhow::Result<ExitCode> {
    let config = read_mapping(&args.file)?;
    let saved = client
        .set_config(&config)
        .await
        .map_err(without_config_api)
        .with_context(|| format!("{} was not applied", args.file.display()))?;
    println!(
        "Saved the API server config (version {}, {} top-level keys).",
        saved.version,
        saved.config.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// A server without the config routes answers a bare 404 (an older
/// Skydeck, or SkyPilot's own server); say that rather than "Not Found".
fn without_config_api(err: ClientError) -> anyhow::Error {
    match &err {
        ClientError::Http {
            status: 404,
            detail,
        } if detail == "Not Found" => anyhow::anyhow!(
            "this API server has no config API (/api/config): it is older than this skydeck \
             CLI, or not a Skydeck server"
        ),
        _ => err.into(),
    }
}

/// The YAML mapping in `path` (`-`: stdin). An empty file is an empty
/// config.
fn read_mapping(path: &Path) -> anyhow::Result<Map<String, Value>> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the config from stdin")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    parse_mapping(&text).with_context(|| format!("{} is not a usable config", path.display()))
}

fn parse_mapping(text: &str) -> anyhow::Result<Map<String, Value>> {
    let value: Value = serde_yaml_ng::from_str(text).context("invalid YAML")?;
    match value {
        Value::Null => Ok(Map::new()),
        Value::Object(map) => Ok(map),
        other => bail!(
            "the config must be a YAML mapping (`key: value` lines), not {}",
            kind(&other)
        ),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "a list",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null | Value::Object(_) => "that",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_yaml_mapping_becomes_json() {
        let map =
            parse_mapping("jobs:\n  controller:\n    cpus: 4\nallowed_clouds: [aws]\n").unwrap();
        assert_eq!(
            Value::Object(map),
            serde_json::json!({"jobs": {"controller": {"cpus": 4}}, "allowed_clouds": ["aws"]})
        );
    }

    #[test]
    fn an_empty_file_is_an_empty_config() {
        assert!(parse_mapping("").unwrap().is_empty());
        assert!(parse_mapping("# nothing yet\n").unwrap().is_empty());
    }

    #[test]
    fn anything_but_a_mapping_is_refused_saying_what_it_is() {
        let err = parse_mapping("- aws\n- gcp\n").unwrap_err();
        assert!(err.to_string().contains("not a list"), "{err}");
        let err = parse_mapping("jobs: [unclosed\n").unwrap_err();
        assert!(format!("{err:#}").contains("line"), "{err:#}");
    }
}
