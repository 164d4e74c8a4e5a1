//! The TOML scanner: the key path from the last `[table]` / `[[array]]` header above the cursor
//! and the dotted key on its line.

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
        let mut path: Vec<PathSegment> = dotted(inner).into_iter().map(PathSegment::Key).collect();
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
