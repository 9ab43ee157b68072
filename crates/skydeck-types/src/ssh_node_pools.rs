//! SkyPilot's SSH Node Pools file (`~/.sky/ssh_node_pools.yaml`), parsed
//! once into types that cannot hold a host or user name `ssh` would misread.
//!
//! The format is SkyPilot 0.14.1's (`sky/ssh_node_pools/utils.py`): a
//! mapping from pool name to pool; a pool has `hosts` (required, not empty)
//! and defaults `user`, `identity_file` and `password` (a sudo password,
//! never an SSH one); a host is a string (an address, a DNS name, or an
//! alias from the SSH config) or a mapping with `ip` and its own `user`,
//! `identity_file`, `password`. The official client's `sky ssh up -f` also
//! sends `use_ssh_config`, which SkyPilot computes itself; it is accepted.

use crate::names::PoolName;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// A host as `ssh` takes it: an alias from the SSH config, a DNS name or an
/// address. Never starts with `-` (ssh would read an option) and holds no
/// `@`, spaces, quotes or control characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SshHost(String);

impl SshHost {
    pub const RULE: &'static str = "a host is an SSH config alias, a DNS name or an IP address: \
        letters, digits, '-', '.', '_', ':' (and '[', ']', '%' for IPv6), at most 253, \
        not starting with '-'";

    pub fn parse(text: &str) -> Result<Self, String> {
        let ok = !text.is_empty()
            && text.len() <= 253
            && !text.starts_with('-')
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:[]%".contains(&b));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!("{:?} is not a host: {}", shown(text), Self::RULE))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A login name on a remote host, in the portable POSIX form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SshUser(String);

impl SshUser {
    pub const RULE: &'static str = "a user name starts with a letter or '_', then letters, \
        digits, '_', '.' or '-', at most 32";

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut bytes = text.bytes();
        let ok = text.len() <= 32
            && bytes
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "{:?} is not a user name: {}",
                shown(text),
                Self::RULE
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SkyPilot writes an unset `user`, `identity_file` or `password` as `''`
/// (`sky ssh up -f` sends every host that way): empty means absent.
fn empty_is_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    use serde::de::IntoDeserializer;
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        Some(text) if text.is_empty() => Ok(None),
        Some(text) => T::deserialize(text.into_deserializer()).map(Some),
    }
}

/// A bounded prefix of a refused value, for messages.
fn shown(text: &str) -> String {
    text.chars().take(80).collect()
}

macro_rules! text_serde {
    ($Type:ident) => {
        impl fmt::Display for $Type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $Type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $Type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

text_serde!(SshHost);
text_serde!(SshUser);

/// A sudo password from the pool file: kept out of `Debug` output and logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SudoPassword(String);

impl SudoPassword {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SudoPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SudoPassword(…)")
    }
}

/// The whole file: pools by name, in name order.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(transparent)]
pub struct NodePools {
    pub pools: BTreeMap<PoolName, NodePool>,
}

/// As SkyPilot: a pool named twice is an error, not the last one winning.
impl<'de> Deserialize<'de> for NodePools {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pools;
        impl<'de> serde::de::Visitor<'de> for Pools {
            type Value = NodePools;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping from pool name to pool")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<NodePools, A::Error> {
                let mut pools = BTreeMap::new();
                while let Some(name) = map.next_key::<PoolName>()? {
                    if pools.contains_key(&name) {
                        return Err(serde::de::Error::custom(format!(
                            "duplicate pool {name}: each pool is listed once"
                        )));
                    }
                    let pool: NodePool = map.next_value()?;
                    pools.insert(name, pool);
                }
                Ok(NodePools { pools })
            }
        }
        deserializer.deserialize_map(Pools)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePool {
    pub hosts: Vec<PoolHostEntry>,
    #[serde(
        default,
        deserialize_with = "empty_is_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub user: Option<SshUser>,
    /// A path on the server; `~` is the server user's home.
    #[serde(
        default,
        deserialize_with = "empty_is_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub identity_file: Option<String>,
    #[serde(
        default,
        deserialize_with = "empty_is_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub password: Option<SudoPassword>,
}

/// One entry of `hosts`, as written.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PoolHostEntry {
    Name(SshHost),
    Detailed(HostSpec),
}

/// By hand rather than `untagged`, so a bad entry's error says what is
/// wrong with it instead of "did not match any variant".
impl<'de> Deserialize<'de> for PoolHostEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) => SshHost::parse(&text)
                .map(Self::Name)
                .map_err(D::Error::custom),
            value @ serde_json::Value::Object(_) => serde_json::from_value(value)
                .map(Self::Detailed)
                .map_err(|e| D::Error::custom(format!("a host: {e}"))),
            other => Err(D::Error::custom(format!(
                "a host is a string (address, DNS name or SSH config alias) or a mapping with `ip`, not {other}"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// SkyPilot skips (with a warning) an entry without `ip`.
    #[serde(default)]
    pub ip: Option<SshHost>,
    #[serde(
        default,
        deserialize_with = "empty_is_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub user: Option<SshUser>,
    #[serde(
        default,
        deserialize_with = "empty_is_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub identity_file: Option<String>,
    #[serde(
        default,
        deserialize_with = "empty_is_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub password: Option<SudoPassword>,
    /// Sent by `sky ssh up -f`; SkyPilot decides it from the SSH config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_ssh_config: Option<bool>,
}

/// One host of a pool with the pool's defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolHost {
    pub host: SshHost,
    pub user: Option<SshUser>,
    pub identity_file: Option<String>,
    pub password: Option<SudoPassword>,
}

impl NodePools {
    /// Parses the file's text. An empty file is no pools.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let pools: Option<Self> =
            serde_yaml_ng::from_str(text).map_err(|e| format!("ssh_node_pools.yaml: {e}"))?;
        let pools = pools.unwrap_or_default();
        for (name, pool) in &pools.pools {
            if pool.hosts.is_empty() {
                return Err(format!(
                    "ssh_node_pools.yaml: pool {name} has no hosts: list at least one under `hosts:`"
                ));
            }
        }
        Ok(pools)
    }
}

impl NodePool {
    /// The pool's hosts with its defaults applied, and a warning for each
    /// entry skipped as SkyPilot skips it (a mapping without `ip`).
    pub fn hosts(&self) -> (Vec<PoolHost>, Vec<String>) {
        let mut hosts = Vec::new();
        let mut warnings = Vec::new();
        for (index, entry) in self.hosts.iter().enumerate() {
            match entry {
                PoolHostEntry::Name(host) => hosts.push(PoolHost {
                    host: host.clone(),
                    user: self.user.clone(),
                    identity_file: self.identity_file.clone(),
                    password: self.password.clone(),
                }),
                PoolHostEntry::Detailed(spec) => match &spec.ip {
                    Some(ip) => hosts.push(PoolHost {
                        host: ip.clone(),
                        user: spec.user.clone().or_else(|| self.user.clone()),
                        identity_file: spec
                            .identity_file
                            .clone()
                            .or_else(|| self.identity_file.clone()),
                        password: spec.password.clone().or_else(|| self.password.clone()),
                    }),
                    None => warnings.push(format!(
                        "host {} of the pool has no `ip`: skipped",
                        index + 1
                    )),
                },
            }
        }
        (hosts, warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
mypool:
  user: ubuntu
  identity_file: ~/.ssh/pool_key
  password: sudo-pass
  hosts:
    - 10.0.0.1
    - ip: 10.0.0.2
      user: admin
      identity_file: ~/.ssh/other_key
    - gpu-box
    - user: nobody
other:
  hosts: [h1]
"#;

    #[test]
    fn skypilots_example_parses_with_defaults_applied() {
        let pools = NodePools::from_yaml(EXAMPLE).unwrap();
        let names: Vec<&str> = pools.pools.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["mypool", "other"]);
        let (hosts, warnings) = pools.pools["mypool"].hosts();
        let summary: Vec<(String, Option<String>, Option<String>)> = hosts
            .iter()
            .map(|h| {
                (
                    h.host.to_string(),
                    h.user.as_ref().map(|u| u.to_string()),
                    h.identity_file.clone(),
                )
            })
            .collect();
        let own =
            |h: &str, u: &str, k: &str| (h.to_owned(), Some(u.to_owned()), Some(k.to_owned()));
        assert_eq!(
            summary,
            [
                own("10.0.0.1", "ubuntu", "~/.ssh/pool_key"),
                own("10.0.0.2", "admin", "~/.ssh/other_key"),
                own("gpu-box", "ubuntu", "~/.ssh/pool_key"),
            ]
        );
        assert_eq!(
            hosts[0].password.as_ref().map(SudoPassword::expose),
            Some("sudo-pass")
        );
        assert_eq!(warnings, ["host 4 of the pool has no `ip`: skipped"]);
        assert!(
            !format!("{pools:?}").contains("sudo-pass"),
            "the password stays out of Debug"
        );
    }

    #[test]
    fn what_the_official_client_uploads_parses() {
        // `sky ssh up -f`: POST /ssh_node_pools with resolved hosts.
        let body = r#"{"mypool": {"hosts": [{"ip": "10.0.0.1", "user": "ubuntu",
            "identity_file": "/root/.sky/ssh_keys/mypool-0-abcd", "password": null,
            "use_ssh_config": false}]}}"#;
        let pools = NodePools::from_yaml(body).unwrap();
        assert_eq!(pools.pools["mypool"].hosts().0.len(), 1);
        // What 0.14.1 really sends for a pool without user or password.
        let body = r#"{"p": {"hosts": [{"ip": "10.0.0.1", "user": "",
            "identity_file": "/k", "password": "", "use_ssh_config": false}]}}"#;
        let pools: NodePools = serde_json::from_str(body).unwrap();
        let host = &pools.pools["p"].hosts().0[0];
        assert_eq!(host.user, None);
        assert_eq!(host.password, None);
        assert_eq!(host.identity_file.as_deref(), Some("/k"));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        for (text, expected) in [
            ("p:\n  hosts: []\n", "pool p has no hosts"),
            ("p:\n  user: u\n", "missing field `hosts`"),
            ("p:\n  hosts: [-oProxyCommand=id]\n", "is not a host"),
            (
                "p:\n  hosts: [{ip: h, user: \"a b\"}]\n",
                "is not a user name",
            ),
            ("p:\n  hosts: [{ip: h, port: 2}]\n", "unknown field `port`"),
            ("p:\n  hosts: [3]\n", "a host is a string"),
            ("p:\n  hosts: [h]\n  usr: u\n", "unknown field `usr`"),
            ("p:\n  hosts: [h]\n  user: \"a b\"\n", "is not a user name"),
            ("../x:\n  hosts: [h]\n", "invalid pool name"),
            ("p:\n  hosts: [h]\np:\n  hosts: [h]\n", "duplicate"),
        ] {
            let err = NodePools::from_yaml(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        assert_eq!(NodePools::from_yaml("").unwrap(), NodePools::default());
        assert_eq!(
            NodePools::from_yaml("# nothing\n").unwrap(),
            NodePools::default()
        );
    }

    #[test]
    fn hosts_that_ssh_would_misread_are_refused() {
        for good in [
            "h1",
            "10.0.0.2",
            "node-1.example.com",
            "fe80::1%eth0",
            "[::1]",
        ] {
            assert!(SshHost::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-oProxyCommand=id",
            "a b",
            "root@h1",
            "h1\n",
            "a;b",
            "$(id)",
        ] {
            let err = SshHost::parse(bad).unwrap_err();
            assert!(err.contains("is not a host"), "{bad}: {err}");
        }
    }

    #[test]
    fn user_names_are_posix_ones() {
        assert!(SshUser::parse("ubuntu").is_ok());
        assert!(SshUser::parse("_svc.x-1").is_ok());
        for bad in ["", "-l", "a b", "1abc", "a@b", &"x".repeat(33)] {
            assert!(SshUser::parse(bad).is_err(), "{bad}");
        }
    }
}
