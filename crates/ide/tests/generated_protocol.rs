//! The protocol files the editor plugins use are generated from `crates/ide/src/protocol.rs`:
//! `schema/ide-protocol.json` (the JetBrains core checks its Kotlin types against it) and the VS
//! Code extension's `src/protocol.ts`. This test regenerates both and fails when a committed
//! copy is stale, so a change of a Rust type cannot leave a plugin behind.
//!
//! After an intended change: `UPDATE_EXPECT=1 cargo test -p mirrord-ide --test generated_protocol`.

use std::path::PathBuf;

use mirrord_ide::protocol_schema::{SCHEMA_FILE, TYPESCRIPT_FILE, schema, typescript};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn check(relative: &str, generated: &str) {
    let path = repo().join(relative);
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, generated).unwrap_or_else(|error| panic!("{relative}: {error}"));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let first = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "{relative} is stale (first difference at line {}): run `UPDATE_EXPECT=1 cargo test -p mirrord-ide --test generated_protocol` and review the diff",
            first + 1
        );
    }
}

#[test]
fn the_protocol_schema_and_the_typescript_types_are_current() {
    let schema = schema();
    let mut schema_text = serde_json::to_string_pretty(&schema).unwrap();
    schema_text.push('\n');
    check(SCHEMA_FILE, &schema_text);
    check(TYPESCRIPT_FILE, &typescript(&schema));
}

#[test]
fn every_method_and_error_code_is_in_the_schema() {
    let schema = schema();
    for method in mirrord_ide::protocol::REQUESTS {
        assert!(schema["requests"].get(method).is_some(), "{method}");
    }
    for method in mirrord_ide::protocol::NOTIFICATIONS {
        assert!(schema["notifications"].get(method).is_some(), "{method}");
    }
    for code in mirrord_ide::errors::ALL {
        assert_eq!(schema["errorCodes"][code.name], code.code, "{}", code.name);
    }
    let list_result = &schema["definitions"]["ListTargetsResult"]["properties"];
    assert!(list_result.get("groups").is_some(), "{list_result}");
}
