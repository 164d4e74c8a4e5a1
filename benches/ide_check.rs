//! In-process figures for the sidecar's language features (no stdio, no client): checking a
//! 200-line config (`mirrord_config::check_str` plus the LSP conversion) and completion. Prints
//! figures and ratios; asserts nothing. The end-to-end figures over stdio, with VS Code's JSON
//! language service measured in the same run, are in `benches/ide_bench.mjs`.
//!
//!   cargo bench -p mirrord-ide --bench ide_check

use std::hint::black_box;
use std::time::{Duration, Instant};

use mirrord_config::Format;
use mirrord_ide::documents::Document;
use mirrord_ide::language::{self, ClientSupport};
use tower_lsp_server::ls_types::Uri;

const ROUNDS: u32 = 300;

/// A 200-line config like `benches/ide_bench.mjs` uses: every section, `fs_patterns` regexes in
/// `read_write`, three mistakes.
fn config(fs_patterns: usize) -> String {
    let mut lines = vec![
        "{".to_owned(),
        r#"  "target": { "path": "deployment/api/container/main", "namespace": "staging" },"#
            .to_owned(),
        r#"  "feature": {"#.to_owned(),
        r#"    "env": { "include": "DB_*;API_*", "override": {"#.to_owned(),
    ];
    let mut index = 0;
    while lines.len() < 120 {
        lines.push(format!(r#"      "VAR_{index}": "value-{index}","#));
        index += 1;
    }
    lines.push(r#"      "LAST": "x""#.to_owned());
    lines.push("    } },".to_owned());
    lines.push(r#"    "fs": { "mode": "read", "read_write": ["#.to_owned());
    for index in 0..fs_patterns {
        lines.push(format!(r#"      "^/data/app-{index}/.*\\.json$","#));
    }
    lines.push(r#"      "^/tmp/x$""#.to_owned());
    lines.push("    ] },".to_owned());
    lines.push(r#"    "network": {"#.to_owned());
    lines.push(r#"      "incoming": { "mode": "stael", "ignore_ports": [9229, 5005], "port_mapping": [[8080, 80]] },"#.to_owned());
    lines.push(r#"      "outgoing": { "tcp": true, "udp": true, "filter": { "local": [":53", "10.0.0.0/8"] } },"#.to_owned());
    lines.push(r#"      "dns": true"#.to_owned());
    lines.push("    }".to_owned());
    lines.push("  },".to_owned());
    lines.push(r#"  "agent": { "ttl": 70000, "log_level": "info", "tolerations": ["#.to_owned());
    while lines.len() < 196 {
        lines.push(
            r#"    { "key": "node-role", "operator": "Exists", "effect": "NoSchedule" },"#
                .to_owned(),
        );
    }
    lines.push(r#"    { "key": "x", "operator": "Exists" }"#.to_owned());
    lines.push("  ] },".to_owned());
    lines.push(r#"  "tagret": "pod/x""#.to_owned());
    lines.push("}".to_owned());
    lines.join("\n")
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time(mut work: impl FnMut()) -> Duration {
    work();
    median(
        (0..ROUNDS)
            .map(|_| {
                let start = Instant::now();
                work();
                start.elapsed()
            })
            .collect(),
    )
}

fn ms(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1000.0)
}

#[allow(clippy::print_stdout, reason = "a benchmark prints its figures")]
fn main() {
    let uri: Uri = "file:///bench/mirrord.json".parse().expect("a URI");
    let text = config(30);
    let without_regexes = config(0);
    println!(
        "mirrord-ide in-process figures ({} lines, {ROUNDS} rounds, medians)",
        text.lines().count()
    );
    let check = time(|| {
        black_box(mirrord_config::check_str(&text, Format::Json));
    });
    let full = time(|| {
        black_box(language::check(&uri, &text, Format::Json));
    });
    let parse = time(|| {
        black_box(mirrord_config::source::parse(&text, Format::Json));
    });
    let no_regex = time(|| {
        black_box(mirrord_config::check_str(&without_regexes, Format::Json));
    });
    println!(
        "check_str (parse + validate + deserialize)   {}  ({:.2}× the 2 ms target)",
        ms(check),
        check.as_secs_f64() / 0.002
    );
    println!("  of which parsing                           {}", ms(parse));
    println!(
        "  the same config without 30 of its fs regexes {} (compiling those: {})",
        ms(no_regex),
        ms(check.saturating_sub(no_regex))
    );
    println!(
        "diagnostics as LSP (check_str + conversion)  {}  ({:.2}× the 2 ms target)",
        ms(full),
        full.as_secs_f64() / 0.002
    );

    let document = Document::new(
        "file:///bench/mirrord.json".to_owned(),
        None,
        "{\n  \"agent\": {},\n  \n}".to_owned(),
        1,
    );
    let offset = document.offset(2, 2);
    let completion = time(|| {
        black_box(language::completion(
            &document,
            offset,
            ClientSupport { snippets: true },
            &mut Vec::new,
        ));
    });
    println!(
        "completion at the root                       {}  ({:.2}× the 5 ms target)",
        ms(completion),
        completion.as_secs_f64() / 0.005
    );
}
