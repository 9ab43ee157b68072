//! The smallest pickle writer the official client needs.
//!
//! SkyPilot's client unpickles exactly one thing from a server that speaks
//! JSON everywhere else: the `object` of an error envelope, which must be the
//! dict `exceptions.serialize_exception` produces. Protocol 2 opcodes for
//! strings, lists, dicts and `None` are enough; no memo is needed because
//! nothing is shared.

/// A value that can be pickled.
#[derive(Debug, Clone, PartialEq)]
pub enum PickleValue {
    None,
    Str(String),
    List(Vec<PickleValue>),
    /// Keys stay in the given order.
    Dict(Vec<(String, PickleValue)>),
}

use op::*;

/// Pickle opcodes (protocols 2 to 4), shared by every pickle this server
/// writes.
pub(super) mod op {
    pub const PROTO: u8 = 0x80;
    pub const STOP: u8 = b'.';
    pub const NONE: u8 = b'N';
    pub const BINUNICODE: u8 = b'X';
    pub const EMPTY_LIST: u8 = b']';
    pub const EMPTY_DICT: u8 = b'}';
    pub const MARK: u8 = b'(';
    pub const APPENDS: u8 = b'e';
    pub const SETITEMS: u8 = b'u';
    pub const GLOBAL: u8 = b'c';
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const BININT: u8 = b'J';
    pub const BINFLOAT: u8 = b'G';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE3: u8 = 0x87;
    pub const REDUCE: u8 = b'R';
    pub const NEWOBJ: u8 = 0x81;
    pub const BUILD: u8 = b'b';
    pub const MEMOIZE: u8 = 0x94;
    pub const BINGET: u8 = b'h';
    pub const POP: u8 = b'0';
    pub const TUPLE: u8 = b't';
    pub const SETITEM: u8 = b's';
    pub const NEWOBJ_EX: u8 = 0x92;
}

pub fn dumps(value: &PickleValue) -> Vec<u8> {
    let mut out = vec![PROTO, 2];
    write(value, &mut out);
    out.push(STOP);
    out
}

/// A `GLOBAL` reference to `module.name`.
pub(super) fn global(module: &str, name: &str, out: &mut Vec<u8>) {
    out.push(GLOBAL);
    out.extend_from_slice(module.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
}

pub(super) fn write_str(s: &str, out: &mut Vec<u8>) {
    out.push(BINUNICODE);
    let len = u32::try_from(s.len()).expect("pickled strings are far below 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn write(value: &PickleValue, out: &mut Vec<u8>) {
    match value {
        PickleValue::None => out.push(NONE),
        PickleValue::Str(s) => write_str(s, out),
        PickleValue::List(items) => {
            out.push(EMPTY_LIST);
            if !items.is_empty() {
                out.push(MARK);
                items.iter().for_each(|item| write(item, out));
                out.push(APPENDS);
            }
        }
        PickleValue::Dict(entries) => {
            out.push(EMPTY_DICT);
            if !entries.is_empty() {
                out.push(MARK);
                for (key, item) in entries {
                    write_str(key, out);
                    write(item, out);
                }
                out.push(SETITEMS);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn b64(value: &PickleValue) -> String {
        base64::engine::general_purpose::STANDARD.encode(dumps(value))
    }

    #[test]
    fn a_string_matches_pythons_pickle() {
        // pickle.dumps("boom", protocol=2) as the reference records it.
        assert_eq!(b64(&PickleValue::Str("boom".into())), "gAJYBAAAAGJvb20u");
    }

    #[test]
    fn an_exception_dict_matches_pythons_pickle() {
        // Python 3.11: base64(pickle.dumps({"type": "ValueError", "args": ["x"],
        // "attributes": {}, "stacktrace": None}, protocol=2)) after replacing
        // its memo opcodes, which loads() does not need.
        let value = PickleValue::Dict(vec![
            ("type".into(), PickleValue::Str("ValueError".into())),
            (
                "args".into(),
                PickleValue::List(vec![PickleValue::Str("x".into())]),
            ),
            ("attributes".into(), PickleValue::Dict(vec![])),
            ("stacktrace".into(), PickleValue::None),
        ]);
        let bytes = dumps(&value);
        let expected: &[u8] = b"\x80\x02}(X\x04\x00\x00\x00typeX\x0a\x00\x00\x00ValueError\
X\x04\x00\x00\x00args](X\x01\x00\x00\x00xeX\x0a\x00\x00\x00attributes}\
X\x0a\x00\x00\x00stacktraceNu.";
        assert_eq!(bytes, expected);
    }
}
