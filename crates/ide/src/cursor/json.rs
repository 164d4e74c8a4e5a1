//! The JSON scanner: tokens up to the cursor (comments and trailing commas tolerated), with a
//! stack of open objects and arrays giving the key path.

use super::*;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open(u8),
    Close,
    Colon,
    Comma,
    /// A string; `terminated` is false when the text ends inside it.
    Str {
        value: String,
        terminated: bool,
    },
    Word(String),
}

struct Lexer<'a> {
    bytes: &'a [u8],
    text: &'a str,
    position: usize,
}

impl<'a> Lexer<'a> {
    fn next(&mut self) -> Option<(Token, Range<usize>)> {
        loop {
            let byte = *self.bytes.get(self.position)?;
            match byte {
                b' ' | b'\t' | b'\r' | b'\n' => self.position += 1,
                b'/' if self.bytes.get(self.position + 1) == Some(&b'/') => {
                    while self.position < self.bytes.len() && self.bytes[self.position] != b'\n' {
                        self.position += 1;
                    }
                }
                b'/' if self.bytes.get(self.position + 1) == Some(&b'*') => {
                    self.position += 2;
                    while self.position < self.bytes.len()
                        && !(self.bytes[self.position] == b'*'
                            && self.bytes.get(self.position + 1) == Some(&b'/'))
                    {
                        self.position += 1;
                    }
                    self.position = (self.position + 2).min(self.bytes.len());
                }
                _ => break,
            }
        }
        let start = self.position;
        let byte = self.bytes[start];
        let token = match byte {
            b'{' | b'[' => {
                self.position += 1;
                Token::Open(byte)
            }
            b'}' | b']' => {
                self.position += 1;
                Token::Close
            }
            b':' => {
                self.position += 1;
                Token::Colon
            }
            b',' => {
                self.position += 1;
                Token::Comma
            }
            b'"' => {
                self.position += 1;
                let mut value = String::new();
                let mut terminated = false;
                while self.position < self.bytes.len() {
                    let c = self.text[self.position..].chars().next().unwrap_or('\0');
                    match c {
                        '"' => {
                            self.position += 1;
                            terminated = true;
                            break;
                        }
                        // A string never spans lines: an unterminated one ends at the newline.
                        '\n' => break,
                        '\\' => {
                            self.position += 1;
                            if let Some(escaped) = self.text[self.position..].chars().next() {
                                value.push(match escaped {
                                    'n' => '\n',
                                    't' => '\t',
                                    other => other,
                                });
                                self.position += escaped.len_utf8();
                            }
                        }
                        other => {
                            value.push(other);
                            self.position += other.len_utf8();
                        }
                    }
                }
                Token::Str { value, terminated }
            }
            _ => {
                while self.position < self.bytes.len()
                    && !matches!(
                        self.bytes[self.position],
                        b' ' | b'\t'
                            | b'\r'
                            | b'\n'
                            | b'{'
                            | b'}'
                            | b'['
                            | b']'
                            | b':'
                            | b','
                            | b'"'
                    )
                {
                    self.position += 1;
                }
                if self.position == start {
                    self.position += 1;
                }
                Token::Word(self.text[start..self.position].to_owned())
            }
        };
        Some((token, start..self.position))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Key,
    Colon,
    Value,
    AfterValue,
}

#[derive(Debug)]
struct Frame {
    is_object: bool,
    /// How the parent reaches this container (none for the root).
    segment: Option<PathSegment>,
    expect: Expect,
    key: Option<String>,
    index: usize,
    keys: Vec<String>,
}

fn path_of(stack: &[Frame]) -> Vec<PathSegment> {
    stack
        .iter()
        .filter_map(|frame| frame.segment.clone())
        .collect()
}

pub(super) fn context_at(text: &str, offset: usize) -> Option<CursorContext> {
    let mut lexer = Lexer {
        bytes: text.as_bytes(),
        text,
        position: 0,
    };
    let mut stack: Vec<Frame> = Vec::new();
    let mut root_done = false;
    let mut under_cursor: Option<(Token, Range<usize>)> = None;
    while let Some((token, span)) = lexer.next() {
        if span.start >= offset {
            break;
        }
        let touches = match &token {
            Token::Str { terminated, .. } => {
                offset < span.end || (!terminated && offset <= span.end)
            }
            Token::Word(_) => offset <= span.end,
            _ => false,
        };
        if touches {
            under_cursor = Some((token, span));
            break;
        }
        apply(&mut stack, &mut root_done, token);
    }
    let frame = stack.last();
    let (kind, path) = match frame {
        None if root_done => return None,
        None => (SlotKind::Value, Vec::new()),
        Some(frame) if frame.is_object => match frame.expect {
            Expect::Key | Expect::AfterValue => (SlotKind::Key, path_of(&stack)),
            Expect::Value => {
                let mut path = path_of(&stack);
                path.push(PathSegment::Key(frame.key.clone().unwrap_or_default()));
                (SlotKind::Value, path)
            }
            Expect::Colon => {
                // Still on the key (`"feat|"` was handled as the token under the cursor).
                return None;
            }
        },
        Some(frame) => {
            let mut path = path_of(&stack);
            path.push(PathSegment::Index(frame.index));
            (SlotKind::Value, path)
        }
    };
    let (token, prefix, replace, quoted) = match &under_cursor {
        Some((Token::Str { value, terminated }, span)) => {
            let inner_start = span.start + 1;
            let inner_end = if *terminated { span.end - 1 } else { span.end };
            let prefix_end = offset.clamp(inner_start, inner_end.max(inner_start));
            (
                value.clone(),
                unescape_prefix(&text[inner_start..prefix_end]),
                span.clone(),
                true,
            )
        }
        Some((Token::Word(word), span)) => (
            word.clone(),
            text[span.start..offset].to_owned(),
            span.clone(),
            false,
        ),
        _ => (String::new(), String::new(), offset..offset, false),
    };
    // Look past the token: a `:` after a key, and the keys that follow in the same object.
    let mut after = Lexer {
        bytes: text.as_bytes(),
        text,
        position: replace.end,
    };
    let mut has_separator = false;
    let mut needs_comma = false;
    let mut existing_keys = frame.map(|frame| frame.keys.clone()).unwrap_or_default();
    if let Some(under) = under_cursor.as_ref().map(|(token, _)| token)
        && let Token::Str { value, .. } = under
        && kind == SlotKind::Key
    {
        existing_keys.retain(|key| key != value);
    }
    let mut depth = 0usize;
    let mut expecting_key = true;
    let mut first = true;
    while let Some((token, _)) = after.next() {
        if first {
            has_separator = token == Token::Colon;
            needs_comma = matches!(token, Token::Str { .. } | Token::Open(_));
            first = false;
        }
        match token {
            Token::Open(_) => depth += 1,
            Token::Close if depth == 0 => break,
            Token::Close => depth -= 1,
            Token::Comma if depth == 0 => expecting_key = true,
            Token::Str { value, .. } if depth == 0 && expecting_key => {
                existing_keys.push(value);
                expecting_key = false;
            }
            _ if depth == 0 => expecting_key = false,
            _ => {}
        }
    }
    Some(CursorContext {
        kind,
        path,
        token,
        prefix,
        replace,
        quoted,
        existing_keys,
        has_separator,
        needs_comma,
        indent: line_indent(text, offset),
    })
}

fn unescape_prefix(raw: &str) -> String {
    raw.replace("\\\"", "\"").replace("\\\\", "\\")
}

fn apply(stack: &mut Vec<Frame>, root_done: &mut bool, token: Token) {
    let Some(frame) = stack.last_mut() else {
        if let Token::Open(bracket) = token {
            stack.push(Frame {
                is_object: bracket == b'{',
                segment: None,
                expect: if bracket == b'{' {
                    Expect::Key
                } else {
                    Expect::Value
                },
                key: None,
                index: 0,
                keys: Vec::new(),
            });
        } else {
            *root_done = true;
        }
        return;
    };
    match token {
        Token::Open(bracket) => {
            let segment = if frame.is_object {
                frame.key.clone().map(PathSegment::Key)
            } else {
                Some(PathSegment::Index(frame.index))
            };
            frame.expect = Expect::AfterValue;
            stack.push(Frame {
                is_object: bracket == b'{',
                segment: Some(segment.unwrap_or(PathSegment::Key(String::new()))),
                expect: if bracket == b'{' {
                    Expect::Key
                } else {
                    Expect::Value
                },
                key: None,
                index: 0,
                keys: Vec::new(),
            });
        }
        Token::Close => {
            stack.pop();
            if stack.is_empty() {
                *root_done = true;
            }
        }
        Token::Colon => {
            if frame.is_object && frame.expect == Expect::Colon {
                frame.expect = Expect::Value;
            }
        }
        Token::Comma => {
            if frame.is_object {
                frame.expect = Expect::Key;
                frame.key = None;
            } else {
                frame.index += 1;
                frame.expect = Expect::Value;
            }
        }
        Token::Str { value, .. } => {
            if frame.is_object && frame.expect == Expect::Key {
                frame.keys.push(value.clone());
                frame.key = Some(value);
                frame.expect = Expect::Colon;
            } else {
                frame.expect = Expect::AfterValue;
            }
        }
        Token::Word(_) => frame.expect = Expect::AfterValue,
    }
}
