//! `skydeck users …`: who may use an API server with authentication on,
//! and as what.

use super::{password, prompt};
use crate::cli::{
    UserAddArgs, UserDeleteArgs, UserImportArgs, UserSetPasswordArgs, UserSetRoleArgs,
};
use crate::table::{Table, ago};
use anyhow::Context;
use skydeck_client::Client;
use skydeck_client::admin::{NewUser, UserInfo, UserUpdate};
use std::process::ExitCode;

pub async fn add(client: &Client, args: &UserAddArgs) -> anyhow::Result<ExitCode> {
    let password = if args.no_password {
        None
    } else {
        let hint = "pipe the password into --password-stdin, or pass --no-password for a user \
                    who only uses service-account tokens";
        Some(password::read_new(&args.password, &args.name, hint).await?)
    };
    let without_password = password.is_none();
    let user = client
        .create_user(&NewUser {
            name: args.name.clone(),
            password,
            role: Some(args.role.into()),
        })
        .await?;
    println!("Added {} {} ({}).", user.role, user.name, user.id);
    if without_password {
        println!(
            "They have no password; make them a token with `skydeck tokens create NAME --user {}`.",
            user.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn list(client: &Client) -> anyhow::Result<ExitCode> {
    let users = client.list_users().await?;
    if users.is_empty() {
        println!("No users.");
    } else {
        println!("{}", users_table(&users));
    }
    Ok(ExitCode::SUCCESS)
}

fn users_table(users: &[UserInfo]) -> String {
    let mut table = Table::new(&["NAME", "ID", "ROLE", "PASSWORD", "CREATED"]);
    for user in users {
        table.row(vec![
            user.name.clone(),
            user.id.clone(),
            user.role.to_string(),
            if user.has_password { "yes" } else { "no" }.to_owned(),
            ago(user.created_at),
        ]);
    }
    table.render()
}

pub async fn set_role(client: &Client, args: &UserSetRoleArgs) -> anyhow::Result<ExitCode> {
    let user = client
        .update_user(&UserUpdate {
            user: args.name.clone(),
            role: Some(args.role.into()),
            password: None,
            current_password: None,
        })
        .await?;
    println!("{} is now {}.", user.name, with_article(user.role));
    Ok(ExitCode::SUCCESS)
}

fn with_article(role: skydeck_client::admin::Role) -> String {
    match role {
        skydeck_client::admin::Role::Admin => "an admin".to_owned(),
        skydeck_client::admin::Role::User => "a user".to_owned(),
    }
}

pub async fn set_password(client: &Client, args: &UserSetPasswordArgs) -> anyhow::Result<ExitCode> {
    // Without a name it is your own password: the one change anyone may
    // make, so ask the server who "you" are.
    let me = client.me().await?;
    let name = args.name.clone().unwrap_or_else(|| me.name.clone());
    let own = name == me.name || name == me.id;
    let hint = "pipe the password into --password-stdin";
    // Your own password is changed only by whoever knows it, not by
    // whoever holds your token or your unlocked terminal.
    let passwords = if own && me.has_password {
        let (current, new) = password::read_change(&args.password, &name).await?;
        (Some(current), new)
    } else {
        (None, password::read_new(&args.password, &name, hint).await?)
    };
    let user = client
        .update_user(&UserUpdate {
            user: name,
            role: None,
            password: Some(passwords.1),
            current_password: passwords.0,
        })
        .await?;
    println!("Password of {} changed.", user.name);
    Ok(ExitCode::SUCCESS)
}

pub async fn delete(client: &Client, args: &UserDeleteArgs) -> anyhow::Result<ExitCode> {
    if !args.yes
        && !prompt::confirm(&format!(
            "Deleting user {} and revoking their service-account tokens",
            args.name
        ))?
    {
        eprintln!("Aborted.");
        return Ok(ExitCode::FAILURE);
    }
    let deleted = client.delete_user(&args.name).await?;
    let tokens = match deleted.revoked_tokens {
        Some(1) => "; 1 service-account token revoked".to_owned(),
        Some(n) => format!("; {n} service-account tokens revoked"),
        None => "; their service-account tokens are revoked".to_owned(),
    };
    println!(
        "Deleted user {} ({}){tokens}.",
        deleted.name, deleted.deleted
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn import(client: &Client, args: &UserImportArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let imported = client
        .import_htpasswd(&text)
        .await
        .with_context(|| format!("{} was not imported", args.file.display()))?;
    let noun = if imported == 1 { "user" } else { "users" };
    println!("Imported {imported} {noun} from {}.", args.file.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skydeck_client::admin::Role;

    #[test]
    fn the_users_table_says_who_can_log_in_with_a_password() {
        let user = |name: &str, role, has_password| UserInfo {
            id: format!("id-{name}"),
            name: name.to_owned(),
            role,
            created_at: 0.0,
            has_password,
        };
        let table = users_table(&[
            user("admin", Role::Admin, true),
            user("ci", Role::User, false),
        ]);
        let lines: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines[0], ["NAME", "ID", "ROLE", "PASSWORD", "CREATED"]);
        assert_eq!(lines[1][..4], ["admin", "id-admin", "admin", "yes"]);
        assert_eq!(lines[2][..4], ["ci", "id-ci", "user", "no"]);
    }
}
