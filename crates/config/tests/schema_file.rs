//! The committed `schema/mirrord-schema.json` is generated from the config types: plain
//! `cargo test` rewrites it, and fails when the committed copy was stale, so a change to the
//! types that forgets the schema cannot land.

use std::path::Path;

#[test]
fn committed_schema_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/mirrord-schema.json");
    let generated = mirrord_config::schema::schema_string();
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        std::fs::write(&path, &generated).expect("write the regenerated schema");
        panic!(
            "schema/mirrord-schema.json was stale and has been regenerated; review and commit it ({})",
            path.display()
        );
    }
}

#[test]
fn schema_is_draft_07_with_descriptions_for_every_top_level_key() {
    let schema = mirrord_config::schema::schema();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    let properties = schema["properties"].as_object().expect("root properties");
    for (key, property) in properties {
        let description = property["description"].as_str().unwrap_or_default();
        assert!(
            !description.is_empty(),
            "top-level key `{key}` has no description"
        );
    }
    for key in [
        "target",
        "agent",
        "feature",
        "internal_proxy",
        "skip_processes",
        "kubeconfig",
    ] {
        assert!(properties.contains_key(key), "missing `{key}`");
    }
}
