//! Property tests of the trust boundary's names: whatever string a client
//! sends, a name that parses is one harmless path component, and
//! `confine` never yields a path outside its root.

use proptest::prelude::*;
use skydeck_types::names::{
    BlobId, ClusterName, JobName, PoolName, RequestIdPrefix, TokenName, UserId, UserName,
    WorkspaceName, confine,
};
use std::path::{Component, Path};

/// Strings rich in what breaks paths: separators, dots, NUL, control and
/// non-ASCII characters, next to ordinary name characters.
fn hostile_string() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "/", ".", "..", "\\", "\0", "\n", "~", "-", "_", "@", "+", " ", "a", "Z", "0", "9", "é",
        "\u{202e}", "%2e", "*", ":", "//", "./", "../",
    ]);
    prop_oneof![
        any::<String>(),
        prop::collection::vec(pieces, 0..12).prop_map(|parts| parts.concat()),
    ]
}

const ROOT: &str = "/srv/skydeck/root";

/// Every name type, as one check: if `text` parses, joining it under the
/// root gives exactly one more, plain component.
fn assert_one_component(kind: &str, parsed: Option<&str>) {
    let Some(name) = parsed else { return };
    let root = Path::new(ROOT);
    let path = confine(root, name).unwrap_or_else(|err| panic!("{kind} {name:?}: {err}"));
    assert!(path.starts_with(root), "{kind} {name:?} -> {path:?}");
    let extra: Vec<Component<'_>> = path.strip_prefix(root).unwrap().components().collect();
    assert_eq!(extra.len(), 1, "{kind} {name:?} -> {path:?}");
    assert!(matches!(extra[0], Component::Normal(_)), "{kind} {name:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn a_parsed_name_is_one_component_under_its_root(text in hostile_string()) {
        assert_one_component("cluster", ClusterName::new(text.as_str()).ok().as_deref());
        assert_one_component("user", UserName::new(text.as_str()).ok().as_deref());
        assert_one_component("user id", UserId::new(text.as_str()).ok().as_deref());
        assert_one_component("workspace", WorkspaceName::new(text.as_str()).ok().as_deref());
        assert_one_component("token", TokenName::new(text.as_str()).ok().as_deref());
        assert_one_component("pool", PoolName::new(text.as_str()).ok().as_deref());
        assert_one_component("upload", BlobId::new(text.as_str()).ok().as_deref());
        assert_one_component("request", RequestIdPrefix::new(text.as_str()).ok().as_deref());
        // A job name is shown, never a path: it only has to be bounded and
        // free of control characters.
        if let Ok(job) = JobName::new(text.as_str()) {
            prop_assert!(!job.chars().any(char::is_control));
            prop_assert!(job.chars().count() <= 128);
        }
    }

    #[test]
    fn confine_never_leaves_its_root(text in hostile_string()) {
        let root = Path::new(ROOT);
        if let Ok(path) = confine(root, &text) {
            prop_assert!(path.starts_with(root), "{text:?} -> {path:?}");
            prop_assert!(path != root, "{text:?} names the root itself");
            for component in path.strip_prefix(root).unwrap().components() {
                prop_assert!(matches!(component, Component::Normal(_)), "{text:?} -> {path:?}");
            }
        }
    }

    #[test]
    fn a_refused_name_says_its_rule(text in hostile_string()) {
        if let Err(err) = ClusterName::new(text.as_str()) {
            let message = err.to_string();
            prop_assert!(message.contains(ClusterName::RULE));
            prop_assert!(skydeck_types::names::is_name_error(&message));
            prop_assert!(message.len() < 1000, "bounded whatever the input");
        }
    }
}
