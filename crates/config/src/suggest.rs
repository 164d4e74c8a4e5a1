//! "Did you mean …?": the closest known name to a misspelt one.

/// The candidate closest to `word` by edit distance, if it is close enough to be a likely typo
/// (at most a third of the word's length, and at most 3 edits). The first of equally close
/// candidates wins. Candidates whose length alone rules them out cost nothing, and the others stop
/// being compared once they are too far, so a check with many unknown keys stays quick.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    let word: Vec<char> = word.to_lowercase().chars().collect();
    let mut best: Option<(usize, &'a str)> = None;
    let mut candidate_chars = Vec::new();
    let mut rows = Rows::default();
    for candidate in candidates {
        let bound = best.map_or(limit, |(distance, _)| distance.saturating_sub(1));
        candidate_chars.clear();
        candidate_chars.extend(candidate.chars().flat_map(char::to_lowercase));
        if word.len().abs_diff(candidate_chars.len()) > bound {
            continue;
        }
        if let Some(distance) = bounded_distance(&word, &candidate_chars, bound, &mut rows) {
            best = Some((distance, candidate));
            if distance == 0 {
                break;
            }
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions), in chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    bounded_distance(&a, &b, usize::MAX, &mut Rows::default()).unwrap_or(usize::MAX)
}

/// The three rows of the distance table the computation needs, kept between calls.
#[derive(Default)]
struct Rows {
    before_previous: Vec<usize>,
    previous: Vec<usize>,
    current: Vec<usize>,
}

/// The optimal string alignment distance of `a` and `b` if it is at most `bound`.
fn bounded_distance(a: &[char], b: &[char], bound: usize, rows: &mut Rows) -> Option<usize> {
    let width = b.len() + 1;
    for row in [
        &mut rows.before_previous,
        &mut rows.previous,
        &mut rows.current,
    ] {
        row.clear();
        row.resize(width, 0);
    }
    for (j, cell) in rows.previous.iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        rows.current[0] = i;
        let mut row_minimum = i;
        for j in 1..width {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows.previous[j] + 1)
                .min(rows.current[j - 1] + 1)
                .min(rows.previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows.before_previous[j - 2] + 1);
            }
            rows.current[j] = best;
            row_minimum = row_minimum.min(best);
        }
        // Every later row is at least this row's minimum.
        if row_minimum > bound {
            return None;
        }
        std::mem::swap(&mut rows.before_previous, &mut rows.previous);
        std::mem::swap(&mut rows.previous, &mut rows.current);
    }
    let distance = rows.previous[width - 1];
    (distance <= bound).then_some(distance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_close_names_only() {
        let keys = ["feature", "agent", "target", "skip_processes"];
        assert_eq!(closest("fetaure", keys), Some("feature"));
        assert_eq!(closest("agnet", keys), Some("agent"));
        assert_eq!(closest("tagret", keys), Some("target"));
        assert_eq!(closest("skip_process", keys), Some("skip_processes"));
        assert_eq!(closest("banana", keys), None);
        assert_eq!(edit_distance("wirte", "write"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        // The first of equally close candidates wins.
        assert_eq!(closest("agen", ["agent", "agena"]), Some("agent"));
    }
}
