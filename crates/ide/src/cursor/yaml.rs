//! The YAML scanner: the key path from the indentation of the lines above the cursor (block
//! mappings and `- ` list items), and the keys the object already has from its sibling lines.

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
            if shape.key_column < column || (shape.dash.is_some() && shape.key_column <= column) {
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
