//! `docs/ide-protocol.md` must describe the protocol the code implements: the same custom
//! methods, the same error codes, and examples that parse as the Rust request and response types
//! (parameter types reject unknown fields, so a renamed field fails here).

use std::collections::BTreeSet;

use mirrord_ide::errors;
use mirrord_ide::protocol::{
    CustomRequest, EndSession, InitializationOptions, ListTargets, NOTIFICATIONS,
    PatchLaunchConfig, REQUESTS, SessionEventParams, VerifyConfig,
};
use serde::de::DeserializeOwned;

fn document() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ide-protocol.md");
    std::fs::read_to_string(path).expect("docs/ide-protocol.md")
}

/// The `### \`method\`` headings of the section `## {section}`.
fn methods_in(text: &str, section: &str) -> BTreeSet<String> {
    let mut inside = false;
    let mut methods = BTreeSet::new();
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            inside = title.trim() == section;
        } else if inside && let Some(heading) = line.strip_prefix("### `") {
            methods.insert(heading.trim_end_matches('`').to_owned());
        }
    }
    methods
}

/// `(kind, name, json)` for every `<!-- kind: name -->` followed by a ```json block.
fn examples(text: &str) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(marker) = line
            .trim()
            .strip_prefix("<!-- ")
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            continue;
        };
        let Some((kind, name)) = marker.split_once(": ") else {
            continue;
        };
        let opening = lines.next().unwrap_or_default();
        assert_eq!(
            opening.trim(),
            "```json",
            "a JSON block after <!-- {marker} -->"
        );
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|line| line.trim() != "```")
            .collect();
        found.push((kind.to_owned(), name.to_owned(), body.join("\n")));
    }
    found
}

fn parses_as<T: DeserializeOwned>(what: &str, json: &str) {
    if let Err(error) = serde_json::from_str::<T>(json) {
        panic!(
            "the {what} example in docs/ide-protocol.md does not match the code: {error}\n{json}"
        );
    }
}

#[test]
fn the_method_list_matches_the_code() {
    let text = document();
    let documented = methods_in(&text, "Requests");
    let implemented: BTreeSet<String> = REQUESTS.iter().map(|m| (*m).to_owned()).collect();
    assert_eq!(
        documented, implemented,
        "## Requests in docs/ide-protocol.md"
    );
    let documented = methods_in(&text, "Notifications");
    let implemented: BTreeSet<String> = NOTIFICATIONS.iter().map(|m| (*m).to_owned()).collect();
    assert_eq!(
        documented, implemented,
        "## Notifications in docs/ide-protocol.md"
    );
}

#[test]
fn the_error_codes_match_the_code() {
    let text = document();
    let documented: BTreeSet<(i64, String)> = text
        .lines()
        .filter_map(|line| {
            let mut cells = line.strip_prefix("| -")?.split('|');
            let code: i64 = cells.next()?.trim().parse().ok()?;
            Some((-code, cells.next()?.trim().to_owned()))
        })
        .collect();
    let implemented: BTreeSet<(i64, String)> = errors::ALL
        .iter()
        .map(|code| (code.code, code.name.to_owned()))
        .collect();
    assert_eq!(
        documented, implemented,
        "## Error codes in docs/ide-protocol.md"
    );
}

#[test]
fn the_examples_parse_as_the_protocol_types() {
    let text = document();
    let examples = examples(&text);
    let mut covered = BTreeSet::new();
    for (kind, name, json) in &examples {
        let what = format!("{kind} of {name}");
        match (kind.as_str(), name.as_str()) {
            ("params", ListTargets::METHOD) => {
                parses_as::<<ListTargets as CustomRequest>::Params>(&what, json)
            }
            ("result", ListTargets::METHOD) => {
                parses_as::<<ListTargets as CustomRequest>::Result>(&what, json)
            }
            ("params", VerifyConfig::METHOD) => {
                parses_as::<<VerifyConfig as CustomRequest>::Params>(&what, json)
            }
            ("result", VerifyConfig::METHOD) => {
                parses_as::<<VerifyConfig as CustomRequest>::Result>(&what, json)
            }
            ("params", PatchLaunchConfig::METHOD) => {
                parses_as::<<PatchLaunchConfig as CustomRequest>::Params>(&what, json)
            }
            ("result", PatchLaunchConfig::METHOD) => {
                parses_as::<<PatchLaunchConfig as CustomRequest>::Result>(&what, json)
            }
            ("params", EndSession::METHOD) => {
                parses_as::<<EndSession as CustomRequest>::Params>(&what, json)
            }
            ("result", EndSession::METHOD) => {
                parses_as::<<EndSession as CustomRequest>::Result>(&what, json)
            }
            ("params", "mirrord/sessionEvent") => parses_as::<SessionEventParams>(&what, json),
            ("example", "initializationOptions") => parses_as::<InitializationOptions>(&what, json),
            _ => panic!("an example for an unknown method: <!-- {kind}: {name} -->"),
        }
        covered.insert(format!("{kind}: {name}"));
    }
    for method in REQUESTS
        .iter()
        .filter(|method| **method != "mirrord/schema")
    {
        for kind in ["params", "result"] {
            assert!(
                covered.contains(&format!("{kind}: {method}")),
                "no {kind} example for {method}"
            );
        }
    }
    for method in NOTIFICATIONS {
        assert!(
            covered.contains(&format!("params: {method}")),
            "no example for {method}"
        );
    }
}
