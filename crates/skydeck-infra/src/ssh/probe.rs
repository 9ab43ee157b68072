//! What a host offers, read over its runner: the facts `ssh up` checks and
//! records (architecture and libc for the agent binary, CPUs, memory, GPUs
//! by index, whether it can sudo).

use crate::runner::CommandRunner;
use crate::{Capacity, InfraError, Result};
use serde::{Deserialize, Serialize};
use skydeck_types::ssh_node_pools::SudoPassword;

/// The C library the host's programs link against: an agent binary built
/// for one does not run on the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Libc {
    Glibc { version: String },
    Musl,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    /// nvidia-smi's index: what `CUDA_VISIBLE_DEVICES` names.
    pub index: u32,
    /// As nvidia-smi says it (`NVIDIA H100 80GB HBM3`).
    pub name: String,
    pub memory_mib: u64,
}

impl Gpu {
    /// The accelerator name tasks ask for (`H100`, `A100`, `L4`,
    /// `RTX4090`): the model word of nvidia-smi's name.
    pub fn accelerator(&self) -> String {
        let words: Vec<&str> = self
            .name
            .split_whitespace()
            .filter(|w| !matches!(*w, "NVIDIA" | "Tesla" | "GeForce" | "Quadro"))
            .collect();
        match words.as_slice() {
            ["RTX", model, ..] => format!("RTX{model}"),
            [model, ..] => model.split('-').next().unwrap_or(model).to_owned(),
            [] => self.name.clone(),
        }
    }
}

/// How the login may act as root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Privilege {
    /// It is root.
    Root,
    /// `sudo` works (without a password, or with the pool's).
    Sudo,
    /// Neither.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    pub hostname: String,
    /// `uname -m`: `x86_64`, `aarch64`, …
    pub arch: String,
    pub libc: Libc,
    pub cpus: u32,
    pub memory_bytes: u64,
    pub gpus: Vec<Gpu>,
    pub privilege: Privilege,
}

impl HostFacts {
    /// What the host offers to placement.
    pub fn capacity(&self) -> Capacity {
        let mut accelerators = std::collections::BTreeMap::new();
        for gpu in &self.gpus {
            *accelerators.entry(gpu.accelerator()).or_insert(0.0) += 1.0;
        }
        Capacity {
            cpus: f64::from(self.cpus),
            memory_gb: self.memory_bytes as f64 / f64::from(1u32 << 30),
            accelerators,
        }
    }
}

/// One shell script, one round trip. `$1` says whether a sudo password
/// waits on stdin. Every fact is a `key=value` line, so a missing tool
/// leaves a missing line, not a misread one.
const SCRIPT: &str = r#"
echo "hostname=$(hostname)"
echo "arch=$(uname -m)"
if v=$(getconf GNU_LIBC_VERSION 2>/dev/null); then echo "libc=$v"
elif ldd --version 2>&1 | grep -qi musl; then echo "libc=musl"
else echo "libc=unknown"; fi
echo "cpus=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"
awk '/^MemTotal:/ { print "mem_kib=" $2 }' /proc/meminfo
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits 2>/dev/null | sed 's/^/gpu=/'
fi
if [ "$(id -u)" = 0 ]; then echo "privilege=root"
elif sudo -n true 2>/dev/null; then echo "privilege=sudo"
elif [ "$1" = password ] && sudo -S -p '' true 2>/dev/null; then echo "privilege=sudo"
else echo "privilege=none"; fi
"#;

/// Reads the host's facts in one command.
pub async fn probe(
    runner: &dyn CommandRunner,
    password: Option<&SudoPassword>,
) -> Result<HostFacts> {
    let argv: Vec<String> = [
        "sh",
        "-c",
        SCRIPT,
        "probe",
        if password.is_some() {
            "password"
        } else {
            "none"
        },
    ]
    .iter()
    .map(|w| (*w).to_owned())
    .collect();
    let stdin = password.map(|p| format!("{}\n", p.expose()).into_bytes());
    let out = runner.run(&argv, stdin).await?;
    if !out.success() {
        return Err(InfraError::Command(format!(
            "reading the host's facts failed (exit {}): {}",
            out.code,
            out.stderr.trim()
        )));
    }
    parse(&out.stdout)
}

fn parse(text: &str) -> Result<HostFacts> {
    let value = |key: &str| -> Option<&str> {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
            .map(str::trim)
    };
    let missing = |what: &str| InfraError::Command(format!("could not read the host's {what}"));
    let hostname = value("hostname")
        .ok_or_else(|| missing("hostname"))?
        .to_owned();
    let arch = value("arch")
        .filter(|a| !a.is_empty())
        .ok_or_else(|| missing("architecture (uname -m)"))?
        .to_owned();
    let libc = match value("libc") {
        Some("musl") => Libc::Musl,
        Some(v) if v.starts_with("glibc ") => Libc::Glibc {
            version: v["glibc ".len()..].to_owned(),
        },
        _ => Libc::Unknown,
    };
    let cpus = value("cpus")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| missing("CPU count (nproc)"))?;
    let memory_bytes = value("mem_kib")
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| missing("memory (/proc/meminfo)"))?;
    let privilege = match value("privilege") {
        Some("root") => Privilege::Root,
        Some("sudo") => Privilege::Sudo,
        _ => Privilege::None,
    };
    let gpus = text
        .lines()
        .filter_map(|l| l.strip_prefix("gpu="))
        .map(parse_gpu)
        .collect::<Result<Vec<_>>>()?;
    Ok(HostFacts {
        hostname,
        arch,
        libc,
        cpus,
        memory_bytes,
        gpus,
        privilege,
    })
}

/// One line of `nvidia-smi --query-gpu=index,name,memory.total
/// --format=csv,noheader,nounits`: `0, NVIDIA H100 80GB HBM3, 81559`.
fn parse_gpu(line: &str) -> Result<Gpu> {
    let bad = || {
        InfraError::Command(format!(
            "nvidia-smi printed a GPU line that is not index, name, memory: {line:?}"
        ))
    };
    let mut fields = line.split(',').map(str::trim);
    let index = fields.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let name = fields
        .next()
        .filter(|n| !n.is_empty())
        .ok_or_else(bad)?
        .to_owned();
    let memory_mib = fields.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    Ok(Gpu {
        index,
        name,
        memory_mib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_with_gpus_parse() {
        let facts = parse(
            "hostname=gpu-box\narch=x86_64\nlibc=glibc 2.36\ncpus=64\nmem_kib=2097152\n\
             gpu=0, NVIDIA H100 80GB HBM3, 81559\ngpu=1, NVIDIA H100 80GB HBM3, 81559\n\
             gpu=2, NVIDIA GeForce RTX 4090, 24564\nprivilege=sudo\n",
        )
        .unwrap();
        assert_eq!(
            facts.libc,
            Libc::Glibc {
                version: "2.36".into()
            }
        );
        assert_eq!((facts.cpus, facts.memory_bytes), (64, 2 << 30));
        assert_eq!(facts.privilege, Privilege::Sudo);
        assert_eq!(facts.gpus[1].index, 1);
        let capacity = facts.capacity();
        assert_eq!(capacity.memory_gb, 2.0);
        assert_eq!(
            capacity.accelerators.into_iter().collect::<Vec<_>>(),
            [("H100".to_owned(), 2.0), ("RTX4090".to_owned(), 1.0)]
        );
    }

    #[test]
    fn accelerator_names() {
        let gpu = |name: &str| Gpu {
            index: 0,
            name: name.into(),
            memory_mib: 1,
        };
        assert_eq!(gpu("NVIDIA A100-SXM4-80GB").accelerator(), "A100");
        assert_eq!(gpu("Tesla T4").accelerator(), "T4");
        assert_eq!(gpu("NVIDIA L4").accelerator(), "L4");
    }

    #[test]
    fn missing_facts_are_named() {
        let err = parse("hostname=h\narch=x86_64\ncpus=2\n").unwrap_err();
        assert!(err.to_string().contains("memory"), "{err}");
        let err = parse("hostname=h\narch=x86_64\ncpus=2\nmem_kib=1\ngpu=zero, x\n").unwrap_err();
        assert!(err.to_string().contains("nvidia-smi printed"), "{err}");
    }
}
