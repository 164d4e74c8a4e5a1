//! Data-driven diagnostics: every file under `tests/config/corpus/` is loaded and its
//! diagnostics compared with the snapshot beside it (`NAME.EXT.expected`). Run with
//! `UPDATE_EXPECT=1` to rewrite the snapshots after an intended change, then review the diff.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use mirrord_config::{Diagnostic, Overrides};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/config/corpus")
}

fn render(valid: bool, diagnostics: &[Diagnostic]) -> String {
    let mut out = format!("valid: {valid}\n");
    for d in diagnostics {
        let (start, end) = (d.range.start, d.range.end);
        writeln!(
            out,
            "{}:{}-{}:{} {} [{}] {}{}",
            start.line,
            start.character,
            end.line,
            end.character,
            d.severity,
            d.path,
            d.message,
            d.replacement
                .as_ref()
                .map(|r| format!(" (replace with {r})"))
                .unwrap_or_default()
        )
        .unwrap();
    }
    out
}

#[test]
fn corpus_matches_snapshots() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext != "expected"))
        .collect();
    entries.sort();
    assert!(
        entries.len() >= 40,
        "the corpus should have at least 40 configs, found {}",
        entries.len()
    );
    let mut failures = Vec::new();
    for path in &entries {
        let loaded = mirrord_config::load_file(path, &Overrides::default())
            .expect("corpus files are readable");
        let actual = render(loaded.is_valid(), &loaded.diagnostics);
        let expected_path = PathBuf::from(format!("{}.expected", path.display()));
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            if update {
                std::fs::write(&expected_path, &actual).unwrap();
            } else {
                failures.push(format!(
                    "{}\n--- expected\n{expected}+++ actual\n{actual}",
                    path.display()
                ));
            }
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        let expect_valid = name.starts_with("valid-") || name.starts_with("warn-");
        assert_eq!(
            loaded.is_valid(),
            expect_valid,
            "{name}: the file name says whether it is valid"
        );
        if name.starts_with("warn-") {
            assert!(
                !loaded.diagnostics.is_empty(),
                "{name} should have warnings"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} snapshot(s) differ (UPDATE_EXPECT=1 to accept):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_format_is_covered_by_valid_and_invalid_cases() {
    for extension in ["json", "toml", "yaml"] {
        for prefix in ["valid-", "err-"] {
            let found = std::fs::read_dir(corpus_dir()).unwrap().any(|entry| {
                let name = entry.unwrap().file_name().into_string().unwrap();
                name.starts_with(prefix) && name.ends_with(&format!(".{extension}"))
            });
            assert!(found, "no {prefix}*.{extension} case in the corpus");
        }
    }
}
