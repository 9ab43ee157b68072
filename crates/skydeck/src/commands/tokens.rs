//! `skydeck tokens …`: service-account tokens, for CI and other programs
//! that cannot type a password.

use crate::cli::{TokenCreateArgs, TokenListArgs, TokenRevokeArgs};
use crate::endpoint;
use crate::table::{Table, ago};
use skydeck_client::Client;
use skydeck_client::admin::{NewToken, TokenInfo};
use std::process::ExitCode;

pub async fn create(client: &Client, args: &TokenCreateArgs) -> anyhow::Result<ExitCode> {
    let created = client
        .create_token(&NewToken {
            name: args.name.clone(),
            expires_in_days: args.expires_in_days,
            user: args.user.clone(),
        })
        .await?;
    let info = &created.info;
    let expiry = match args.expires_in_days {
        Some(1) => "expires in 1 day".to_owned(),
        Some(days) => format!("expires in {days} days"),
        None => "never expires".to_owned(),
    };
    // The secret alone on stdout, so `TOKEN=$(skydeck tokens create ci)`
    // works; how to use it goes to stderr, naming it rather than repeating
    // it, so it is printed exactly once.
    eprintln!(
        "Created service-account token {:?} ({}) for {}; it {expiry}.",
        info.name,
        info.id,
        info.owner()
    );
    println!("{}", created.token);
    eprintln!(
        "This is the only time the token is shown: store it now (revoke it with \
         `skydeck tokens revoke {}`).\n\
         Use it with:\n  \
         export {}=<the token>   (the sky client reads SKYPILOT_SERVICE_ACCOUNT_TOKEN)\n  \
         skydeck api login -e {} --token <the token>",
        info.id,
        endpoint::ENV_TOKEN,
        client.url()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn list(client: &Client, args: &TokenListArgs) -> anyhow::Result<ExitCode> {
    let tokens = client.list_tokens(args.all).await?;
    if tokens.is_empty() {
        println!(
            "No service-account tokens{}; make one with `skydeck tokens create NAME`.",
            if args.all { "" } else { " of yours" }
        );
    } else {
        println!("{}", tokens_table(&tokens, now()));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn revoke(client: &Client, args: &TokenRevokeArgs) -> anyhow::Result<ExitCode> {
    let token = client.revoke_token(&args.id).await?;
    println!(
        "Revoked service-account token {:?} ({}) of {}; it no longer works.",
        token.name,
        token.id,
        token.owner()
    );
    Ok(ExitCode::SUCCESS)
}

fn tokens_table(tokens: &[TokenInfo], now: f64) -> String {
    let mut table = Table::new(&[
        "ID",
        "NAME",
        "USER",
        "CREATED",
        "EXPIRES",
        "LAST USED",
        "STATUS",
    ]);
    for token in tokens {
        table.row(vec![
            token.id.clone(),
            token.name.clone(),
            token.owner().to_owned(),
            ago(token.created_at),
            token
                .expires_at
                .map_or_else(|| "never".to_owned(), |at| relative(at, now)),
            token.last_used_at.map_or_else(|| "never".to_owned(), ago),
            token.state_at(now).to_string(),
        ]);
    }
    table.render()
}

/// "in 3 days" for a time to come, "2 hrs ago" for one gone.
fn relative(at: f64, now: f64) -> String {
    if at <= now {
        return ago(at);
    }
    let secs = (at - now) as u64;
    match secs {
        0..60 => format!("in {secs} secs"),
        60..3600 => format!("in {} mins", secs / 60),
        3600..86400 => format!("in {} hrs", secs / 3600),
        _ => format!("in {} days", secs / 86400),
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_shown_from_now_either_way() {
        assert_eq!(relative(1000.0 + 3.0 * 86400.0 + 5.0, 1000.0), "in 3 days");
        assert_eq!(relative(1000.0 + 150.0, 1000.0), "in 2 mins");
        assert!(relative(now() - 7200.0, now()).ends_with("ago"));
    }

    #[test]
    fn the_table_shows_each_tokens_state_and_never_a_secret() {
        let now = now();
        let token = |id: &str, expires_at, revoked_at| TokenInfo {
            id: id.to_owned(),
            name: "ci".to_owned(),
            user_id: "u1".to_owned(),
            user_name: Some("alice".to_owned()),
            created_at: now - 10.0,
            expires_at,
            last_used_at: None,
            revoked_at,
        };
        let table = tokens_table(
            &[
                token("t1", None, None),
                token("t2", Some(now - 1.0), None),
                token("t3", Some(now + 86400.0 * 2.5), Some(now - 1.0)),
            ],
            now,
        );
        let status = |id: &str| {
            let line = table.lines().find(|l| l.starts_with(id)).unwrap();
            line.split_whitespace().last().unwrap().to_owned()
        };
        assert!(table.starts_with("ID"), "{table}");
        assert_eq!(status("t1"), "active");
        assert_eq!(status("t2"), "expired");
        assert_eq!(status("t3"), "revoked");
        assert!(table.contains("in 2 days"), "{table}");
        assert!(table.contains("never"), "{table}");
    }
}
