//! Parsing config text (JSON with comments, TOML, YAML) into one positioned tree, [`Node`], so
//! that validation and diagnostics are written once for all three formats.

mod json;
mod line_index;
mod toml;
mod yaml;

pub use line_index::LineIndex;

use std::ops::Range;

/// Nesting deeper than this is reported instead of parsed (protects the stack on hostile input).
pub const MAX_DEPTH: usize = 64;

/// The format of a config file, chosen by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON; comments (`//`, `/* */`) and trailing commas are tolerated.
    Json,
    /// TOML 1.0.
    Toml,
    /// YAML 1.2 (one document).
    Yaml,
}

impl Format {
    /// The format for a file name by its extension (`.json`, `.jsonc`, `.toml`, `.yaml`, `.yml`).
    pub fn from_path(path: &std::path::Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "json" | "jsonc" | "json5" => Some(Format::Json),
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }
}

/// A byte range in the source text.
pub type Span = Range<usize>;

/// A parsed value with the byte range it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub kind: NodeKind,
    /// Where the value is in the source.
    pub span: Span,
}

/// The shape of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// `null` (JSON, YAML `~`).
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number (integers are kept exact).
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// A list.
    Array(Vec<Node>),
    /// A map, in source order.
    Object(Vec<Entry>),
}

/// One key of an object with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// Where the key is in the source.
    pub key_span: Span,
    /// The value.
    pub value: Node,
}

/// A problem found while parsing, before any validation.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// What is wrong, lowercase.
    pub message: String,
    /// Where.
    pub span: Span,
}

impl Node {
    /// The JSON type name used in messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "boolean",
            NodeKind::Number(number) if number.is_f64() => "number",
            NodeKind::Number(_) => "integer",
            NodeKind::String(_) => "string",
            NodeKind::Array(_) => "array",
            NodeKind::Object(_) => "object",
        }
    }

    /// The value without positions.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.kind {
            NodeKind::Null => serde_json::Value::Null,
            NodeKind::Bool(value) => (*value).into(),
            // JSON Schema counts 30.0 and 1e2 as integers; give serde the integer too.
            NodeKind::Number(number) => match number.as_f64() {
                Some(float)
                    if number.is_f64()
                        && float.fract() == 0.0
                        && float.abs() < 9_007_199_254_740_992.0 =>
                {
                    serde_json::Value::Number((float as i64).into())
                }
                _ => serde_json::Value::Number(number.clone()),
            },
            NodeKind::String(text) => text.clone().into(),
            NodeKind::Array(items) => items.iter().map(Node::to_json).collect(),
            NodeKind::Object(entries) => entries
                .iter()
                .map(|entry| (entry.key.clone(), entry.value.to_json()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }

    /// The entry for `key` when this is an object.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        match &self.kind {
            NodeKind::Object(entries) => entries.iter().find(|entry| entry.key == key),
            _ => None,
        }
    }
}

/// Parses `text` in `format` into a tree. Returns the tree when the text is well-formed, and every
/// syntax error found (duplicate keys included); both can be present when only duplicates failed.
pub fn parse(text: &str, format: Format) -> (Option<Node>, Vec<SyntaxError>) {
    match format {
        Format::Json => json::parse(text),
        Format::Toml => toml::parse(text),
        Format::Yaml => yaml::parse(text),
    }
}

/// Reports keys that appear twice in one object (the later one is kept by every format's
/// semantics, but it is almost always a mistake).
pub(crate) fn check_duplicate_keys(entries: &[Entry], errors: &mut Vec<SyntaxError>) {
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    for entry in entries {
        if !seen.insert(entry.key.as_str()) {
            errors.push(SyntaxError {
                message: format!("duplicate key `{}`", entry.key),
                span: entry.key_span.clone(),
            });
        }
    }
}
