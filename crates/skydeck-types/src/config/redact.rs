//! Hiding the config's secrets when it is shown through the API, and
//! putting them back when an admin saves an edited copy.
//!
//! The secrets are `api_server.service_account_token` and the password in
//! the `db` URL (in its user part, `postgresql://user:PASSWORD@host/db`, or
//! as a `password=` query parameter).

use super::REDACTED;
use serde_json::Value as Json;

/// Replaces every secret in `config` with `<redacted>`.
pub fn redact_config(config: &mut Json) {
    if let Some(token) = config
        .get_mut("api_server")
        .and_then(|server| server.get_mut("service_account_token"))
        .filter(|token| !token.is_null())
    {
        *token = Json::String(REDACTED.to_owned());
    }
    if let Some(Json::String(url)) = config.get_mut("db") {
        *url = DbUrl::parse(url).redacted();
    }
}

/// Wherever `new` still holds `<redacted>` where `old` has a value, puts
/// the old value back, so a config fetched redacted, edited and saved
/// keeps its secrets. A `db` URL whose password was left redacted gets the
/// old password even when its host or user changed.
pub fn restore_redacted(new: &mut Json, old: &Json) {
    restore(new, old);
    if let (Some(Json::String(new_url)), Some(Json::String(old_url))) =
        (new.get_mut("db"), old.get("db"))
    {
        *new_url = DbUrl::parse(new_url).with_secrets_of(&DbUrl::parse(old_url));
    }
}

fn restore(new: &mut Json, old: &Json) {
    if new.as_str() == Some(REDACTED) {
        if !old.is_null() {
            *new = old.clone();
        }
        return;
    }
    match (new, old) {
        (Json::Object(new_map), Json::Object(old_map)) => {
            for (key, value) in new_map.iter_mut() {
                if let Some(old_value) = old_map.get(key) {
                    restore(value, old_value);
                }
            }
        }
        (Json::Array(new_items), Json::Array(old_items)) => {
            for (value, old_value) in new_items.iter_mut().zip(old_items) {
                restore(value, old_value);
            }
        }
        _ => {}
    }
}

/// A database URL cut where its secrets sit.
#[derive(Debug, PartialEq)]
struct DbUrl<'a> {
    /// Up to and including the `:` before the password, or the whole URL
    /// when it has no password in its user part.
    head: &'a str,
    /// The password in the user part.
    password: Option<&'a str>,
    /// From the `@` after the password to the query.
    middle: &'a str,
    /// The query's `key=value` pairs.
    query: Vec<(&'a str, Option<&'a str>)>,
}

impl<'a> DbUrl<'a> {
    fn parse(url: &'a str) -> Self {
        let (before_query, query) = match url.split_once('?') {
            Some((before, query)) => (before, Some(query)),
            None => (url, None),
        };
        let query = query
            .map(|q| {
                q.split('&')
                    .map(|pair| match pair.split_once('=') {
                        Some((key, value)) => (key, Some(value)),
                        None => (pair, None),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let authority_start = before_query.find("://").map_or(0, |i| i + 3);
        // The user part ends at the last `@`: a password may hold `@` or
        // `/` when it was not percent-encoded, a host never does.
        let user_part = before_query[authority_start..]
            .rfind('@')
            .map(|at| (authority_start, authority_start + at));
        let password_cut = user_part.and_then(|(start, at)| {
            before_query[start..at]
                .find(':')
                .map(|colon| (start + colon + 1, at))
        });
        match password_cut {
            Some((from, to)) => Self {
                head: &before_query[..from],
                password: Some(&before_query[from..to]),
                middle: &before_query[to..],
                query,
            },
            None => Self {
                head: before_query,
                password: None,
                middle: "",
                query,
            },
        }
    }

    fn query_password(&self) -> Option<&'a str> {
        self.query
            .iter()
            .find(|(key, _)| *key == "password")
            .and_then(|(_, value)| *value)
    }

    fn render(&self, password: Option<&str>, query_password: Option<&str>) -> String {
        let mut url = self.head.to_owned();
        if let Some(password) = password {
            url.push_str(password);
        }
        url.push_str(self.middle);
        if !self.query.is_empty() {
            let pairs: Vec<String> = self
                .query
                .iter()
                .map(|(key, value)| match (key, value) {
                    (&"password", Some(_)) => {
                        format!("password={}", query_password.unwrap_or_default())
                    }
                    (key, Some(value)) => format!("{key}={value}"),
                    (key, None) => (*key).to_owned(),
                })
                .collect();
            url.push('?');
            url.push_str(&pairs.join("&"));
        }
        url
    }

    fn redacted(&self) -> String {
        self.render(
            self.password.map(|_| REDACTED),
            self.query_password().map(|_| REDACTED),
        )
    }

    /// This URL with each password it leaves redacted taken from `old`.
    fn with_secrets_of(&self, old: &DbUrl<'_>) -> String {
        let keep_or_restore = |new: Option<&'a str>, old: Option<&str>| -> Option<String> {
            match (new, old) {
                (Some(REDACTED), Some(old)) => Some(old.to_owned()),
                (new, _) => new.map(str::to_owned),
            }
        };
        let password = keep_or_restore(self.password, old.password);
        let query_password = keep_or_restore(self.query_password(), old.query_password());
        self.render(password.as_deref(), query_password.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret_config() -> Json {
        json!({
            "api_server": {"endpoint": "https://sky", "service_account_token": "sky_secret"},
            "db": "postgresql://skydeck:hunter2@db.internal:5432/skydeck",
            "workspaces": {"default": {}},
        })
    }

    #[test]
    fn redacts_the_token_and_the_db_password() {
        let mut config = secret_config();
        redact_config(&mut config);
        assert_eq!(config["api_server"]["service_account_token"], "<redacted>");
        assert_eq!(config["api_server"]["endpoint"], "https://sky");
        assert_eq!(
            config["db"],
            "postgresql://skydeck:<redacted>@db.internal:5432/skydeck"
        );
        assert!(!config.to_string().contains("hunter2"));
        assert!(!config.to_string().contains("sky_secret"));
    }

    #[test]
    fn db_urls_in_every_form() {
        let redact = |url: &str| DbUrl::parse(url).redacted();
        assert_eq!(redact("postgresql://u@h/db"), "postgresql://u@h/db");
        assert_eq!(redact("postgresql://h/db"), "postgresql://h/db");
        assert_eq!(
            redact("sqlite:///var/lib/state.db"),
            "sqlite:///var/lib/state.db"
        );
        assert_eq!(
            redact("postgresql://u:p@ss/w@h/db"),
            "postgresql://u:<redacted>@h/db"
        );
        assert_eq!(
            redact("postgresql://h/db?user=u&password=p&sslmode=require"),
            "postgresql://h/db?user=u&password=<redacted>&sslmode=require"
        );
        assert_eq!(
            redact("postgresql://u:p@h/db?password=q"),
            "postgresql://u:<redacted>@h/db?password=<redacted>"
        );
    }

    #[test]
    fn round_trip_puts_the_secrets_back() {
        let old = secret_config();
        let mut shown = old.clone();
        redact_config(&mut shown);
        let mut edited = shown.clone();
        edited["workspaces"]["team-a"] = json!({"private": true});
        restore_redacted(&mut edited, &old);
        assert_eq!(edited["api_server"]["service_account_token"], "sky_secret");
        assert_eq!(edited["db"], old["db"]);
        assert_eq!(edited["workspaces"]["team-a"], json!({"private": true}));
    }

    #[test]
    fn a_changed_db_host_keeps_the_old_password() {
        let old = json!({"db": "postgresql://u:hunter2@old-host/db?password=q2"});
        let mut new = json!({"db": "postgresql://u:<redacted>@new-host/db?password=<redacted>"});
        restore_redacted(&mut new, &old);
        assert_eq!(new["db"], "postgresql://u:hunter2@new-host/db?password=q2");
    }

    #[test]
    fn new_values_win_and_missing_old_values_leave_the_placeholder() {
        let old = secret_config();
        let mut new = json!({
            "api_server": {"service_account_token": "sky_rotated"},
            "db": "postgresql://u:fresh@h/db",
            "other": "<redacted>",
        });
        restore_redacted(&mut new, &old);
        assert_eq!(new["api_server"]["service_account_token"], "sky_rotated");
        assert_eq!(new["db"], "postgresql://u:fresh@h/db");
        assert_eq!(new["other"], "<redacted>");
    }
}
