//! Small value shapes shared by several sections: "a string or a list", "not supported here".

#[cfg(feature = "files")]
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
#[cfg(feature = "files")]
use std::borrow::Cow;

/// A single string or a list of strings; `"A;B"` strings are split on `;` where a key says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(untagged)]
pub enum StringOrList {
    /// One value (for some keys a `;`-separated list).
    One(String),
    /// A list of values.
    Many(Vec<String>),
}

impl StringOrList {
    /// The values as a list, without splitting on `;`.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            StringOrList::One(one) => vec![one.clone()],
            StringOrList::Many(many) => many.clone(),
        }
    }

    /// The values as a list, splitting single strings on `;` and dropping empty parts.
    pub fn split_semicolons(&self) -> Vec<String> {
        match self {
            StringOrList::One(one) => one
                .split(';')
                .map(str::trim)
                .filter(|part| !part.is_empty())
                .map(str::to_owned)
                .collect(),
            StringOrList::Many(many) => many.clone(),
        }
    }
}

/// A key that mirrord defines but this implementation does not: any value loads, with a warning
/// that names the key. The schema marks it with `x-mirrord-unsupported`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Unsupported(pub serde_json::Value);

#[cfg(feature = "files")]
impl JsonSchema for Unsupported {
    fn schema_name() -> Cow<'static, str> {
        "Unsupported".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        json_schema!({ "x-mirrord-unsupported": true })
    }
}

/// A regular expression (Rust `regex` syntax), checked when the config loads.
#[cfg(feature = "files")]
pub(crate) fn regex_schema(_generator: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "format": "regex" })
}

/// A regular expression or a list of them.
#[cfg(feature = "files")]
pub(crate) fn regex_or_list_schema(_generator: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "anyOf": [
            { "type": "string", "format": "regex" },
            { "type": "array", "items": { "type": "string", "format": "regex" } }
        ]
    })
}

/// An object whose keys are regular expressions and whose values are replacement strings.
#[cfg(feature = "files")]
pub(crate) fn regex_map_schema(_generator: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "propertyNames": { "format": "regex" },
        "additionalProperties": { "type": "string" }
    })
}
