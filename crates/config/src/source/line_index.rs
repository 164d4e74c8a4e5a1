//! Byte offsets to LSP positions (0-based line, UTF-16 column) and back.

/// Line starts of a text, for converting byte offsets to LSP positions.
#[derive(Debug, Clone)]
pub struct LineIndex {
    line_starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes `text`.
    pub fn new(text: &str) -> LineIndex {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(offset, _)| offset + 1));
        LineIndex { line_starts }
    }

    /// The 0-based line and UTF-16 column of byte `offset` in `text` (clamped to the text).
    pub fn position(&self, text: &str, offset: usize) -> (u32, u32) {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let line_start = self.line_starts[line];
        let column: usize = text[line_start..offset].chars().map(char::len_utf16).sum();
        (to_u32(line), to_u32(column))
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
        let mut units = 0u32;
        for (index, ch) in text[line_start..line_end].char_indices() {
            if units >= character {
                return line_start + index;
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
}
