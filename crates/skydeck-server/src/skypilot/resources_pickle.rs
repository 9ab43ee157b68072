//! The `resources` of a `sky cost-report` record, as a pickle the official
//! client loads.
//!
//! The client prints each record's `str(resources)` and prices it with
//! `resources.get_cost(3600)`. The dict form only builds `Resources` on the
//! clouds of the client's registry, which price from their catalogs (or
//! need a Kubernetes library); `local` is none of them. So the pickle builds
//! an empty `Resources` and sets what those two calls read: a plain
//! `sky.clouds.cloud.Cloud` named after the infrastructure (as the status
//! handle does, see `handle_pickle.rs`) whose prices are always 0.0, the
//! text it prints, and the cpus, memory and accelerators `-o json` shows.
//!
//! "Always 0.0" is `functools.partial(min, 0.0, key=bool)`: called with the
//! instance type, spot flag, region and zone, `min` by truthiness returns
//! its first falsy argument, the 0.0 in front. Own hardware costs nothing
//! per hour here.

use super::pickle::op::*;
use super::pickle::{global, write_str as string};
use base64::Engine;
use std::collections::BTreeMap;

/// Memo slots of the objects the program refers back to.
const RESOURCES: u8 = 0;
const FREE: u8 = 1;
const CLOUD: u8 = 2;

/// What a cost-report row shows of one node.
pub struct CostResources<'a> {
    /// The infrastructure's display name (`Local`).
    pub infra: &'a str,
    /// What `str(resources)` prints, e.g. `Local(cpus=4, mem=8, H100:1)`.
    pub shown: &'a str,
    pub cpus: Option<String>,
    pub memory_gb: Option<String>,
    pub accelerators: &'a BTreeMap<String, f64>,
}

/// Base64 of the pickle (the form the client's `decode_resources` takes
/// besides a dict).
pub fn cost_resources(resources: &CostResources<'_>) -> String {
    let mut out = vec![PROTO, 4];
    // resources = Resources._from_yaml_config_single({})
    global(
        "sky.resources",
        "Resources._from_yaml_config_single",
        &mut out,
    );
    out.extend([EMPTY_DICT, TUPLE1, REDUCE, MEMOIZE]);
    // free = functools.partial(min, 0.0, key=bool)
    global("functools", "partial", &mut out);
    out.push(MARK);
    global("builtins", "min", &mut out);
    float(0.0, &mut out);
    out.extend([TUPLE, EMPTY_DICT]);
    string("key", &mut out);
    global("builtins", "bool", &mut out);
    out.extend([SETITEM, NEWOBJ_EX, MEMOIZE, POP]);
    // cloud = Cloud() with its name and free prices
    global("sky.clouds.cloud", "Cloud", &mut out);
    out.extend([EMPTY_TUPLE, NEWOBJ, EMPTY_DICT, MARK]);
    string("_REPR", &mut out);
    string(resources.infra, &mut out);
    for price in [
        "instance_type_to_hourly_cost",
        "accelerators_to_hourly_cost",
    ] {
        string(price, &mut out);
        out.extend([BINGET, FREE]);
    }
    out.extend([SETITEMS, BUILD, MEMOIZE, POP]);
    // setattr(resources, name, value) for what the client reads
    set(&mut out, "_cloud", |out| out.extend([BINGET, CLOUD]));
    set(&mut out, "_cached_repr", |out| string(resources.shown, out));
    // A region and an instance type keep `get_cost` off the catalog's
    // region search, which a plain `Cloud` cannot answer.
    let infra = resources.infra.to_ascii_lowercase();
    set(&mut out, "_instance_type", |out| string(&infra, out));
    set(&mut out, "_region", |out| string(&infra, out));
    // Unknown ones read as "-": left unset, the client would ask the cloud
    // to infer them from the instance type.
    set(&mut out, "_cpus", |out| {
        string(resources.cpus.as_deref().unwrap_or("-"), out)
    });
    set(&mut out, "_memory", |out| {
        string(resources.memory_gb.as_deref().unwrap_or("-"), out)
    });
    // Set even when empty: left unset, the client asks the cloud to infer
    // accelerators from the instance type.
    set(&mut out, "_accelerators", |out| {
        out.push(EMPTY_DICT);
        if !resources.accelerators.is_empty() {
            out.push(MARK);
            for (name, count) in resources.accelerators {
                string(name, out);
                number(*count, out);
            }
            out.push(SETITEMS);
        }
    });
    // The resources are what is left on the stack.
    out.push(STOP);
    base64::engine::general_purpose::STANDARD.encode(out)
}

fn set(out: &mut Vec<u8>, name: &str, value: impl FnOnce(&mut Vec<u8>)) {
    global("builtins", "setattr", out);
    out.extend([BINGET, RESOURCES]);
    string(name, out);
    value(out);
    out.extend([TUPLE3, REDUCE, POP]);
}

fn float(value: f64, out: &mut Vec<u8>) {
    out.push(BINFLOAT);
    out.extend_from_slice(&value.to_be_bytes());
}

/// A whole count as an int (`{'H100': 1}`, as SkyPilot writes it), else a
/// float.
fn number(value: f64, out: &mut Vec<u8>) {
    if value.fract() == 0.0 && value.abs() < f64::from(i32::MAX) {
        out.push(BININT);
        out.extend_from_slice(&(value as i32).to_le_bytes());
    } else {
        float(value, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pickle_names_the_shown_text_and_ends_with_stop() {
        let accelerators = BTreeMap::from([("H100".to_owned(), 1.0)]);
        let encoded = cost_resources(&CostResources {
            infra: "Local",
            shown: "Local(cpus=4, mem=8, H100:1)",
            cpus: Some("4".into()),
            memory_gb: Some("8".into()),
            accelerators: &accelerators,
        });
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        assert_eq!(bytes[..2], [PROTO, 4]);
        assert_eq!(bytes.last(), Some(&STOP));
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("Local(cpus=4, mem=8, H100:1)"));
        assert!(text.contains("functools\npartial"));
    }
}
