//! The cluster handle of a `sky status` record as a pickle, the other form
//! the official client's `decode_handle` accepts.
//!
//! The client's INFRA column is `launched_resources.infra`, built from the
//! handle's `Resources` cloud; the dict form can only name clouds from the
//! client's registry, and `local` is not one. The pickle rebuilds the handle
//! with the client's own `from_dict`, then gives its (empty) `Resources` a
//! plain `sky.clouds.cloud.Cloud` whose name is the infrastructure's display
//! name: no registry cloud, so no cloud-specific code path (Kubernetes SSH
//! proxies, Slurm) in the client takes it for one of its own.

use super::pickle::op::*;
use super::pickle::{global, write_str as string};
use base64::Engine;
use serde_json::Value;

/// Memo slots of the two objects the program refers back to.
const HANDLE: u8 = 0;
const RESOURCES: u8 = 1;

/// Base64 of a pickle the client loads as a `CloudVmRayResourceHandle`
/// equal to `from_dict(handle)`, with `launched_resources` an empty
/// `Resources` on a cloud named `infra`.
pub fn status_handle(handle: &Value, infra: &str) -> String {
    status_handle_with_type(handle, infra, None)
}

/// [`status_handle`], with the `Resources`' instance type set too (what
/// `sky status -v` and the optimizer show; SkyPilot's Kubernetes form is
/// `4CPU--16GB--H100:1`).
pub fn status_handle_with_type(handle: &Value, infra: &str, instance_type: Option<&str>) -> String {
    let mut out = vec![PROTO, 4];
    // handle = CloudVmRayResourceHandle.from_dict({...})
    global(
        "sky.backends.cloud_vm_ray_backend",
        "CloudVmRayResourceHandle.from_dict",
        &mut out,
    );
    json(handle, &mut out);
    out.extend([TUPLE1, REDUCE, MEMOIZE]);
    // resources = Resources._from_yaml_config_single({})
    global(
        "sky.resources",
        "Resources._from_yaml_config_single",
        &mut out,
    );
    out.extend([EMPTY_DICT, TUPLE1, REDUCE, MEMOIZE, POP]);
    // setattr(resources, '_cloud', <Cloud named infra>)
    global("builtins", "setattr", &mut out);
    out.extend([BINGET, RESOURCES]);
    string("_cloud", &mut out);
    global("sky.clouds.cloud", "Cloud", &mut out);
    out.extend([EMPTY_TUPLE, NEWOBJ, EMPTY_DICT, MARK]);
    string("_REPR", &mut out);
    string(infra, &mut out);
    out.extend([SETITEMS, BUILD, TUPLE3, REDUCE, POP]);
    if let Some(instance_type) = instance_type {
        // setattr(resources, '_instance_type', instance_type)
        global("builtins", "setattr", &mut out);
        out.extend([BINGET, RESOURCES]);
        string("_instance_type", &mut out);
        string(instance_type, &mut out);
        out.extend([TUPLE3, REDUCE, POP]);
    }
    // setattr(handle, 'launched_resources', resources)
    global("builtins", "setattr", &mut out);
    out.extend([BINGET, HANDLE]);
    string("launched_resources", &mut out);
    out.extend([BINGET, RESOURCES, TUPLE3, REDUCE, POP]);
    // The handle is what is left on the stack.
    out.push(STOP);
    base64::engine::general_purpose::STANDARD.encode(out)
}

fn json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(NONE),
        Value::Bool(true) => out.push(NEWTRUE),
        Value::Bool(false) => out.push(NEWFALSE),
        Value::Number(n) => match n.as_i64().and_then(|n| i32::try_from(n).ok()) {
            Some(small) => {
                out.push(BININT);
                out.extend_from_slice(&small.to_le_bytes());
            }
            None => {
                out.push(BINFLOAT);
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_be_bytes());
            }
        },
        Value::String(s) => string(s, out),
        Value::Array(items) => {
            out.push(EMPTY_LIST);
            if !items.is_empty() {
                out.push(MARK);
                items.iter().for_each(|item| json(item, out));
                out.push(APPENDS);
            }
        }
        Value::Object(entries) => {
            out.push(EMPTY_DICT);
            if !entries.is_empty() {
                out.push(MARK);
                for (key, item) in entries {
                    string(key, out);
                    json(item, out);
                }
                out.push(SETITEMS);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_is_a_protocol_4_pickle_naming_the_infra() {
        let encoded = status_handle(&serde_json::json!({"cluster_name": "c"}), "Local");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        assert_eq!(bytes[..2], [PROTO, 4]);
        assert_eq!(bytes.last(), Some(&STOP));
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("CloudVmRayResourceHandle.from_dict"));
        assert!(text.contains("Local"));
    }
}
