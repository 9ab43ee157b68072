//! Putting a program on a host, content-addressed: it lands at
//! `~/.skydeck/bin/<sha256>/<name>`, so installing the same build again is
//! a no-op and two builds never overwrite each other (a running agent keeps
//! its file).

use super::probe::{HostFacts, Libc};
use super::runner::SshRunner;
use crate::runner::CommandRunner;
use crate::{InfraError, Result};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Where an install put the program, and whether it had to copy it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Relative to the login's home (commands start there).
    pub path: String,
    /// False when that build was already there.
    pub copied: bool,
}

/// What a binary built here needs from a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinaryPlatform {
    /// As `uname -m` says it.
    pub arch: &'static str,
    /// Linked against glibc (a musl build is static and needs no libc).
    pub glibc: bool,
}

impl BinaryPlatform {
    /// The platform of this very process, which is the agent the server
    /// installs (the `skydeck` binary).
    pub const fn current() -> Self {
        Self {
            arch: std::env::consts::ARCH,
            glibc: cfg!(target_env = "gnu"),
        }
    }

    /// Refuses a host this binary cannot run on, saying what would.
    pub fn check(&self, host: &str, facts: &HostFacts) -> Result<()> {
        let libc_ok = !self.glibc || matches!(facts.libc, Libc::Glibc { .. });
        if facts.arch == self.arch && libc_ok {
            return Ok(());
        }
        let libc = match &facts.libc {
            Libc::Glibc { version } => format!("glibc {version}"),
            Libc::Musl => "musl".to_owned(),
            Libc::Unknown => "an unknown C library".to_owned(),
        };
        Err(InfraError::Unsatisfiable(format!(
            "{host} is {} Linux with {libc}, but this server's agent binary is for {}{}: \
             run a skydeck built for {}-unknown-linux-musl (static, runs on any {} Linux), \
             or remove the host from the pool",
            facts.arch,
            self.arch,
            if self.glibc { " with glibc" } else { "" },
            facts.arch,
            facts.arch,
        )))
    }
}

/// A program read and hashed once, to install on many hosts (hashing a
/// large binary costs more than checking that a host has it).
#[derive(Debug, Clone)]
pub struct ProgramImage {
    source: std::path::PathBuf,
    content: std::sync::Arc<Vec<u8>>,
    sha: String,
}

impl ProgramImage {
    pub async fn read(local: &Path) -> Result<Self> {
        let content = tokio::fs::read(local)
            .await
            .map_err(InfraError::io(format!("cannot read {}", local.display())))?;
        let (content, sha) = tokio::task::spawn_blocking(move || {
            let sha = format!("{:x}", Sha256::digest(&content));
            (content, sha)
        })
        .await
        .map_err(|e| InfraError::Command(format!("hashing {} failed: {e}", local.display())))?;
        Ok(Self {
            source: local.to_owned(),
            content: std::sync::Arc::new(content),
            sha,
        })
    }
}

impl SshRunner {
    /// Installs `local` (an executable) under its content hash as `name`.
    pub async fn install_program(&self, local: &Path, name: &str) -> Result<Installed> {
        self.install_image(&ProgramImage::read(local).await?, name)
            .await
    }

    /// Installs a program read beforehand under its content hash as `name`.
    pub async fn install_image(&self, image: &ProgramImage, name: &str) -> Result<Installed> {
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && !name.starts_with('.');
        if !valid_name {
            return Err(InfraError::Refused(format!(
                "{name:?} is not a program name (letters, digits, '-', '_', '.')"
            )));
        }
        let local = &image.source;
        let sha = &image.sha;
        let dir = format!(".skydeck/bin/{sha}");
        let path = format!("{dir}/{name}");
        let there = self
            .run(&argv(&["test", "-x", &path]), None)
            .await?
            .success();
        if there {
            return Ok(Installed {
                path,
                copied: false,
            });
        }
        // Written beside, checked, then renamed: a half-copied file never
        // sits at the content-addressed path.
        let script = r#"set -e
mkdir -p "$1"
part="$1/.partial.$$"
trap 'rm -f "$part"' EXIT
cat >"$part"
sum=$(sha256sum "$part" | cut -d' ' -f1)
if [ "$sum" != "$2" ]; then echo "the copy's sha256 is $sum, not $2" >&2; exit 5; fi
chmod 755 "$part"
mv -f "$part" "$1/$3"
"#;
        let out = self
            .run(
                &argv(&["sh", "-c", script, "install", &dir, sha, name]),
                Some(image.content.as_ref().clone()),
            )
            .await?;
        if !out.success() {
            return Err(InfraError::Command(format!(
                "installing {} on {} failed: {}",
                local.display(),
                self.target(),
                out.stderr.trim()
            )));
        }
        Ok(Installed { path, copied: true })
    }
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::probe::Privilege;

    fn facts(arch: &str, libc: Libc) -> HostFacts {
        HostFacts {
            hostname: "h".into(),
            arch: arch.into(),
            libc,
            cpus: 1,
            memory_bytes: 1,
            gpus: Vec::new(),
            privilege: Privilege::Root,
        }
    }

    #[test]
    fn a_binary_fits_its_arch_and_libc_only() {
        let gnu = BinaryPlatform {
            arch: "x86_64",
            glibc: true,
        };
        let musl = BinaryPlatform {
            arch: "x86_64",
            glibc: false,
        };
        let glibc = Libc::Glibc {
            version: "2.36".into(),
        };
        assert!(gnu.check("h", &facts("x86_64", glibc.clone())).is_ok());
        assert!(musl.check("h", &facts("x86_64", Libc::Musl)).is_ok());
        let err = gnu
            .check("h1", &facts("x86_64", Libc::Musl))
            .unwrap_err()
            .to_string();
        assert!(err.contains("h1 is x86_64 Linux with musl"), "{err}");
        assert!(err.contains("x86_64-unknown-linux-musl"), "{err}");
        let err = gnu.check("h2", &facts("aarch64", glibc)).unwrap_err();
        assert!(matches!(err, InfraError::Unsatisfiable(_)));
        assert!(
            err.to_string().contains("aarch64-unknown-linux-musl"),
            "{err}"
        );
    }
}
