//! What this machine has, and whether a node request fits on it.

use std::collections::BTreeMap;

/// Accelerators a test (or a machine without `nvidia-smi`) claims to have,
/// as `NAME:COUNT[,NAME:COUNT]`, e.g. `H100:2`.
pub const ENV_FAKE_ACCELERATORS: &str = "SKYDECK_LOCAL_ACCELERATORS";

/// What each node of a cluster must have. `None` means no requirement.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeRequest {
    pub cpus: Option<f64>,
    pub memory_gb: Option<f64>,
    pub accelerators: BTreeMap<String, f64>,
    pub ports: Vec<u16>,
    /// The task's `image_id` as written (`docker:<image>`): what a
    /// container-based infrastructure (Kubernetes) runs the node in; the
    /// others ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub cpus: f64,
    pub memory_gb: f64,
    pub accelerators: BTreeMap<String, f64>,
}

impl Machine {
    /// This machine, probed now.
    pub fn probe() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        Self {
            cpus,
            memory_gb: total_memory_gb().unwrap_or(0.0),
            accelerators: match std::env::var(ENV_FAKE_ACCELERATORS) {
                Ok(spec) => parse_accelerator_list(&spec),
                Err(_) => nvidia_gpus(),
            },
        }
    }

    /// Why `request` cannot be met here, naming every shortfall; `Ok` when
    /// it fits.
    pub fn fits(&self, request: &NodeRequest) -> Result<(), String> {
        let mut problems = Vec::new();
        if let Some(cpus) = request.cpus
            && cpus > self.cpus
        {
            problems.push(format!(
                "{cpus} CPUs per node, this machine has {}",
                self.cpus
            ));
        }
        if let Some(memory) = request.memory_gb
            && memory > self.memory_gb
        {
            problems.push(format!(
                "{memory} GB of memory per node, this machine has {:.1} GB",
                self.memory_gb
            ));
        }
        for (name, count) in &request.accelerators {
            let have = self.accelerators.get(name).copied().unwrap_or(0.0);
            if *count > have {
                problems.push(format!(
                    "{count} {name} per node, this machine has {have} ({})",
                    describe(&self.accelerators)
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            let gpus_short = request
                .accelerators
                .iter()
                .any(|(name, count)| *count > self.accelerators.get(name).copied().unwrap_or(0.0));
            Err(format!(
                "The local infrastructure cannot fit this request: {}. Ask for less, or \
                 launch on other infrastructure with --infra.{}",
                problems.join("; "),
                if gpus_short { ACCELERATORS_HINT } else { "" }
            ))
        }
    }
}

/// Where the accelerators `local` counts come from, and how to change them.
pub(crate) const ACCELERATORS_HINT: &str = " The server counts this machine's GPUs with nvidia-smi; if \
     that finds them wrongly (or there is no nvidia-smi), start the server with \
     SKYDECK_LOCAL_ACCELERATORS=NAME:COUNT[,NAME:COUNT], e.g. SKYDECK_LOCAL_ACCELERATORS=H100:2.";

fn describe(accelerators: &BTreeMap<String, f64>) -> String {
    if accelerators.is_empty() {
        return "no accelerators found".to_owned();
    }
    accelerators
        .iter()
        .map(|(name, count)| format!("{name}:{count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_accelerator_list(spec: &str) -> BTreeMap<String, f64> {
    let mut found = BTreeMap::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, count) = item.split_once(':').unwrap_or((item, "1"));
        if let Ok(count) = count.trim().parse::<f64>() {
            *found.entry(name.trim().to_owned()).or_insert(0.0) += count;
        }
    }
    found
}

/// GPUs `nvidia-smi` reports, by short model name (`H100`, `A100`, …).
fn nvidia_gpus() -> BTreeMap<String, f64> {
    let Ok(output) = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader"])
        .output()
    else {
        return BTreeMap::new();
    };
    if !output.status.success() {
        return BTreeMap::new();
    }
    let mut found = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if let Some(name) = short_gpu_name(line) {
            *found.entry(name).or_insert(0.0) += 1.0;
        }
    }
    found
}

/// This machine's GPUs with the index CUDA gives each, as nvidia-smi lists
/// them; `None` without a working nvidia-smi.
pub(crate) fn nvidia_gpus_by_index() -> Option<Vec<skydeck_types::placement::Gpu>> {
    let output = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=index,name", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|output| output.status.success())?;
    Some(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| {
                let (index, name) = line.split_once(',')?;
                Some(skydeck_types::placement::Gpu {
                    index: index.trim().parse().ok()?,
                    model: short_gpu_name(name)?,
                })
            })
            .collect(),
    )
}

/// `NVIDIA H100 80GB HBM3` → `H100`: the model as SkyPilot users write it.
fn short_gpu_name(full: &str) -> Option<String> {
    let words: Vec<&str> = full
        .split_whitespace()
        .filter(|w| {
            !matches!(
                w.to_ascii_lowercase().as_str(),
                "nvidia" | "tesla" | "geforce"
            )
        })
        .collect();
    let model = words.first()?;
    Some(match *model {
        "RTX" => words
            .get(..2)
            .map_or_else(|| (*model).to_owned(), |w| w.join("")),
        _ => (*model).to_owned(),
    })
}

fn total_memory_gb() -> Option<f64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: f64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            cpus: 2.0,
            memory_gb: 8.0,
            accelerators: parse_accelerator_list("H100:1"),
        }
    }

    #[test]
    fn a_request_within_the_machine_fits() {
        let request = NodeRequest {
            cpus: Some(2.0),
            memory_gb: Some(4.0),
            accelerators: parse_accelerator_list("H100:1"),
            ports: vec![],
            image: None,
        };
        assert_eq!(machine().fits(&request), Ok(()));
    }

    #[test]
    fn every_shortfall_is_named() {
        let request = NodeRequest {
            cpus: Some(64.0),
            memory_gb: None,
            accelerators: parse_accelerator_list("A100:8"),
            ports: vec![],
            image: None,
        };
        let err = machine().fits(&request).unwrap_err();
        assert!(
            err.contains("64 CPUs per node, this machine has 2"),
            "{err}"
        );
        assert!(
            err.contains("8 A100 per node, this machine has 0 (H100:1)"),
            "{err}"
        );
        assert!(
            err.contains("SKYDECK_LOCAL_ACCELERATORS=NAME:COUNT"),
            "a GPU shortfall says how to declare the machine's GPUs: {err}"
        );
    }

    #[test]
    fn only_a_gpu_shortfall_mentions_the_accelerators_variable() {
        let request = NodeRequest {
            cpus: Some(64.0),
            memory_gb: None,
            accelerators: parse_accelerator_list("H100:1"),
            ports: vec![],
            image: None,
        };
        let err = machine().fits(&request).unwrap_err();
        assert!(!err.contains(ENV_FAKE_ACCELERATORS), "{err}");
    }

    #[test]
    fn gpu_names_are_shortened_as_users_write_them() {
        assert_eq!(
            short_gpu_name("NVIDIA H100 80GB HBM3").as_deref(),
            Some("H100")
        );
        assert_eq!(short_gpu_name("Tesla T4").as_deref(), Some("T4"));
        assert_eq!(
            short_gpu_name("NVIDIA GeForce RTX 4090").as_deref(),
            Some("RTX4090")
        );
    }

    #[test]
    fn fake_accelerators_parse() {
        let found = parse_accelerator_list("H100:2, T4");
        assert_eq!(found.get("H100"), Some(&2.0));
        assert_eq!(found.get("T4"), Some(&1.0));
    }
}
