//! Completion in config documents: keys (with snippets for their values where the client takes
//! them), values from the schema's choices and examples, and live targets inside `target`.

use mirrord_config::Format;
use mirrord_config::diagnostic::PathSegment;
use serde_json::Value;
use tower_lsp_server::ls_types::{
    CompletionItem, CompletionItemKind, CompletionItemLabelDetails, CompletionTextEdit,
    Documentation, InsertTextFormat, MarkupContent, MarkupKind, Range, TextEdit,
};

use crate::cursor::{self, CursorContext, SlotKind};
use crate::documents::Document;
use crate::protocol::TargetInfo;
use mirrord_config::schema_nav::{self, SchemaNav};

use super::{range_of, type_summary};

/// What the client can render.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientSupport {
    /// Snippets (`$1`, `${1|a,b|}`) in completion items.
    pub snippets: bool,
}

/// Completion items at byte `offset`. `targets` is called only when the cursor is on the
/// target's value.
pub fn completion(
    document: &Document,
    offset: usize,
    support: ClientSupport,
    targets: &mut dyn FnMut() -> Vec<TargetInfo>,
) -> Vec<CompletionItem> {
    let Some(context) = cursor::context_at(&document.text, offset, document.format) else {
        return Vec::new();
    };
    let replace = range_of(&document.text, &document.index, context.replace.clone());
    match context.kind {
        SlotKind::Key => key_items(document.format, &context, replace, support),
        SlotKind::Value => value_items(document.format, &context, replace, support, targets),
    }
}

fn key_items(
    format: Format,
    context: &CursorContext,
    replace: Range,
    support: ClientSupport,
) -> Vec<CompletionItem> {
    let nav = SchemaNav::mirrord();
    nav.keys_at(&context.path)
        .into_iter()
        .enumerate()
        .filter(|(_, key)| !schema_nav::is_deprecated(key.schema))
        .filter(|(_, key)| {
            !context
                .existing_keys
                .iter()
                .any(|existing| existing == key.name)
        })
        .map(|(position, key)| {
            let unsupported = nav.is_unsupported(key.schema);
            let description = nav.description(key.schema);
            let shape = ValueShape::of(&nav, key.schema);
            let (insert, is_snippet) = key_insert_text(format, context, key.name, &shape, support);
            let types = type_summary(&nav, key.schema);
            CompletionItem {
                label: key.name.to_owned(),
                kind: Some(CompletionItemKind::PROPERTY),
                detail: Some(if unsupported {
                    format!("{types} (not supported here; ignored)")
                } else {
                    types
                }),
                label_details: description
                    .as_deref()
                    .and_then(schema_nav::default_from_description)
                    .map(|default| CompletionItemLabelDetails {
                        detail: None,
                        description: Some(format!("default: {default}")),
                    }),
                documentation: description.map(|value| {
                    Documentation::MarkupContent(MarkupContent {
                        kind: MarkupKind::Markdown,
                        value,
                    })
                }),
                sort_text: Some(format!(
                    "{}{position:04}",
                    if unsupported { 'z' } else { 'a' }
                )),
                filter_text: Some(if context.quoted {
                    format!("\"{}\"", key.name)
                } else {
                    key.name.to_owned()
                }),
                insert_text_format: Some(if is_snippet {
                    InsertTextFormat::SNIPPET
                } else {
                    InsertTextFormat::PLAIN_TEXT
                }),
                text_edit: Some(CompletionTextEdit::Edit(TextEdit {
                    range: replace,
                    new_text: insert,
                })),
                ..CompletionItem::default()
            }
        })
        .collect()
}

/// The shape of the value a key takes, for the snippet inserted with the key.
#[derive(Debug, Clone, PartialEq)]
enum ValueShape {
    Object,
    Array,
    String,
    Choices(Vec<Value>),
    Other,
}

impl ValueShape {
    fn of(nav: &SchemaNav<'_>, schema: &Value) -> ValueShape {
        let types = nav.types(schema);
        let choices = nav.value_choices(schema);
        if types == ["object"] {
            ValueShape::Object
        } else if !choices.is_empty() && !types.contains(&"object") {
            ValueShape::Choices(choices.into_iter().map(|choice| choice.value).collect())
        } else if types == ["array"] {
            ValueShape::Array
        } else if types == ["string"] {
            ValueShape::String
        } else {
            ValueShape::Other
        }
    }
}

pub(super) fn render_value(format: Format, value: &Value) -> String {
    match (format, value) {
        (Format::Yaml, Value::String(text)) => text.clone(),
        (_, value) => value.to_string(),
    }
}

fn key_insert_text(
    format: Format,
    context: &CursorContext,
    key: &str,
    shape: &ValueShape,
    support: ClientSupport,
) -> (String, bool) {
    let inner_indent = " ".repeat(context.indent + 2);
    let outer_indent = " ".repeat(context.indent);
    let choices = |values: &[Value]| {
        let rendered: Vec<String> = values
            .iter()
            .map(|value| {
                render_value(format, value)
                    .replace(',', "\\,")
                    .replace('|', "\\|")
            })
            .collect();
        format!("${{1|{}|}}", rendered.join(","))
    };
    match format {
        Format::Json => {
            let name = format!("\"{key}\"");
            if context.has_separator {
                return (name, false);
            }
            let comma = if context.needs_comma { "," } else { "" };
            if !support.snippets {
                return (format!("{name}: {comma}"), false);
            }
            let value = match shape {
                ValueShape::Object => format!("{{\n{inner_indent}$1\n{outer_indent}}}"),
                ValueShape::Array => "[$1]".to_owned(),
                ValueShape::String => "\"$1\"".to_owned(),
                ValueShape::Choices(values) => choices(values),
                ValueShape::Other => "$1".to_owned(),
            };
            (format!("{name}: {value}{comma}"), true)
        }
        Format::Yaml => {
            if !support.snippets {
                return (format!("{key}: "), false);
            }
            let value = match shape {
                ValueShape::Object => format!("\n{inner_indent}$1"),
                ValueShape::Array => format!("\n{inner_indent}- $1"),
                ValueShape::Choices(values) => format!(" {}", choices(values)),
                ValueShape::String | ValueShape::Other => " $1".to_owned(),
            };
            (format!("{key}:{value}"), true)
        }
        Format::Toml => {
            if !support.snippets {
                return (format!("{key} = "), false);
            }
            let value = match shape {
                ValueShape::Object => "{ $1 }".to_owned(),
                ValueShape::Array => "[$1]".to_owned(),
                ValueShape::String => "\"$1\"".to_owned(),
                ValueShape::Choices(values) => choices(values),
                ValueShape::Other => "$1".to_owned(),
            };
            (format!("{key} = {value}"), true)
        }
    }
}

fn is_target_path(path: &[PathSegment]) -> bool {
    matches!(path, [PathSegment::Key(first)] if first == "target")
        || matches!(path, [PathSegment::Key(first), PathSegment::Key(second)] if first == "target" && second == "path")
}

fn quote_value(format: Format, context: &CursorContext, value: &Value) -> String {
    match value {
        Value::String(text) => match format {
            Format::Yaml if !context.quoted => text.clone(),
            _ => Value::String(text.clone()).to_string(),
        },
        other => other.to_string(),
    }
}

fn value_items(
    format: Format,
    context: &CursorContext,
    replace: Range,
    support: ClientSupport,
    targets: &mut dyn FnMut() -> Vec<TargetInfo>,
) -> Vec<CompletionItem> {
    let nav = SchemaNav::mirrord();
    let mut items = Vec::new();
    let item = |label: String,
                insert: String,
                detail: Option<String>,
                documentation: Option<String>,
                sort: usize,
                kind: CompletionItemKind| {
        CompletionItem {
            filter_text: Some(insert.clone()),
            label,
            kind: Some(kind),
            detail,
            documentation: documentation.map(|value| {
                Documentation::MarkupContent(MarkupContent {
                    kind: MarkupKind::Markdown,
                    value,
                })
            }),
            sort_text: Some(format!("{sort:05}")),
            text_edit: Some(CompletionTextEdit::Edit(TextEdit {
                range: replace,
                new_text: insert,
            })),
            ..CompletionItem::default()
        }
    };
    if is_target_path(&context.path) {
        for (position, target) in targets().into_iter().enumerate() {
            let insert = quote_value(format, context, &Value::String(target.path.clone()));
            let detail = if target.available {
                target.detail.clone()
            } else {
                format!("{} (not available)", target.detail)
            };
            items.push(item(
                target.path,
                insert,
                Some(detail),
                None,
                position,
                CompletionItemKind::VALUE,
            ));
        }
        return items;
    }
    let schemas = nav.at_path(&context.path);
    let mut position = 0;
    for schema in &schemas {
        for choice in nav.value_choices(schema) {
            let label = match &choice.value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            if items
                .iter()
                .any(|existing: &CompletionItem| existing.label == label)
            {
                continue;
            }
            let insert = quote_value(format, context, &choice.value);
            items.push(item(
                label,
                insert,
                None,
                choice.description,
                position,
                CompletionItemKind::ENUM_MEMBER,
            ));
            position += 1;
        }
    }
    let offers_object = schemas
        .iter()
        .any(|schema| nav.types(schema).contains(&"object"));
    if offers_object && context.token.is_empty() && format != Format::Yaml {
        let (text, snippet) = if support.snippets {
            (
                if format == Format::Json {
                    "{$1}"
                } else {
                    "{ $1 }"
                },
                true,
            )
        } else {
            ("{}", false)
        };
        let mut object = item(
            "{}".to_owned(),
            text.to_owned(),
            Some("an object with settings".to_owned()),
            None,
            position,
            CompletionItemKind::STRUCT,
        );
        if snippet {
            object.insert_text_format = Some(InsertTextFormat::SNIPPET);
        }
        items.push(object);
    }
    items
}
