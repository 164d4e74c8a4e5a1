//! "Where is the cursor?" for documents that are being typed and usually do not parse: the key
//! path of the object (or value) at a byte offset, whether a key or a value is being written,
//! and the token under the cursor. One tolerant scanner per format: a token scan for JSON,
//! indentation for YAML, table headers and dotted keys for TOML.

use std::ops::Range;

use mirrord_config::Format;
use mirrord_config::diagnostic::PathSegment;

/// What is being written at the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotKind {
    /// A key of the object at [`CursorContext::path`].
    Key,
    /// The value at [`CursorContext::path`] (the path ends with the value's key or index).
    Value,
}

/// The cursor's place in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorContext {
    /// Key or value.
    pub kind: SlotKind,
    /// For keys: the object's path. For values: the value's path.
    pub path: Vec<PathSegment>,
    /// The token under the cursor as written, without quotes (may be empty).
    pub token: String,
    /// The part of the token before the cursor, without quotes.
    pub prefix: String,
    /// The byte range of the whole token, quotes included (empty at the cursor when there is
    /// none): what a completion replaces.
    pub replace: Range<usize>,
    /// Whether the token is in quotes.
    pub quoted: bool,
    /// Keys the object already has (for keys), so completion does not offer them again.
    pub existing_keys: Vec<String>,
    /// JSON only: whether a `:` already follows the key token.
    pub has_separator: bool,
    /// JSON only: whether another entry follows, so an inserted one needs a trailing comma.
    pub needs_comma: bool,
    /// The column (in bytes) of the line's indentation, for multi-line snippets.
    pub indent: usize,
}

/// The cursor context at byte `offset` of `text` (clamped), if the cursor is in a place where a
/// key or value can be written.
pub fn context_at(text: &str, offset: usize, format: Format) -> Option<CursorContext> {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    match format {
        Format::Json => json::context_at(text, offset),
        Format::Yaml => yaml::context_at(text, offset),
        Format::Toml => toml::context_at(text, offset),
    }
}

fn line_indent(text: &str, offset: usize) -> usize {
    let start = text[..offset].rfind('\n').map_or(0, |index| index + 1);
    text[start..]
        .bytes()
        .take_while(|byte| *byte == b' ' || *byte == b'\t')
        .count()
}

fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '$' | '.')
}

mod json;
mod toml;
mod yaml;

#[cfg(test)]
mod tests {
    use super::*;

    /// `|` marks the cursor.
    fn check(format: Format, marked: &str) -> CursorContext {
        let offset = marked.find('|').expect("a cursor mark");
        let text = marked.replacen('|', "", 1);
        context_at(&text, offset, format).expect("a context")
    }

    fn path(context: &CursorContext) -> String {
        context
            .path
            .iter()
            .map(|segment| match segment {
                PathSegment::Key(key) => key.clone(),
                PathSegment::Index(_) => "[]".to_owned(),
            })
            .collect::<Vec<_>>()
            .join(".")
    }

    #[test]
    fn json_keys_and_values_in_incomplete_documents() {
        let context = check(
            Format::Json,
            r#"{ "feature": { "network": { "incoming": { "mo|"#,
        );
        assert_eq!(context.kind, SlotKind::Key);
        assert_eq!(path(&context), "feature.network.incoming");
        assert_eq!(context.prefix, "mo");
        assert!(context.quoted);

        let context = check(Format::Json, "{\n  \"target\": \"sand|\"\n}");
        assert_eq!(context.kind, SlotKind::Value);
        assert_eq!(path(&context), "target");
        assert_eq!(context.prefix, "sand");
        assert_eq!(context.token, "sand");

        let context = check(
            Format::Json,
            "{ \"agent\": { \"ttl\": 3 }, | \"feature\": {} }",
        );
        assert_eq!(context.kind, SlotKind::Key);
        assert_eq!(path(&context), "");
        assert_eq!(context.existing_keys, ["agent", "feature"]);
        assert!(context.needs_comma);

        let context = check(Format::Json, "{ \"skip_processes\": [\"a\", |");
        assert_eq!(context.kind, SlotKind::Value);
        assert_eq!(path(&context), "skip_processes.[]");

        let context = check(Format::Json, "// comment {\n{ \"feature\": { \"fs\": tr|");
        assert_eq!(context.kind, SlotKind::Value);
        assert_eq!(path(&context), "feature.fs");
        assert_eq!(context.prefix, "tr");
    }

    #[test]
    fn yaml_paths_follow_indentation() {
        let context = check(
            Format::Yaml,
            "feature:\n  network:\n    incoming:\n      mode: steal\n      |\n",
        );
        assert_eq!(context.kind, SlotKind::Key);
        assert_eq!(path(&context), "feature.network.incoming");
        assert_eq!(context.existing_keys, ["mode"]);

        let context = check(Format::Yaml, "target: sa|\nfeature: {}\n");
        assert_eq!(context.kind, SlotKind::Value);
        assert_eq!(path(&context), "target");
        assert_eq!(context.prefix, "sa");

        let context = check(
            Format::Yaml,
            "feature:\n  fs:\n    read_only:\n      - a\n  net|",
        );
        assert_eq!(context.kind, SlotKind::Key);
        assert_eq!(path(&context), "feature");
        assert_eq!(context.prefix, "net");

        let context = check(
            Format::Yaml,
            "agent:\n  tolerations:\n    - key: x\n      eff|",
        );
        assert_eq!(path(&context), "agent.tolerations.[]");
    }

    #[test]
    fn toml_paths_follow_headers_and_dotted_keys() {
        let context = check(Format::Toml, "[feature.network]\nincoming.mo|");
        assert_eq!(context.kind, SlotKind::Key);
        assert_eq!(path(&context), "feature.network.incoming");
        assert_eq!(context.prefix, "mo");

        let context = check(Format::Toml, "[feature]\nfs = \"re|\"");
        assert_eq!(context.kind, SlotKind::Value);
        assert_eq!(path(&context), "feature.fs");
        assert_eq!(context.prefix, "re");
        assert!(context.quoted);

        let context = check(Format::Toml, "[feature.net|");
        assert_eq!(path(&context), "feature");
        assert_eq!(context.prefix, "net");

        let context = check(
            Format::Toml,
            "feature = { network = { incoming = { mode = \"steal\", po| } } }",
        );
        assert_eq!(context.kind, SlotKind::Key);
        assert_eq!(path(&context), "feature.network.incoming");
        assert_eq!(context.prefix, "po");

        let context = check(Format::Toml, "target = \"pid/1\"\n|");
        assert_eq!(context.kind, SlotKind::Key);
        assert_eq!(context.existing_keys, ["target"]);
    }
}
