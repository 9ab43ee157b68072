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
    let machine = skydeck_infra::Machine::probe();
    Ok(format!(
        "This machine: {} CPUs, {:.1} GiB memory.",
        machine.cpus, machine.memory_gb
    ))
}
