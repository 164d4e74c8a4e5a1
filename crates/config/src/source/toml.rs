//! TOML through the `toml` crate's span-keeping parser, converted to [`Node`].

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{Entry, MAX_DEPTH, Node, NodeKind, SyntaxError};

pub(super) fn parse(text: &str) -> (Option<Node>, Vec<SyntaxError>) {
    if let Some(error) = too_deep(text) {
        return (None, vec![error]);
    }
    match DeTable::parse(text) {
        Ok(table) => {
            let span = table.span();
            let mut errors = Vec::new();
            let node = Node {
                kind: table_kind(table.get_ref(), &mut errors),
                span,
            };
            (Some(node), errors)
        }
        Err(error) => {
            let span = error.span().unwrap_or(0..0);
            let message = first_line_lowercase(error.message());
            (None, vec![SyntaxError { message, span }])
        }
    }
}

fn table_kind(table: &DeTable<'_>, errors: &mut Vec<SyntaxError>) -> NodeKind {
    let entries = table
        .iter()
        .map(|(key, value)| Entry {
            key: key.get_ref().to_string(),
            key_span: key.span(),
            value: convert(value, errors),
        })
        .collect();
    NodeKind::Object(entries)
}

fn convert(value: &Spanned<DeValue<'_>>, errors: &mut Vec<SyntaxError>) -> Node {
    let span = value.span();
    let kind = match value.get_ref() {
        DeValue::String(text) => NodeKind::String(text.to_string()),
        DeValue::Integer(integer) => match i64::from_str_radix(integer.as_str(), integer.radix()) {
            Ok(number) => NodeKind::Number(number.into()),
            Err(_) => {
                errors.push(SyntaxError {
                    message: "integer out of range".to_owned(),
                    span: span.clone(),
                });
                NodeKind::Null
            }
        },
        DeValue::Float(float) => {
            match float
                .as_str()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
            {
                Some(number) => NodeKind::Number(number),
                None => {
                    errors.push(SyntaxError {
                        message: "infinite and NaN numbers are not allowed here".to_owned(),
                        span: span.clone(),
                    });
                    NodeKind::Null
                }
            }
        }
        DeValue::Boolean(value) => NodeKind::Bool(*value),
        // Dates have no meaning in a mirrord config; keep them as text so the validator reports
        // "expected X, found string" at the right place.
        DeValue::Datetime(datetime) => NodeKind::String(datetime.to_string()),
        DeValue::Array(items) => {
            NodeKind::Array(items.iter().map(|item| convert(item, errors)).collect())
        }
        DeValue::Table(table) => table_kind(table, errors),
    };
    Node { kind, span }
}

/// Rejects inline nesting deeper than [`MAX_DEPTH`] before the parser recurses into it.
fn too_deep(text: &str) -> Option<SyntaxError> {
    let mut depth = 0usize;
    let mut in_string = false;
    for (offset, byte) in text.bytes().enumerate() {
        match byte {
            b'"' | b'\'' => in_string = !in_string,
            b'[' | b'{' if !in_string => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(SyntaxError {
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                        span: offset..offset + 1,
                    });
                }
            }
            b']' | b'}' if !in_string => depth = depth.saturating_sub(1),
            b'\n' => in_string = false,
            _ => {}
        }
    }
    None
}

fn first_line_lowercase(message: &str) -> String {
    let line = message
        .lines()
        .next()
        .unwrap_or("invalid TOML")
        .trim()
        .trim_end_matches('.');
    let mut chars = line.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "invalid TOML".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_and_value_spans() {
        let text = "target = \"pod/a\"\n[feature.network]\nincoming = \"steal\"\n";
        let (node, errors) = parse(text);
        assert!(errors.is_empty(), "{errors:?}");
        let node = node.unwrap();
        let target = node.get("target").unwrap();
        assert_eq!(&text[target.key_span.clone()], "target");
        assert_eq!(&text[target.value.span.clone()], "\"pod/a\"");
        let feature = node.get("feature").unwrap();
        let incoming = feature
            .value
            .get("network")
            .unwrap()
            .value
            .get("incoming")
            .unwrap();
        assert_eq!(&text[incoming.value.span.clone()], "\"steal\"");
    }

    #[test]
    fn reports_syntax_errors_with_a_span() {
        let (node, errors) = parse("a = \n");
        assert!(node.is_none());
        assert!(!errors[0].message.is_empty());
        assert!(errors[0].span.start <= 5);
    }

    #[test]
    fn refuses_deep_inline_nesting() {
        let text = format!("a = {}1{}", "[".repeat(500), "]".repeat(500));
        let (_, errors) = parse(&text);
        assert!(errors[0].message.contains("nesting deeper"));
    }
}
