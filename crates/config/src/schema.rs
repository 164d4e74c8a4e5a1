//! The JSON Schema of [`FileConfig`], generated from the types (draft-07, which VS Code's JSON
//! language service, IntelliJ and Python `jsonschema` all understand).

use std::sync::LazyLock;

use schemars::generate::SchemaSettings;

use crate::file::FileConfig;

/// Where the schema's `$id` points: the file committed in this repository.
pub const SCHEMA_ID: &str = "https://mirrord.local/schema/mirrord-schema.json";

static SCHEMA: LazyLock<serde_json::Value> = LazyLock::new(|| {
    let settings = SchemaSettings::draft07();
    let generator = settings.into_generator();
    let schema = generator.into_root_schema_for::<FileConfig>();
    let mut value = schema.to_value();
    if let Some(object) = value.as_object_mut() {
        object.insert("$id".to_owned(), SCHEMA_ID.into());
    }
    value
});

/// The schema as a JSON value (generated once per process).
pub fn schema() -> &'static serde_json::Value {
    &SCHEMA
}

/// The schema as pretty-printed JSON with a trailing newline, as committed in `schema/`.
pub fn schema_string() -> String {
    let mut text = serde_json::to_string_pretty(schema()).expect("a JSON value always serializes");
    text.push('\n');
    text
}
