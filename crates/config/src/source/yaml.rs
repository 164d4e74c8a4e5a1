//! YAML through `saphyr-parser`'s event stream, converted to [`Node`] with YAML 1.2 core-schema
//! scalar resolution (`null`, `true`, `42`, `0x2A`, `1.5`, `.inf`). Aliases are expanded, with a
//! cap on what they add in proportion to the size of the text ([`MAX_EXPANSION`] times it, at
//! least [`MIN_EXPANSION_BUDGET`]), so that "billion laughs" documents are refused with a
//! diagnostic, not allocated.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as YamlSpan};

use super::{Entry, MAX_DEPTH, Node, NodeKind, Span, SyntaxError, check_duplicate_keys};

/// What aliases may add to a document, as a multiple of the text's size.
pub(crate) const MAX_EXPANSION: usize = 16;

/// What aliases may add to any document, however small (bytes).
pub(crate) const MIN_EXPANSION_BUDGET: usize = 64 * 1024;

/// What one node costs in the expansion budget besides its text (about its size in memory).
const NODE_COST: usize = 64;

pub(super) fn parse(text: &str) -> (Option<Node>, Vec<SyntaxError>) {
    let offsets = CharOffsets::new(text);
    let mut builder = Builder {
        offsets: &offsets,
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        documents: 0,
        expanded: 0,
        expansion_budget: text
            .len()
            .saturating_mul(MAX_EXPANSION)
            .max(MIN_EXPANSION_BUDGET),
        errors: Vec::new(),
    };
    for event in Parser::new_from_str(text) {
        let result = match event {
            Ok((event, span)) => builder.event(event, span),
            Err(error) => {
                let offset = offsets.byte(error.marker().index());
                Err(SyntaxError {
                    message: error.info().to_owned(),
                    span: offset..offset,
                })
            }
        };
        if let Err(error) = result {
            return (None, vec![error]);
        }
    }
    match builder.root {
        Some(root) => (Some(root), builder.errors),
        None => (
            None,
            vec![SyntaxError {
                message: "the file is empty; write `{}` for a config with every default".to_owned(),
                span: 0..0,
            }],
        ),
    }
}

/// Char index → byte offset (saphyr's markers count characters).
struct CharOffsets {
    /// Byte offset of every char, only when the text is not ASCII.
    table: Option<Vec<u32>>,
    length: usize,
}

impl CharOffsets {
    fn new(text: &str) -> CharOffsets {
        let table = (!text.is_ascii()).then(|| {
            text.char_indices()
                .map(|(offset, _)| u32::try_from(offset).unwrap_or(u32::MAX))
                .collect()
        });
        CharOffsets {
            table,
            length: text.len(),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        match &self.table {
            None => char_index.min(self.length),
            Some(table) => table
                .get(char_index)
                .map_or(self.length, |&offset| offset as usize),
        }
    }

    fn span(&self, span: &YamlSpan) -> Span {
        self.byte(span.start.index())..self.byte(span.end.index())
    }
}

enum Frame {
    Sequence {
        start: usize,
        anchor: usize,
        items: Vec<Node>,
    },
    Mapping {
        start: usize,
        anchor: usize,
        entries: Vec<Entry>,
        pending_key: Option<(String, Span)>,
    },
}

struct Builder<'a> {
    offsets: &'a CharOffsets,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    documents: usize,
    /// What aliases have added so far (see [`NODE_COST`]).
    expanded: usize,
    expansion_budget: usize,
    errors: Vec<SyntaxError>,
}

impl Builder<'_> {
    fn event(&mut self, event: Event<'_>, span: YamlSpan) -> Result<(), SyntaxError> {
        let byte_span = self.offsets.span(&span);
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(SyntaxError {
                        message: "only one YAML document is allowed in a config file".to_owned(),
                        span: byte_span,
                    });
                }
                Ok(())
            }
            Event::Scalar(value, style, anchor, tag) => {
                let is_str_tag = tag.as_ref().is_some_and(|tag| tag.suffix == "str");
                let kind = if style == ScalarStyle::Plain && !is_str_tag {
                    resolve_plain(&value)
                } else {
                    NodeKind::String(value.into_owned())
                };
                self.finish(
                    Node {
                        kind,
                        span: byte_span,
                    },
                    anchor,
                )
            }
            Event::SequenceStart(anchor, _) => self.push(
                Frame::Sequence {
                    start: byte_span.start,
                    anchor,
                    items: Vec::new(),
                },
                byte_span,
            ),
            Event::MappingStart(anchor, _) => self.push(
                Frame::Mapping {
                    start: byte_span.start,
                    anchor,
                    entries: Vec::new(),
                    pending_key: None,
                },
                byte_span,
            ),
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return Ok(());
                };
                let end = byte_span.end.max(byte_span.start);
                let (node, anchor) = match frame {
                    Frame::Sequence {
                        start,
                        anchor,
                        items,
                    } => (
                        Node {
                            kind: NodeKind::Array(items),
                            span: start..end,
                        },
                        anchor,
                    ),
                    Frame::Mapping {
                        start,
                        anchor,
                        entries,
                        ..
                    } => {
                        check_duplicate_keys(&entries, &mut self.errors);
                        (
                            Node {
                                kind: NodeKind::Object(entries),
                                span: start..end,
                            },
                            anchor,
                        )
                    }
                };
                self.finish(node, anchor)
            }
            Event::Alias(id) => {
                let Some(node) = self.anchors.get(&id).cloned() else {
                    return Err(SyntaxError {
                        message: "unknown alias".to_owned(),
                        span: byte_span,
                    });
                };
                self.expanded = self.expanded.saturating_add(cost(&node));
                if self.expanded > self.expansion_budget {
                    return Err(SyntaxError {
                        message: format!(
                            "aliases expand this document too much: more than {} bytes of values, {MAX_EXPANSION} times the size of the file; write the repeated values out or use fewer aliases",
                            self.expansion_budget
                        ),
                        span: byte_span,
                    });
                }
                self.finish(
                    Node {
                        kind: node.kind,
                        span: byte_span,
                    },
                    0,
                )
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => Ok(()),
        }
    }

    fn push(&mut self, frame: Frame, span: Span) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(SyntaxError {
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
                span,
            });
        }
        self.stack.push(frame);
        Ok(())
    }

    /// Places a completed node into its parent (or as the root).
    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), SyntaxError> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Frame::Sequence { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Mapping {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => {
                    let key = match node.kind {
                        NodeKind::String(text) => text,
                        NodeKind::Bool(value) => value.to_string(),
                        NodeKind::Number(number) => number.to_string(),
                        NodeKind::Null => "null".to_owned(),
                        NodeKind::Array(_) | NodeKind::Object(_) => {
                            return Err(SyntaxError {
                                message: "keys must be plain strings".to_owned(),
                                span: node.span,
                            });
                        }
                    };
                    *pending_key = Some((key, node.span));
                    Ok(())
                }
                Some((key, key_span)) => {
                    entries.push(Entry {
                        key,
                        key_span,
                        value: node,
                    });
                    Ok(())
                }
            },
        }
    }
}

/// What a copy of `node` costs: [`NODE_COST`] per node and key, plus their text.
fn cost(node: &Node) -> usize {
    NODE_COST
        + match &node.kind {
            NodeKind::String(text) => text.len(),
            NodeKind::Array(items) => items.iter().map(cost).sum::<usize>(),
            NodeKind::Object(entries) => entries
                .iter()
                .map(|entry| NODE_COST + entry.key.len() + cost(&entry.value))
                .sum::<usize>(),
            NodeKind::Null | NodeKind::Bool(_) | NodeKind::Number(_) => 0,
        }
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve_plain(value: &str) -> NodeKind {
    match value {
        "" | "~" | "null" | "Null" | "NULL" => return NodeKind::Null,
        "true" | "True" | "TRUE" => return NodeKind::Bool(true),
        "false" | "False" | "FALSE" => return NodeKind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "-.inf" | ".nan" | ".NaN" | ".NAN" => {
            return NodeKind::String(value.to_owned());
        }
        _ => {}
    }
    let integer = if let Some(hex) = value.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()
    } else if let Some(octal) = value.strip_prefix("0o") {
        i64::from_str_radix(octal, 8).ok()
    } else if value
        .bytes()
        .enumerate()
        .all(|(index, b)| b.is_ascii_digit() || (index == 0 && (b == b'-' || b == b'+')))
        && value.len() > usize::from(value.starts_with(['-', '+']))
    {
        value.parse::<i64>().ok()
    } else {
        None
    };
    if let Some(integer) = integer {
        return NodeKind::Number(integer.into());
    }
    let looks_numeric = value
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && value.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric
        && let Some(number) = value
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
    {
        return NodeKind::Number(number);
    }
    NodeKind::String(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_core_schema_scalars() {
        let text = "a: ~\nb: true\nc: 42\nd: 0x10\ne: 1.5\nf: '42'\ng: hello\nh: [1, x]\n";
        let (node, errors) = parse(text);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            node.unwrap().to_json(),
            serde_json::json!({"a": null, "b": true, "c": 42, "d": 16, "e": 1.5, "f": "42", "g": "hello", "h": [1, "x"]})
        );
    }

    #[test]
    fn keeps_spans_in_bytes_with_non_ascii_text() {
        let text = "# é\nfeature:\n  fs: wirte\n";
        let (node, _) = parse(text);
        let node = node.unwrap();
        let fs = node.get("feature").unwrap().value.get("fs").unwrap();
        assert_eq!(&text[fs.key_span.clone()], "fs");
        assert_eq!(&text[fs.value.span.clone()], "wirte");
    }

    #[test]
    fn reports_errors_and_refuses_alias_bombs() {
        let (node, errors) = parse("a: [1, 2\n");
        assert!(node.is_none());
        assert!(!errors.is_empty());
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 0..8 {
            let previous = if level == 0 {
                "a".to_owned()
            } else {
                format!("l{}", level - 1)
            };
            bomb.push_str(&format!("l{level}: &l{level} [*{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}]\n"));
        }
        let (_, errors) = parse(&bomb);
        assert!(
            errors.iter().any(|error| error
                .message
                .contains("aliases expand this document too much")),
            "{errors:?}"
        );
    }

    /// A few hundred bytes used to expand to up to a million values (~90 MB) before the old
    /// cap, counted in nodes, refused them; the cap now grows with the file instead.
    #[test]
    fn expansion_is_capped_in_proportion_to_the_text() {
        let mut small = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 0..4 {
            let previous = if level == 0 {
                "a".to_owned()
            } else {
                format!("l{}", level - 1)
            };
            let aliases = vec![format!("*{previous}"); 10].join(", ");
            small.push_str(&format!("l{level}: &l{level} [{aliases}]\n"));
        }
        assert!(small.len() < 400, "{}", small.len());
        let (node, errors) = parse(&small);
        assert!(node.is_none());
        let error = &errors[0];
        assert!(
            error
                .message
                .contains("aliases expand this document too much")
                && error.message.contains("16 times the size of the file"),
            "{error:?}"
        );
        assert!(
            small[error.span.clone()].starts_with('*'),
            "points at the alias"
        );

        // Ordinary reuse stays fine.
        let reuse = "base: &base { mode: read }\nfeature:\n  fs: *base\n  env: { include: X }\n";
        let (node, errors) = parse(reuse);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(node.is_some());
    }

    #[test]
    fn rejects_several_documents() {
        let (_, errors) = parse("a: 1\n---\nb: 2\n");
        assert!(errors[0].message.contains("one YAML document"));
    }
}
