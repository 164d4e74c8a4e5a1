//! The language features for config documents, as LSP values: diagnostics (from
//! `mirrord_config::check_str`, the engine of `mirrord verify-config`), completion, hover and
//! quick fixes. Pure functions of the document text, so they are tested without a client.

use mirrord_config::diagnostic::PathSegment;
use mirrord_config::source::{LineIndex, Node, NodeKind};
use mirrord_config::{Format, Severity};
use serde_json::Value;
use tower_lsp_server::ls_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, Diagnostic, DiagnosticRelatedInformation,
    DiagnosticSeverity, Hover, HoverContents, Location, MarkupContent, MarkupKind, NumberOrString,
    Position, Range, TextEdit, Uri, WorkspaceEdit,
};

use crate::cursor::{self, SlotKind};
use crate::documents::Document;
use mirrord_config::schema_nav::SchemaNav;

mod completion;

use completion::render_value;
pub use completion::{ClientSupport, completion};

/// The `source` of every diagnostic the sidecar publishes.
pub const SOURCE: &str = "mirrord";

/// An LSP range from a config diagnostic's range.
pub fn lsp_range(range: &mirrord_config::Range) -> Range {
    Range {
        start: Position {
            line: range.start.line,
            character: range.start.character,
        },
        end: Position {
            line: range.end.line,
            character: range.end.character,
        },
    }
}

fn range_of(text: &str, index: &LineIndex, span: std::ops::Range<usize>) -> Range {
    lsp_range(&mirrord_config::Range::from_span(text, index, &span))
}

/// Checks `text` and returns the config diagnostics (kept for quick fixes) and the LSP ones.
/// Takes time linear in the size of the text.
pub fn check(
    uri: &Uri,
    text: &str,
    format: Format,
) -> (Vec<mirrord_config::Diagnostic>, Vec<Diagnostic>) {
    check_cancellable(uri, text, format, &|| false).unwrap_or_default()
}

/// [`check`] that gives up, returning `None`, once `cancelled` returns true (see
/// `mirrord_config::check_str_cancellable`).
pub fn check_cancellable(
    uri: &Uri,
    text: &str,
    format: Format,
    cancelled: &dyn Fn() -> bool,
) -> Option<(Vec<mirrord_config::Diagnostic>, Vec<Diagnostic>)> {
    let (_, diagnostics) = mirrord_config::check_str_cancellable(text, format, cancelled)?;
    if cancelled() {
        return None;
    }
    let lsp = to_lsp_diagnostics(uri, text, format, &diagnostics);
    Some((diagnostics, lsp))
}

/// The diagnostic published for a document too large to check.
pub fn too_large_diagnostic(size: usize) -> Diagnostic {
    Diagnostic {
        range: Range::default(),
        severity: Some(DiagnosticSeverity::ERROR),
        source: Some(SOURCE.to_owned()),
        code: Some(NumberOrString::String("document-too-large".to_owned())),
        message: format!(
            "this document is {size} bytes; mirrord checks config files of at most {} bytes",
            crate::documents::MAX_DOCUMENT_BYTES
        ),
        ..Diagnostic::default()
    }
}

/// Config diagnostics as LSP diagnostics, with related locations where another place in the
/// file explains the problem (the first of two duplicate keys, the other of two exclusive keys).
pub fn to_lsp_diagnostics(
    uri: &Uri,
    text: &str,
    format: Format,
    diagnostics: &[mirrord_config::Diagnostic],
) -> Vec<Diagnostic> {
    let index = LineIndex::new(text);
    let (tree, _) = mirrord_config::source::parse(text, format);
    let keys = tree
        .as_ref()
        .map(|tree| KeyTable::new(text, &index, tree))
        .unwrap_or_default();
    diagnostics
        .iter()
        .map(|diagnostic| {
            let range = lsp_range(&diagnostic.range);
            let related =
                Some(keys.related(uri, diagnostic, range)).filter(|related| !related.is_empty());
            let mut data = serde_json::Map::new();
            data.insert("path".to_owned(), diagnostic.path.clone().into());
            if let Some(replacement) = &diagnostic.replacement {
                data.insert("replacement".to_owned(), replacement.clone().into());
            }
            Diagnostic {
                range,
                severity: Some(match diagnostic.severity {
                    Severity::Error => DiagnosticSeverity::ERROR,
                    Severity::Warning => DiagnosticSeverity::WARNING,
                }),
                source: Some(SOURCE.to_owned()),
                message: diagnostic.message.clone(),
                related_information: related,
                data: Some(Value::Object(data)),
                ..Diagnostic::default()
            }
        })
        .collect()
}

/// A range as a hashable key.
type RangeKey = (u32, u32, u32, u32);

fn range_key(range: Range) -> RangeKey {
    (
        range.start.line,
        range.start.character,
        range.end.line,
        range.end.character,
    )
}

/// Every key of a document's objects with its range, indexed so that finding the keys a
/// diagnostic relates to costs the same whatever the number of keys.
#[derive(Default)]
struct KeyTable<'t> {
    objects: Vec<ObjectKeys<'t>>,
    /// Key range → the objects with a key there, with the key's first position in each.
    by_range: std::collections::HashMap<RangeKey, Vec<(usize, usize)>>,
}

/// The keys of one object, in source order.
struct ObjectKeys<'t> {
    keys: Vec<(&'t str, Range)>,
    /// Key → its positions in `keys`.
    positions: std::collections::HashMap<&'t str, Vec<usize>>,
}

impl<'t> KeyTable<'t> {
    fn new(text: &str, index: &LineIndex, tree: &'t Node) -> KeyTable<'t> {
        let mut table = KeyTable::default();
        visit_objects(tree, &mut |entries| {
            let object = table.objects.len();
            let mut keys = Vec::with_capacity(entries.len());
            let mut positions: std::collections::HashMap<&'t str, Vec<usize>> =
                std::collections::HashMap::with_capacity(entries.len());
            for (position, entry) in entries.iter().enumerate() {
                let range = range_of(text, index, entry.key_span.clone());
                keys.push((entry.key.as_str(), range));
                positions
                    .entry(entry.key.as_str())
                    .or_default()
                    .push(position);
                let at = table.by_range.entry(range_key(range)).or_default();
                if !at.iter().any(|&(other, _)| other == object) {
                    at.push((object, position));
                }
            }
            table.objects.push(ObjectKeys { keys, positions });
        });
        table
    }

    /// The other keys that explain `diagnostic`, whose range is `range`.
    fn related(
        &self,
        uri: &Uri,
        diagnostic: &mirrord_config::Diagnostic,
        range: Range,
    ) -> Vec<DiagnosticRelatedInformation> {
        let Some(places) = self.by_range.get(&range_key(range)) else {
            return Vec::new();
        };
        let mentioned: Vec<&str> = diagnostic.message.split('`').skip(1).step_by(2).collect();
        let duplicate = diagnostic.message.starts_with("duplicate key");
        let mut related = Vec::new();
        for &(object, own) in places {
            let object = &self.objects[object];
            let own_key = object.keys[own].0;
            let mut found: Vec<(usize, String)> = Vec::new();
            if duplicate {
                for &position in object.positions.get(own_key).into_iter().flatten() {
                    if position < own {
                        found.push((position, format!("`{own_key}` is first set here")));
                    }
                }
            }
            for key in &mentioned {
                if *key == own_key {
                    continue;
                }
                for &position in object.positions.get(key).into_iter().flatten() {
                    found.push((position, format!("`{key}` is set here")));
                }
            }
            found.sort_by_key(|(position, _)| *position);
            found.dedup_by_key(|(position, _)| *position);
            related.extend(found.into_iter().map(|(position, message)| {
                DiagnosticRelatedInformation {
                    location: Location {
                        uri: uri.clone(),
                        range: object.keys[position].1,
                    },
                    message,
                }
            }));
        }
        related
    }
}

fn visit_objects<'t>(node: &'t Node, visit: &mut dyn FnMut(&'t [mirrord_config::source::Entry])) {
    match &node.kind {
        NodeKind::Object(entries) => {
            visit(entries);
            for entry in entries {
                visit_objects(&entry.value, visit);
            }
        }
        NodeKind::Array(items) => {
            for item in items {
                visit_objects(item, visit);
            }
        }
        _ => {}
    }
}

fn type_summary(nav: &SchemaNav<'_>, schema: &Value) -> String {
    let types = nav.types(schema);
    if types.is_empty() {
        "any".to_owned()
    } else {
        types.join(" | ")
    }
}

/// Hover at byte `offset`: the key's path, type, allowed values, description and default.
pub fn hover(document: &Document, offset: usize) -> Option<Hover> {
    let context = cursor::context_at(&document.text, offset, document.format)?;
    let nav = SchemaNav::mirrord();
    let path: Vec<PathSegment> = match context.kind {
        SlotKind::Key => {
            if context.token.is_empty() {
                return None;
            }
            let mut path = context.path.clone();
            path.push(PathSegment::Key(context.token.clone()));
            path
        }
        SlotKind::Value => context.path.clone(),
    };
    let schemas = nav.at_path(&path);
    let schema = *schemas.first()?;
    let dotted = mirrord_config::diagnostic::KeyPath::default();
    let dotted = path.iter().fold(dotted, |acc, segment| match segment {
        PathSegment::Key(key) => acc.key(key),
        PathSegment::Index(index) => acc.index(*index),
    });
    let mut text = format!("**`{dotted}`**: `{}`", type_summary(&nav, schema));
    let choices: Vec<String> = nav
        .value_choices(schema)
        .iter()
        .filter(|choice| !choice.value.is_boolean())
        .map(|choice| format!("`{}`", render_value(Format::Yaml, &choice.value)))
        .collect();
    if !choices.is_empty() {
        text.push_str(&format!("\n\nValues: {}", choices.join(", ")));
    }
    let description = nav.description(schema);
    if let Some(description) = &description {
        text.push_str("\n\n");
        text.push_str(description);
    }
    if context.kind == SlotKind::Value
        && let Some(choice) = nav
            .value_choices(schema)
            .into_iter()
            .find(|choice| choice.value.as_str() == Some(context.token.as_str()))
        && let Some(meaning) = choice.description
    {
        text.push_str(&format!("\n\n`{}`: {meaning}", context.token));
    }
    if nav.is_unsupported(schema) {
        text.push_str("\n\nThis implementation does not support this key; it is ignored.");
    }
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: text,
        }),
        range: Some(range_of(&document.text, &document.index, context.replace)),
    })
}

fn overlaps(a: &Range, b: &Range) -> bool {
    let before = |x: &Position, y: &Position| (x.line, x.character) < (y.line, y.character);
    !before(&a.end, &b.start) && !before(&b.end, &a.start)
}

/// Quick fixes for the diagnostics in `range` that carry a replacement.
pub fn code_actions(
    uri: &Uri,
    document: &Document,
    range: Range,
    diagnostics: &[mirrord_config::Diagnostic],
) -> Vec<CodeActionOrCommand> {
    let lsp = to_lsp_diagnostics(uri, &document.text, document.format, diagnostics);
    diagnostics
        .iter()
        .zip(lsp)
        .filter(|(diagnostic, _)| overlaps(&lsp_range(&diagnostic.range), &range))
        .filter_map(|(diagnostic, lsp)| {
            let replacement = diagnostic.replacement.as_ref()?;
            let start = document.offset(
                diagnostic.range.start.line,
                diagnostic.range.start.character,
            );
            let end = document.offset(diagnostic.range.end.line, diagnostic.range.end.character);
            let original = document.text.get(start..end)?;
            let new_text = quote_like(original, replacement);
            let title = if diagnostic.severity == Severity::Warning {
                format!(
                    "Rename `{}` to `{}`",
                    original.trim_matches('"'),
                    new_text.trim_matches('"')
                )
            } else {
                format!(
                    "Replace `{}` with `{}`",
                    original.trim_matches('"'),
                    new_text.trim_matches('"')
                )
            };
            let edit = TextEdit {
                range: lsp.range,
                new_text,
            };
            Some(CodeActionOrCommand::CodeAction(CodeAction {
                title,
                kind: Some(CodeActionKind::QUICKFIX),
                diagnostics: Some(vec![lsp]),
                edit: Some(WorkspaceEdit {
                    changes: Some([(uri.clone(), vec![edit])].into_iter().collect()),
                    ..WorkspaceEdit::default()
                }),
                is_preferred: Some(true),
                ..CodeAction::default()
            }))
        })
        .collect()
}

/// The replacement quoted the way the original text was (deprecated-key replacements come bare).
fn quote_like(original: &str, replacement: &str) -> String {
    for quote in ['"', '\''] {
        if original.starts_with(quote) && !replacement.starts_with(quote) {
            return format!("{quote}{replacement}{quote}");
        }
    }
    replacement.to_owned()
}

#[cfg(test)]
mod tests {
    use tower_lsp_server::ls_types::CompletionTextEdit;

    use super::*;
    use crate::protocol::TargetInfo;

    fn document(format: Format, text: &str) -> Document {
        Document::new(
            "file:///w/mirrord.json".to_owned(),
            None,
            text.to_owned(),
            1,
        )
        .with_format(format)
    }

    impl Document {
        fn with_format(mut self, format: Format) -> Document {
            self.format = format;
            self
        }
    }

    fn labels(format: Format, marked: &str) -> Vec<String> {
        let offset = marked.find('|').unwrap();
        let text = marked.replacen('|', "", 1);
        completion(
            &document(format, &text),
            offset,
            ClientSupport { snippets: true },
            &mut || {
                vec![TargetInfo {
                    path: "sandbox/demo".into(),
                    kind: "sandbox".into(),
                    namespace: None,
                    available: true,
                    detail: "sandbox".into(),
                }]
            },
        )
        .into_iter()
        .map(|item| item.label)
        .collect()
    }

    #[test]
    fn completes_keys_values_and_targets_in_every_format() {
        let root = labels(Format::Json, "{ \"agent\": {}, | }");
        assert!(root.contains(&"feature".to_owned()) && !root.contains(&"agent".to_owned()));
        assert!(
            labels(
                Format::Json,
                "{ \"feature\": { \"network\": { \"incoming\": { | } } } }"
            )
            .contains(&"ignore_ports".to_owned())
        );
        assert_eq!(
            labels(Format::Json, "{ \"target\": \"|\" }"),
            ["sandbox/demo"]
        );
        assert_eq!(labels(Format::Yaml, "target: |"), ["sandbox/demo"]);
        assert!(
            labels(Format::Yaml, "feature:\n  network:\n    incoming: |")
                .contains(&"steal".to_owned())
        );
        assert!(
            labels(Format::Toml, "[feature.network.incoming]\n|")
                .contains(&"http_filter".to_owned())
        );
    }

    #[test]
    fn json_key_snippets_respect_quotes_and_commas() {
        let text = "{ \"fe\" }";
        let items = completion(
            &document(Format::Json, text),
            4,
            ClientSupport { snippets: true },
            &mut Vec::new,
        );
        let feature = items.iter().find(|item| item.label == "feature").unwrap();
        let Some(CompletionTextEdit::Edit(edit)) = &feature.text_edit else {
            panic!()
        };
        assert_eq!(edit.new_text, "\"feature\": {\n  $1\n}");
        assert_eq!(
            (edit.range.start.character, edit.range.end.character),
            (2, 6)
        );
    }

    #[test]
    fn hover_shows_description_type_and_default() {
        let text = "{ \"feature\": { \"network\": { \"incoming\": \"steal\" } } }";
        let offset = text.find("incoming").unwrap() + 2;
        let Some(Hover {
            contents: HoverContents::Markup(markup),
            ..
        }) = hover(&document(Format::Json, text), offset)
        else {
            panic!()
        };
        assert!(
            markup.value.contains("feature.network.incoming"),
            "{}",
            markup.value
        );
        assert!(markup.value.contains("Default"), "{}", markup.value);
        assert!(markup.value.contains("`steal`"), "{}", markup.value);
    }

    #[test]
    fn quick_fixes_use_the_replacement() {
        let uri: Uri = "file:///w/mirrord.json".parse().unwrap();
        for (text, expected) in [
            ("{ \"tagret\": \"pid/1\" }", "\"target\""),
            (
                "{ \"feature\": { \"network\": { \"incoming\": { \"mode\": \"steal\", \"http_header_filter\": { \"filter\": \"x: y\" } } } } }",
                "\"http_filter\"",
            ),
        ] {
            let document = document(Format::Json, text);
            let (diagnostics, _) = check(&uri, text, Format::Json);
            let actions = code_actions(
                &uri,
                &document,
                Range {
                    start: Position::new(0, 0),
                    end: Position::new(0, 500),
                },
                &diagnostics,
            );
            let Some(CodeActionOrCommand::CodeAction(action)) = actions.first() else {
                panic!("{diagnostics:?}")
            };
            let edits = &action.edit.as_ref().unwrap().changes.as_ref().unwrap()[&uri];
            assert_eq!(edits[0].new_text, expected);
        }
    }

    #[test]
    fn duplicate_keys_point_at_the_first_one() {
        let uri: Uri = "file:///w/mirrord.json".parse().unwrap();
        let (_, lsp) = check(
            &uri,
            "{ \"target\": \"pod/a\", \"target\": \"pod/b\" }",
            Format::Json,
        );
        let related = lsp[0]
            .related_information
            .as_ref()
            .expect("related information");
        assert_eq!(related[0].location.range.start.character, 2);
    }
}
