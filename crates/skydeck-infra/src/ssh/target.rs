//! Which node to reach: names parsed once, so nothing that reaches `ssh`'s
//! command line can be read by it as an option.

use std::fmt;
use std::path::PathBuf;

/// A host as `ssh` takes it: an alias from the SSH config, a DNS name or an
/// address. Never starts with `-` (ssh would read an option) and holds no
/// `@`, spaces or control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshHost(String);

impl SshHost {
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
            Err(format!(
                "{text:?} is not a host: use an SSH config alias, a DNS name or an IP address \
                 (letters, digits, '-', '.', '_', ':'; not starting with '-')"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SshHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A login name on the remote host, in the portable POSIX form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshUser(String);

impl SshUser {
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
                "{text:?} is not a user name: start with a letter or '_', then letters, \
                 digits, '_', '.' or '-' (at most 32)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One node to reach. Anything left `None` comes from the SSH config (or
/// ssh's defaults), as it would for `ssh HOST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub host: SshHost,
    pub user: Option<SshUser>,
    pub port: Option<u16>,
    /// Used alone (IdentitiesOnly) when given; otherwise the config's keys
    /// and the agent's.
    pub identity_file: Option<PathBuf>,
    /// Hosts to go through, first one first (`ssh -J`).
    pub jump: Vec<SshHost>,
}

impl SshTarget {
    pub fn new(host: SshHost) -> Self {
        Self {
            host,
            user: None,
            port: None,
            identity_file: None,
            jump: Vec::new(),
        }
    }
}

impl fmt::Display for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{}@", user.as_str())?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
