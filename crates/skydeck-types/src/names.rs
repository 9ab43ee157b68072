//! Names users choose, parsed once at the trust boundary.
//!
//! A user-chosen string that becomes a path, a process argument, a label or
//! a database key is parsed into one of these types where it enters the
//! server (serde does it while decoding a body), so code behind the boundary
//! cannot hold a bad one. Each type's rule keeps it a single, harmless path
//! component: no `/`, no `.` or `..`, no control characters, bounded length.
//!
//! Paths built from any user input go through [`confine`], which proves the
//! result stays under its root.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// A string that broke a name's rule. Its message states the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    kind: &'static str,
    value: String,
    rule: &'static str,
}

impl NameError {
    /// What kind of name was refused (`cluster name`, `upload id`, …).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The rule the value broke, in words.
    pub fn rule(&self) -> &'static str {
        self.rule
    }
}

/// Every name error starts with this, so the HTTP layer can tell a broken
/// naming rule (400) from a malformed body (422).
pub const NAME_ERROR_PREFIX: &str = "invalid ";

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hostile value may be huge or full of control characters: show a
        // bounded, escaped prefix of it.
        let shown: String = self.value.chars().take(80).collect();
        let more = if self.value.chars().count() > 80 {
            "…"
        } else {
            ""
        };
        write!(
            f,
            "{NAME_ERROR_PREFIX}{} {:?}{more}: {}",
            self.kind, shown, self.rule
        )
    }
}

impl std::error::Error for NameError {}

/// Whether `message` (an error's text, possibly wrapped by serde) reports a
/// broken naming rule.
pub fn is_name_error(message: &str) -> bool {
    message
        .strip_prefix(NAME_ERROR_PREFIX)
        .is_some_and(|rest| NAME_KINDS.iter().any(|kind| rest.starts_with(kind)))
}

macro_rules! name_type {
    (
        $(#[$meta:meta])*
        $Type:ident, $kind:literal, $rule:literal, $check:expr
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $Type(String);

        impl $Type {
            /// The rule a value must follow, in words.
            pub const RULE: &'static str = $rule;

            /// Parses `value`, refusing it with the rule when it breaks it.
            pub fn new(value: impl Into<String>) -> Result<Self, NameError> {
                let value = value.into();
                let check: fn(&str) -> bool = $check;
                if check(&value) {
                    Ok(Self(value))
                } else {
                    Err(NameError { kind: $kind, value, rule: $rule })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $Type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $Type {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $Type {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $Type {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $Type {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $Type {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl std::str::FromStr for $Type {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $Type {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $Type {
            type Error = NameError;
            fn try_from(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl From<$Type> for String {
            fn from(name: $Type) -> String {
                name.0
            }
        }

        impl Serialize for $Type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $Type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::new(value).map_err(serde::de::Error::custom)
            }
        }

    };
}

/// The kinds above, for [`is_name_error`].
const NAME_KINDS: &[&str] = &[
    "cluster name",
    "user name",
    "user id",
    "workspace name",
    "token name",
    "pool name",
    "SSH key name",
    "job name",
    "upload id",
    "request id",
];

/// Longest cluster name: a DNS label, so it fits a Kubernetes label value
/// and a host name on every backend.
pub const MAX_CLUSTER_NAME: usize = 63;
const MAX_USER_NAME: usize = 128;
const MAX_USER_ID: usize = 64;
const MAX_SHORT_NAME: usize = 63;
const MAX_JOB_NAME: usize = 128;

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')
}

/// SkyPilot's rule: a letter, then letters, digits, `-`, `_`, `.`, ending
/// in a letter or digit.
fn valid_cluster_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=MAX_CLUSTER_NAME).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b.iter().copied().all(is_name_char)
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A letter or digit, then letters, digits, `-`, `_`, `.`; never `.`/`..`.
fn valid_short_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=MAX_SHORT_NAME).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter().copied().all(is_name_char)
}

/// SkyPilot's workspace rule, `^[a-zA-Z0-9][a-zA-Z0-9_-]*$`, bounded.
fn valid_workspace_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=MAX_SHORT_NAME).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'))
}

fn valid_user_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=MAX_USER_NAME).contains(&b.len())
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| is_name_char(c) || matches!(c, b'@' | b'+'))
}

fn valid_user_id(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=MAX_USER_ID).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
}

fn valid_job_name(s: &str) -> bool {
    (1..=MAX_JOB_NAME).contains(&s.chars().count()) && !s.chars().any(char::is_control)
}

fn valid_blob_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fn valid_request_id(s: &str) -> bool {
    (1..=36).contains(&s.len())
        && s.bytes()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f' | b'-'))
}

name_type!(
    /// A cluster's name: SkyPilot's rule, bounded to a DNS label.
    ClusterName,
    "cluster name",
    "a cluster name starts with a letter, contains only letters, digits, '-', '_' and '.', ends with a letter or digit, and is at most 63 characters long (for example my-cluster-1)",
    valid_cluster_name
);

name_type!(
    /// A user's login or display name (`alice`, `alice@example.com`).
    UserName,
    "user name",
    "a user name starts with a letter, digit or '_', contains only letters, digits, '-', '_', '.', '@' and '+', and is at most 128 characters long",
    valid_user_name
);

name_type!(
    /// A user's id: SkyPilot's user hash (`^[a-zA-Z0-9][a-zA-Z0-9-]*$`).
    UserId,
    "user id",
    "a user id starts with a letter or digit and contains only letters, digits and '-', at most 64 characters (SkyPilot's user hash)",
    valid_user_id
);

name_type!(
    /// A workspace's name.
    WorkspaceName,
    "workspace name",
    "a workspace name starts with a letter or digit, contains only letters, digits, '-' and '_', and is at most 63 characters long",
    valid_workspace_name
);

name_type!(
    /// A service-account token's name.
    TokenName,
    "token name",
    "a token name starts with a letter or digit, contains only letters, digits, '-', '_' and '.', and is at most 63 characters long",
    valid_short_name
);

name_type!(
    /// An SSH node pool's name (a key of `ssh_node_pools.yaml`).
    PoolName,
    "pool name",
    "a pool name starts with a letter or digit, contains only letters, digits, '-', '_' and '.', and is at most 63 characters long",
    valid_short_name
);

name_type!(
    /// A private key's file name in the server's SSH key store
    /// (`POST /ssh_node_pools/keys`): one path component, never hidden.
    SshKeyName,
    "SSH key name",
    "an SSH key name starts with a letter or digit, contains only letters, digits, '-', '_' and '.', and is at most 63 characters long (for example mypool-0-ab12)",
    valid_short_name
);

name_type!(
    /// A task's (job's) name, shown in queues; never a path.
    JobName,
    "job name",
    "a job name is 1 to 128 characters without control characters",
    valid_job_name
);

name_type!(
    /// An upload's id: the SHA-256 of its content, in lower-case hex.
    BlobId,
    "upload id",
    "an upload id is the 64 lower-case hex digits of a SHA-256",
    valid_blob_id
);

name_type!(
    /// A request id or a prefix of one (lower-case hex and '-').
    RequestIdPrefix,
    "request id",
    "a request id (or its prefix) is 1 to 36 characters of lower-case hex digits and '-'",
    valid_request_id
);

/// A relative path that would leave its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathEscape {
    pub path: String,
}

impl fmt::Display for PathEscape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "path {:?} is not a plain relative path (it is absolute, climbs out with '..', or is empty)",
            self.path
        )
    }
}

impl std::error::Error for PathEscape {}

/// Joins `relative` under `root`, proving the result stays there.
///
/// Only plain components are allowed (`.` is skipped); an absolute path,
/// `..` anywhere, or nothing at all is refused. The check is lexical: it
/// does not follow symbolic links, so callers that write through existing
/// directories must refuse links themselves (`uploads` does).
pub fn confine(root: &Path, relative: impl AsRef<Path>) -> Result<PathBuf, PathEscape> {
    let relative = relative.as_ref();
    let escape = || PathEscape {
        path: relative.to_string_lossy().chars().take(200).collect(),
    };
    let mut out = root.to_path_buf();
    let mut parts = 0usize;
    for component in relative.components() {
        match component {
            Component::Normal(part) => {
                out.push(part);
                parts += 1;
            }
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(escape());
            }
        }
    }
    if parts == 0 {
        return Err(escape());
    }
    debug_assert!(out.starts_with(root));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_follow_skypilots_rule() {
        for good in ["a", "my-cluster", "c1.dev_2", "A-b-C"] {
            assert!(ClusterName::new(good).is_ok(), "{good}");
        }
        let too_long = "a".repeat(64);
        for bad in [
            "", "..", ".", "/etc", "a/b", "-a", "1abc", "a-", "a b", "a\0b", "é", &too_long,
        ] {
            let err = ClusterName::new(bad).unwrap_err();
            assert!(is_name_error(&err.to_string()), "{err}");
            assert!(err.to_string().contains("starts with a letter"), "{err}");
        }
    }

    #[test]
    fn names_deserialize_through_their_rule() {
        let name: ClusterName = serde_json::from_str(r#""c1""#).unwrap();
        assert_eq!(name, "c1");
        let err = serde_json::from_str::<ClusterName>(r#""../x""#).unwrap_err();
        assert!(is_name_error(&err.to_string()), "{err}");
    }

    #[test]
    fn a_hostile_value_is_shown_bounded() {
        let err = ClusterName::new("x".repeat(10_000) + "/").unwrap_err();
        assert!(err.to_string().len() < 500);
    }

    #[test]
    fn blob_ids_are_lower_case_sha256_hex() {
        assert!(BlobId::new("a".repeat(64)).is_ok());
        assert!(BlobId::new("A".repeat(64)).is_err());
        assert!(BlobId::new("a".repeat(63)).is_err());
        assert!(BlobId::new(format!("{}/", "a".repeat(63))).is_err());
    }

    #[test]
    fn confine_refuses_every_way_out() {
        let root = Path::new("/srv/root");
        assert_eq!(confine(root, "a/./b").unwrap(), Path::new("/srv/root/a/b"));
        for bad in ["", ".", "..", "../x", "a/../../x", "/etc/passwd", "a/.."] {
            assert!(confine(root, bad).is_err(), "{bad:?}");
        }
    }
}
