//! Byte offsets to LSP positions (0-based line, UTF-16 column) and back.

/// Line starts of a text, for converting byte offsets to LSP positions.
///
/// Both directions take time independent of the line's length (a config written on one line is
/// as quick as any other): ASCII text needs nothing more than the line starts, and other text
/// keeps the UTF-16 column of every [`CHECKPOINT_BYTES`]-th byte (rounded to a char boundary), so
/// a conversion counts at most that many bytes.
#[derive(Debug, Clone)]
pub struct LineIndex {
    line_starts: Vec<usize>,
    /// Whether the text is ASCII (then a column is a byte count).
    ascii: bool,
    /// `(byte offset, UTF-16 column)` at char boundaries about [`CHECKPOINT_BYTES`] apart, in
    /// order; empty when the text is ASCII.
    checkpoints: Vec<(usize, u32)>,
}

/// How far apart the checkpoints of non-ASCII text are.
const CHECKPOINT_BYTES: usize = 512;

impl LineIndex {
    /// Indexes `text`.
    pub fn new(text: &str) -> LineIndex {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(offset, _)| offset + 1));
        let mut checkpoints = Vec::new();
        let ascii = text.is_ascii();
        if !ascii {
            let mut column = 0u32;
            let mut next = CHECKPOINT_BYTES;
            for (offset, ch) in text.char_indices() {
                if offset >= next {
                    checkpoints.push((offset, column));
                    next = offset + CHECKPOINT_BYTES;
                }
                if ch == '\n' {
                    column = 0;
                } else {
                    column = column.saturating_add(ch.len_utf16() as u32);
                }
            }
        }
        LineIndex {
            line_starts,
            ascii,
            checkpoints,
        }
    }

    /// The 0-based line and UTF-16 column of byte `offset` in `text` (clamped to the text).
    pub fn position(&self, text: &str, offset: usize) -> (u32, u32) {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let line_start = self.line_starts[line];
        if self.ascii {
            return (to_u32(line), to_u32(offset - line_start));
        }
        // The last checkpoint at or before `offset` on this line, else the line's start.
        let (from, column) = match self
            .checkpoints
            .partition_point(|&(checkpoint, _)| checkpoint <= offset)
            .checked_sub(1)
            .map(|index| self.checkpoints[index])
        {
            Some((checkpoint, column)) if checkpoint >= line_start => (checkpoint, column),
            _ => (line_start, 0),
        };
        let counted: usize = text[from..offset].chars().map(char::len_utf16).sum();
        (to_u32(line), column.saturating_add(to_u32(counted)))
    }

    /// The byte offset of a 0-based line and UTF-16 column (clamped to the line's end).
    pub fn offset(&self, text: &str, line: u32, character: u32) -> usize {
        let Some(&line_start) = self.line_starts.get(line as usize) else {
            return text.len();
        };
        let line_end = self
            .line_starts
            .get(line as usize + 1)
            .map_or(text.len(), |next| next - 1);
        if self.ascii {
            return line_start + (character as usize).min(line_end - line_start);
        }
        // Start from the last checkpoint of this line not past `character`.
        let first = self
            .checkpoints
            .partition_point(|&(checkpoint, _)| checkpoint < line_start);
        let last = self
            .checkpoints
            .partition_point(|&(checkpoint, _)| checkpoint < line_end);
        let on_line = &self.checkpoints[first..last];
        let (from, mut units) = match on_line
            .partition_point(|&(_, column)| column <= character)
            .checked_sub(1)
        {
            Some(index) => on_line[index],
            None => (line_start, 0),
        };
        for (index, ch) in text[from..line_end].char_indices() {
            if units >= character {
                return from + index;
            }
            units += ch.len_utf16() as u32;
        }
        line_end
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

fn to_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_utf16_units() {
        let text = "ab\n\u{1F600}x\n";
        let index = LineIndex::new(text);
        assert_eq!(index.position(text, 0), (0, 0));
        assert_eq!(index.position(text, 3), (1, 0));
        // The emoji is 4 bytes and 2 UTF-16 units.
        assert_eq!(index.position(text, 7), (1, 2));
        assert_eq!(index.offset(text, 1, 2), 7);
        assert_eq!(index.position(text, 999), (2, 0));
    }

    #[test]
    fn long_lines_with_other_scripts_convert_both_ways() {
        let text = format!("x\n{}\u{1F600}é end\n", "ab\u{e9}".repeat(2000));
        let index = LineIndex::new(&text);
        let mut column = 0u32;
        for (offset, ch) in text.char_indices().skip(2) {
            if ch == '\n' {
                break;
            }
            assert_eq!(
                index.position(&text, offset),
                (1, column),
                "at byte {offset}"
            );
            assert_eq!(index.offset(&text, 1, column), offset, "at column {column}");
            column += ch.len_utf16() as u32;
        }
        assert_eq!(index.offset(&text, 1, u32::MAX), text.len() - 1);
    }
}
