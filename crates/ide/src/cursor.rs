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

mod json {
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
                        while self.position < self.bytes.len() && self.bytes[self.position] != b'\n'
                        {
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
}

mod yaml {
    use super::*;

    /// One meaningful line: where its key (if any) starts, the key, and whether a value follows.
    struct LineShape {
        /// Column of `- ` when the line is a list item.
        dash: Option<usize>,
        /// Column where the key (or the item's scalar) starts.
        key_column: usize,
        key: Option<String>,
    }

    fn shape(line: &str) -> Option<LineShape> {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let mut rest = &line[indent..];
        if rest.is_empty() || rest.starts_with('#') || rest.starts_with("---") {
            return None;
        }
        let mut dash = None;
        let mut column = indent;
        while let Some(after) = rest
            .strip_prefix("- ")
            .or_else(|| rest.strip_prefix('-').filter(|r| r.is_empty()))
        {
            dash = Some(column);
            let spaces = after.len() - after.trim_start_matches(' ').len();
            column += rest.len() - after.len() + spaces;
            rest = after.trim_start_matches(' ');
        }
        let key = split_key(rest).map(|(key, _)| key);
        Some(LineShape {
            dash,
            key_column: column,
            key,
        })
    }

    /// `key: value` → (`key`, value text); `None` when the text has no key separator.
    fn split_key(text: &str) -> Option<(String, &str)> {
        let mut quote = None;
        for (index, c) in text.char_indices() {
            match (quote, c) {
                (None, '"' | '\'') if index == 0 => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '#') if index > 0 && text[..index].ends_with(' ') => return None,
                (None, ':') => {
                    let after = &text[index + 1..];
                    if after.is_empty() || after.starts_with(' ') || after.starts_with('\t') {
                        let key = text[..index].trim().trim_matches(|c| c == '"' || c == '\'');
                        return Some((key.to_owned(), after));
                    }
                }
                _ => {}
            }
        }
        None
    }

    pub(super) fn context_at(text: &str, offset: usize) -> Option<CursorContext> {
        let line_start = text[..offset].rfind('\n').map_or(0, |index| index + 1);
        let line_end = text[offset..]
            .find('\n')
            .map_or(text.len(), |index| offset + index);
        let before = &text[line_start..offset];
        let whole_line = &text[line_start..line_end];
        if before.trim_start().starts_with('#') {
            return None;
        }

        // The cursor line: its indentation, list dashes, and key or value.
        let indent = before.len() - before.trim_start_matches(' ').len();
        let mut rest = &before[indent..];
        let mut column = indent;
        let mut item_dash = None;
        while let Some(after) = rest.strip_prefix("- ") {
            item_dash = Some(column);
            let spaces = after.len() - after.trim_start_matches(' ').len();
            column += 2 + spaces;
            rest = &after[spaces..];
        }
        let content_start = line_start + column;

        let mut path = parent_path(text, line_start, column, item_dash);
        let own_indent = column;

        if let Some((key, value_text)) = split_key(rest) {
            path.push(PathSegment::Key(key));
            let leading = value_text.len() - value_text.trim_start().len();
            let value_start = offset - value_text.len() + leading;
            let raw = &text[value_start..offset];
            let quoted = raw.starts_with('"') || raw.starts_with('\'');
            let mut value_end = line_end;
            if let Some(comment) = text[value_start..line_end].find(" #") {
                value_end = value_start + comment;
            }
            let full = text[value_start..value_end].trim_end();
            let replace = value_start..value_start + full.len().max(offset - value_start);
            let strip = |s: &str| s.trim_matches(|c| c == '"' || c == '\'').to_owned();
            return Some(CursorContext {
                kind: SlotKind::Value,
                path,
                token: strip(full),
                prefix: strip(raw),
                replace,
                quoted,
                existing_keys: Vec::new(),
                has_separator: false,
                needs_comma: false,
                indent: own_indent,
            });
        }
        if rest.contains(['{', '[', ':']) {
            return None;
        }
        let token_end = content_start
            + whole_line[column..]
                .find(|c: char| !is_key_char(c) && c != '"' && c != '\'')
                .unwrap_or(whole_line.len() - column);
        let quoted = rest.starts_with('"') || rest.starts_with('\'');
        let strip = |s: &str| s.trim_matches(|c| c == '"' || c == '\'').to_owned();
        let token = strip(&text[content_start..token_end.max(offset)]);
        let existing_keys = sibling_keys(text, line_start, own_indent);
        Some(CursorContext {
            kind: SlotKind::Key,
            path,
            token,
            prefix: strip(rest),
            replace: content_start..token_end.max(offset),
            quoted,
            existing_keys,
            has_separator: false,
            needs_comma: false,
            indent: own_indent,
        })
    }

    /// The path of the mapping whose keys sit at `column` on the line starting at `line_start`.
    fn parent_path(
        text: &str,
        line_start: usize,
        column: usize,
        item_dash: Option<usize>,
    ) -> Vec<PathSegment> {
        let mut reversed = Vec::new();
        let mut limit = column;
        if let Some(dash) = item_dash {
            reversed.push(PathSegment::Index(0));
            limit = dash;
        }
        for line in text[..line_start].lines().rev() {
            if limit == 0 {
                break;
            }
            let Some(shape) = shape(line) else { continue };
            if shape.key_column < limit {
                if let Some(key) = shape.key {
                    reversed.push(PathSegment::Key(key));
                }
                limit = shape.key_column;
            }
            if let Some(dash) = shape.dash
                && dash < limit
            {
                reversed.push(PathSegment::Index(0));
                limit = dash;
            }
        }
        reversed.reverse();
        reversed
    }

    /// Keys at `column` in the same mapping as the line starting at `line_start`.
    fn sibling_keys(text: &str, line_start: usize, column: usize) -> Vec<String> {
        let mut keys = Vec::new();
        let mut scan = |lines: &mut dyn Iterator<Item = &str>| {
            for line in lines {
                let Some(shape) = shape(line) else { continue };
                if shape.key_column < column || (shape.dash.is_some() && shape.key_column <= column)
                {
                    break;
                }
                if shape.key_column == column
                    && let Some(key) = shape.key
                {
                    keys.push(key);
                }
            }
        };
        scan(&mut text[..line_start].lines().rev());
        let next_line = text[line_start..]
            .find('\n')
            .map_or(text.len(), |index| line_start + index + 1);
        scan(&mut text[next_line..].lines());
        keys
    }
}

mod toml {
    use super::*;

    fn unquote(part: &str) -> String {
        part.trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_owned()
    }

    fn dotted(text: &str) -> Vec<String> {
        text.split('.').map(unquote).collect()
    }

    /// The table path of the last `[header]` / `[[header]]` before `line_start`.
    fn table_path(text: &str, line_start: usize) -> (Vec<PathSegment>, Option<usize>) {
        for (index, line) in text[..line_start]
            .lines()
            .enumerate()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            let trimmed = line.trim();
            let array = trimmed.starts_with("[[");
            let Some(inner) = trimmed
                .strip_prefix("[[")
                .and_then(|t| t.split("]]").next())
                .or_else(|| trimmed.strip_prefix('[').and_then(|t| t.split(']').next()))
            else {
                continue;
            };
            let mut path: Vec<PathSegment> =
                dotted(inner).into_iter().map(PathSegment::Key).collect();
            if array {
                path.push(PathSegment::Index(0));
            }
            return (path, Some(index));
        }
        (Vec::new(), None)
    }

    pub(super) fn context_at(text: &str, offset: usize) -> Option<CursorContext> {
        let line_start = text[..offset].rfind('\n').map_or(0, |index| index + 1);
        let line_end = text[offset..]
            .find('\n')
            .map_or(text.len(), |index| offset + index);
        let before = &text[line_start..offset];
        let trimmed = before.trim_start();
        if trimmed.starts_with('#') {
            return None;
        }
        let indent = before.len() - trimmed.len();
        let content_start = line_start + indent;

        // Inside a table header: complete the last dotted part from the root.
        if let Some(inner) = trimmed
            .strip_prefix("[[")
            .or_else(|| trimmed.strip_prefix('['))
        {
            if inner.contains(']') {
                return None;
            }
            let mut parts = dotted(inner);
            let prefix = parts.pop().unwrap_or_default();
            let last_start = offset - inner.rsplit('.').next().unwrap_or("").trim_start().len();
            let token_end = offset
                + text[offset..line_end]
                    .find(|c: char| !is_key_char(c) || c == '.')
                    .unwrap_or(line_end - offset);
            return Some(CursorContext {
                kind: SlotKind::Key,
                path: parts.into_iter().map(PathSegment::Key).collect(),
                token: unquote(&text[last_start..token_end]),
                prefix,
                replace: last_start..token_end,
                quoted: false,
                existing_keys: Vec::new(),
                has_separator: false,
                needs_comma: false,
                indent,
            });
        }

        let (base, header_line) = table_path(text, line_start);
        let mut path = base.clone();
        // Walk the line: `a.b = { c = 1, d| }`.
        let mut segment_start = content_start;
        let mut key_parts: Option<Vec<String>> = None;
        let mut depth_paths: Vec<usize> = Vec::new();
        let mut quote: Option<char> = None;
        for (index, c) in before[indent..].char_indices() {
            let at = content_start + index;
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '=') => {
                    key_parts = Some(dotted(&text[segment_start..at]));
                    segment_start = at + 1;
                }
                (None, '{') => {
                    if let Some(parts) = key_parts.take() {
                        depth_paths.push(path.len());
                        path.extend(parts.into_iter().map(PathSegment::Key));
                    }
                    segment_start = at + 1;
                }
                (None, '}') => {
                    if let Some(length) = depth_paths.pop() {
                        path.truncate(length);
                    }
                    key_parts = None;
                    segment_start = at + 1;
                }
                (None, ',') => {
                    key_parts = None;
                    segment_start = at + 1;
                }
                _ => {}
            }
        }
        let segment = &text[segment_start..offset];
        let lead = segment.len() - segment.trim_start().len();
        let token_start = segment_start + lead;
        if let Some(parts) = key_parts {
            path.extend(parts.into_iter().map(PathSegment::Key));
            let raw = &text[token_start..offset];
            let quoted = raw.starts_with('"') || raw.starts_with('\'');
            let rest = &text[offset..line_end];
            let mut end = offset;
            if quoted {
                if let Some(close) = rest.find(['"', '\'']) {
                    end = offset + close + 1;
                }
            } else {
                end += rest
                    .find(|c: char| c.is_whitespace() || c == ',' || c == '}' || c == '#')
                    .unwrap_or(rest.len());
            }
            let strip = |s: &str| s.trim_matches(|c| c == '"' || c == '\'').to_owned();
            return Some(CursorContext {
                kind: SlotKind::Value,
                path,
                token: strip(&text[token_start..end]),
                prefix: strip(raw),
                replace: token_start..end,
                quoted,
                existing_keys: Vec::new(),
                has_separator: false,
                needs_comma: false,
                indent,
            });
        }
        // Writing a (dotted) key.
        let raw = &text[token_start..offset];
        let mut parts = dotted(raw);
        let prefix = parts.pop().unwrap_or_default();
        let last_start = token_start + raw.rfind('.').map_or(0, |dot| dot + 1);
        path.extend(parts.into_iter().map(PathSegment::Key));
        let token_end = offset
            + text[offset..line_end]
                .find(|c: char| !is_key_char(c) || c == '.')
                .unwrap_or(line_end - offset);
        let existing_keys = if depth_paths.is_empty() && path == base {
            table_keys(text, header_line, line_start)
        } else {
            Vec::new()
        };
        Some(CursorContext {
            kind: SlotKind::Key,
            path,
            token: unquote(&text[last_start..token_end]),
            prefix,
            replace: last_start..token_end,
            quoted: false,
            existing_keys,
            has_separator: false,
            needs_comma: false,
            indent,
        })
    }

    /// First-level keys written in the table that starts after line `header_line`.
    fn table_keys(text: &str, header_line: Option<usize>, line_start: usize) -> Vec<String> {
        let current_line = text[..line_start].lines().count();
        let mut keys = Vec::new();
        let first = header_line.map_or(0, |line| line + 1);
        for (index, line) in text.lines().enumerate().skip(first) {
            let trimmed = line.trim_start();
            if trimmed.starts_with('[') {
                break;
            }
            if index == current_line {
                continue;
            }
            if let Some((key, _)) = trimmed.split_once('=')
                && let Some(first_part) = dotted(key).into_iter().next()
            {
                keys.push(first_part);
            }
        }
        // Subtables written as headers count too.
        keys
    }
}

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
