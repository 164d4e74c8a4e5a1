//! A JSON parser that keeps positions and tolerates what people write in config files:
//! `//` and `/* */` comments and trailing commas. Stops at the first syntax error.

use super::{Entry, MAX_DEPTH, Node, NodeKind, Span, SyntaxError, check_duplicate_keys};

pub(super) fn parse(text: &str) -> (Option<Node>, Vec<SyntaxError>) {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        position: 0,
        duplicates: Vec::new(),
    };
    let result = parser.document();
    match result {
        Ok(node) => (Some(node), parser.duplicates),
        Err(error) => (None, vec![error]),
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    position: usize,
    duplicates: Vec<SyntaxError>,
}

type ParseResult<T> = Result<T, SyntaxError>;

impl Parser<'_> {
    fn document(&mut self) -> ParseResult<Node> {
        self.skip_trivia()?;
        if self.position >= self.bytes.len() {
            return Err(self.error_at(
                self.position..self.position,
                "the file is empty; write `{}` for a config with every default".to_owned(),
            ));
        }
        let node = self.value(0)?;
        self.skip_trivia()?;
        if self.position < self.bytes.len() {
            return Err(self.error_here("unexpected text after the end of the JSON value"));
        }
        Ok(node)
    }

    fn value(&mut self, depth: usize) -> ParseResult<Node> {
        if depth > MAX_DEPTH {
            return Err(self.error_here(&format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        let start = self.position;
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => {
                let text = self.string()?;
                Ok(Node {
                    kind: NodeKind::String(text),
                    span: start..self.position,
                })
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal("true", NodeKind::Bool(true)),
            Some(b'f') => self.literal("false", NodeKind::Bool(false)),
            Some(b'n') => self.literal("null", NodeKind::Null),
            Some(b'\'') => Err(self.error_here("strings must use double quotes")),
            Some(_) => Err(self.error_token("expected a value")),
            None => Err(self.error_here("unexpected end of file; expected a value")),
        }
    }

    fn object(&mut self, depth: usize) -> ParseResult<Node> {
        let start = self.position;
        self.position += 1;
        let mut entries: Vec<Entry> = Vec::new();
        loop {
            self.skip_trivia()?;
            match self.peek() {
                Some(b'}') => {
                    self.position += 1;
                    break;
                }
                Some(b'"') => {}
                Some(_) if !entries.is_empty() => {
                    return Err(self.error_token("expected a quoted key or `}`"));
                }
                Some(_) => return Err(self.error_token("expected a quoted key or `}`")),
                None => {
                    return Err(self.error_at(
                        start..start + 1,
                        "unexpected end of file; this `{` is never closed".to_owned(),
                    ));
                }
            }
            let key_start = self.position;
            let key = self.string()?;
            let key_span = key_start..self.position;
            self.skip_trivia()?;
            if self.peek() != Some(b':') {
                return Err(self.error_token("expected `:` after the key"));
            }
            self.position += 1;
            self.skip_trivia()?;
            let value = self.value(depth + 1)?;
            entries.push(Entry {
                key,
                key_span,
                value,
            });
            self.skip_trivia()?;
            match self.peek() {
                Some(b',') => self.position += 1,
                Some(b'}') => {}
                Some(_) => return Err(self.error_token("expected `,` or `}`")),
                None => {
                    return Err(self.error_at(
                        start..start + 1,
                        "unexpected end of file; this `{` is never closed".to_owned(),
                    ));
                }
            }
        }
        check_duplicate_keys(&entries, &mut self.duplicates);
        Ok(Node {
            kind: NodeKind::Object(entries),
            span: start..self.position,
        })
    }

    fn array(&mut self, depth: usize) -> ParseResult<Node> {
        let start = self.position;
        self.position += 1;
        let mut items = Vec::new();
        loop {
            self.skip_trivia()?;
            match self.peek() {
                Some(b']') => {
                    self.position += 1;
                    break;
                }
                None => {
                    return Err(self.error_at(
                        start..start + 1,
                        "unexpected end of file; this `[` is never closed".to_owned(),
                    ));
                }
                Some(_) => {}
            }
            items.push(self.value(depth + 1)?);
            self.skip_trivia()?;
            match self.peek() {
                Some(b',') => self.position += 1,
                Some(b']') => {}
                Some(_) => return Err(self.error_token("expected `,` or `]`")),
                None => {
                    return Err(self.error_at(
                        start..start + 1,
                        "unexpected end of file; this `[` is never closed".to_owned(),
                    ));
                }
            }
        }
        Ok(Node {
            kind: NodeKind::Array(items),
            span: start..self.position,
        })
    }

    fn string(&mut self) -> ParseResult<String> {
        let start = self.position;
        self.position += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.position..];
            let Some(stop) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') else {
                return Err(
                    self.error_at(start..self.bytes.len(), "unterminated string".to_owned())
                );
            };
            out.push_str(&rest[..stop]);
            self.position += stop;
            match self.bytes[self.position] {
                b'"' => {
                    self.position += 1;
                    return Ok(out);
                }
                b'\\' => self.escape(&mut out)?,
                b'\n' => {
                    return Err(self.error_at(
                        start..self.position,
                        "unterminated string (strings cannot span lines)".to_owned(),
                    ));
                }
                _ => return Err(self.error_here("control characters must be escaped in strings")),
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> ParseResult<()> {
        let escape_start = self.position;
        self.position += 1;
        let Some(&code) = self.bytes.get(self.position) else {
            return Err(self.error_here("unterminated string"));
        };
        self.position += 1;
        let ch = match code {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let first = self.hex4(escape_start)?;
                if (0xD800..0xDC00).contains(&first) {
                    if self.bytes.get(self.position..self.position + 2) != Some(b"\\u") {
                        return Err(self.error_at(
                            escape_start..self.position,
                            "unpaired surrogate in \\u escape".to_owned(),
                        ));
                    }
                    self.position += 2;
                    let second = self.hex4(escape_start)?;
                    if !(0xDC00..0xE000).contains(&second) {
                        return Err(self.error_at(
                            escape_start..self.position,
                            "unpaired surrogate in \\u escape".to_owned(),
                        ));
                    }
                    let combined = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                    char::from_u32(combined).unwrap_or('\u{FFFD}')
                } else {
                    char::from_u32(first).ok_or_else(|| {
                        self.error_at(
                            escape_start..self.position,
                            "unpaired surrogate in \\u escape".to_owned(),
                        )
                    })?
                }
            }
            _ => {
                return Err(self.error_at(
                    escape_start..self.position,
                    "invalid escape; JSON allows \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX"
                        .to_owned(),
                ));
            }
        };
        out.push(ch);
        Ok(())
    }

    fn hex4(&mut self, escape_start: usize) -> ParseResult<u32> {
        let digits = self
            .text
            .get(self.position..self.position + 4)
            .filter(|digits| digits.bytes().all(|b| b.is_ascii_hexdigit()));
        let Some(digits) = digits else {
            return Err(self.error_at(
                escape_start..(self.position + 4).min(self.bytes.len()),
                "\\u must be followed by four hex digits".to_owned(),
            ));
        };
        self.position += 4;
        Ok(u32::from_str_radix(digits, 16).unwrap_or(0xFFFD))
    }

    fn number(&mut self) -> ParseResult<Node> {
        let start = self.position;
        if self.peek() == Some(b'-') {
            self.position += 1;
        }
        match self.peek() {
            Some(b'0') => self.position += 1,
            Some(b'1'..=b'9') => self.skip_digits(),
            _ => return Err(self.error_token("invalid number")),
        }
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            is_float = true;
            self.position += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error_token("invalid number: expected digits after `.`"));
            }
            self.skip_digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            is_float = true;
            self.position += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.position += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error_token("invalid number: expected digits in the exponent"));
            }
            self.skip_digits();
        }
        if matches!(self.peek(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_')) {
            return Err(self.error_token("invalid number"));
        }
        let literal = &self.text[start..self.position];
        let number = if is_float {
            None
        } else if let Ok(value) = literal.parse::<u64>() {
            Some(serde_json::Number::from(value))
        } else if let Ok(value) = literal.parse::<i64>() {
            Some(serde_json::Number::from(value))
        } else {
            None
        };
        let number = match number {
            Some(number) => number,
            None => literal
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .ok_or_else(|| {
                    self.error_at(start..self.position, "number out of range".to_owned())
                })?,
        };
        Ok(Node {
            kind: NodeKind::Number(number),
            span: start..self.position,
        })
    }

    fn skip_digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.position += 1;
        }
    }

    fn literal(&mut self, word: &str, kind: NodeKind) -> ParseResult<Node> {
        let start = self.position;
        if self.text[start..].starts_with(word)
            && !matches!(
                self.bytes.get(start + word.len()),
                Some(b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_')
            )
        {
            self.position += word.len();
            Ok(Node {
                kind,
                span: start..self.position,
            })
        } else {
            Err(self.error_token("expected a value (strings must be quoted)"))
        }
    }

    fn skip_trivia(&mut self) -> ParseResult<()> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.position += 1,
                Some(0xEF) if self.position == 0 && self.bytes.starts_with(&[0xEF, 0xBB, 0xBF]) => {
                    self.position += 3;
                }
                Some(b'/') => match self.bytes.get(self.position + 1) {
                    Some(b'/') => {
                        let rest = &self.text[self.position..];
                        self.position += rest.find('\n').unwrap_or(rest.len());
                    }
                    Some(b'*') => {
                        let start = self.position;
                        match self.text[self.position + 2..].find("*/") {
                            Some(end) => self.position += 2 + end + 2,
                            None => {
                                return Err(self.error_at(
                                    start..start + 2,
                                    "unterminated `/*` comment".to_owned(),
                                ));
                            }
                        }
                    }
                    _ => return Err(self.error_token("expected a value")),
                },
                _ => return Ok(()),
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    fn error_at(&self, span: Span, message: String) -> SyntaxError {
        SyntaxError { message, span }
    }

    fn error_here(&self, message: &str) -> SyntaxError {
        let end = (self.position + 1).min(self.bytes.len());
        SyntaxError {
            message: message.to_owned(),
            span: self.position..end.max(self.position),
        }
    }

    /// An error spanning the word or character at the current position, quoting it.
    fn error_token(&self, message: &str) -> SyntaxError {
        let rest = &self.text[self.position..];
        let length = rest
            .char_indices()
            .find(|&(index, c)| {
                index > 0 && !(c.is_alphanumeric() || c == '_' || c == '.' || c == '-')
            })
            .map_or(rest.len(), |(index, _)| index);
        let length = if length == 0 {
            rest.chars().next().map_or(0, char::len_utf8)
        } else {
            length
        };
        let token = &rest[..length.min(40)];
        SyntaxError {
            message: format!("{message}, found `{token}`"),
            span: self.position..self.position + length,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> serde_json::Value {
        let (node, errors) = parse(text);
        assert!(errors.is_empty(), "{errors:?}");
        node.unwrap().to_json()
    }

    fn err(text: &str) -> (String, Span) {
        let (_, errors) = parse(text);
        let error = errors.into_iter().next().expect("an error");
        (error.message, error.span)
    }

    #[test]
    fn accepts_comments_and_trailing_commas() {
        let value = ok("// hi\n{ /* a */ \"a\": [1, 2,], \"b\": {\"c\": null,}, }\n");
        assert_eq!(value, serde_json::json!({"a": [1, 2], "b": {"c": null}}));
    }

    #[test]
    fn decodes_escapes_and_numbers() {
        let value =
            ok(r#"{"s": "a\n\u00e9\ud83d\ude00", "i": -5, "u": 18446744073709551615, "f": 1.5e3}"#);
        assert_eq!(value["s"], "a\n\u{e9}\u{1F600}");
        assert_eq!(value["i"], -5);
        assert_eq!(value["u"], u64::MAX);
        assert_eq!(value["f"], 1500.0);
    }

    #[test]
    fn reports_errors_at_their_place() {
        assert_eq!(
            err("{\"a\": tru}"),
            (
                "expected a value (strings must be quoted), found `tru`".to_owned(),
                6..9
            )
        );
        assert_eq!(err("{\"a\": 1").1, 0..1);
        assert_eq!(err("{\"a\" 1}").0, "expected `:` after the key, found `1`");
        assert_eq!(
            err("").0,
            "the file is empty; write `{}` for a config with every default"
        );
        assert_eq!(
            err("{} x").0,
            "unexpected text after the end of the JSON value"
        );
        assert!(err(&"[".repeat(200)).0.contains("nesting deeper"));
    }

    #[test]
    fn reports_duplicate_keys() {
        let (node, errors) = parse("{\"a\": 1, \"a\": 2}");
        assert!(node.is_some());
        assert_eq!(errors[0].message, "duplicate key `a`");
        assert_eq!(errors[0].span, 9..12);
    }
}
