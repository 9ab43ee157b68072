//! The infrastructure kinds this server knows, and how to tell whether each
//! is usable here. The backends themselves live in their own crate once they
//! exist; this is the registry `check` and `enabled_clouds` report from.

/// One kind of infrastructure.
pub struct Infra {
    /// The name users type (`--infra local`).
    pub name: &'static str,
    /// The name shown in tables.
    pub display_name: &'static str,
    /// `Ok(detail)` when usable, `Err(reason)` with what to do otherwise.
    pub probe: fn() -> Result<String, String>,
}

const KNOWN: &[Infra] = &[Infra {
    name: "local",
    display_name: "Local",
    probe: probe_local,
}];

pub fn known() -> &'static [Infra] {
    KNOWN
}

pub fn enabled() -> Vec<&'static Infra> {
    KNOWN
        .iter()
        .filter(|infra| (infra.probe)().is_ok())
        .collect()
}

fn probe_local() -> Result<String, String> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let memory = total_memory_gib().map_or_else(
        || "unknown memory".to_owned(),
        |gib| format!("{gib:.1} GiB memory"),
    );
    Ok(format!("This machine: {cpus} CPUs, {memory}."))
}

fn total_memory_gib() -> Option<f64> {
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
