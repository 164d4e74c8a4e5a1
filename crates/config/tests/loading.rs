//! Loading behaviour a user sees: diagnostics at the right place, environment overrides and
//! their precedence, and malformed input that never panics.

use std::collections::HashMap;

use mirrord_config::file::{FsMode, IncomingMode};
use mirrord_config::resolved::{KubeResource, Target};
use mirrord_config::{Format, Overrides, Severity, load_str};

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn unknown_key_two_letters_off_names_the_real_one_at_its_place() {
    let text = "{\n  \"feature\": {\n    \"fs\": \"read\",\n    \"netwrok\": {}\n  }\n}\n";
    let loaded = load_str(text, Format::Json, &Overrides::default());
    let diagnostic = &loaded.diagnostics[0];
    assert_eq!(diagnostic.severity, Severity::Error);
    assert!(
        diagnostic.message.contains("did you mean `network`"),
        "{}",
        diagnostic.message
    );
    assert_eq!(
        (
            diagnostic.range.start.line,
            diagnostic.range.start.character
        ),
        (3, 4)
    );
    assert_eq!(
        (diagnostic.range.end.line, diagnostic.range.end.character),
        (3, 13)
    );
    assert_eq!(diagnostic.path, "feature.netwrok");
}

#[test]
fn wrong_enum_value_lists_the_allowed_values_at_its_place() {
    let text = "feature:\n  network:\n    incoming:\n      mode: sneak\n";
    let loaded = load_str(text, Format::Yaml, &Overrides::default());
    let diagnostic = &loaded.diagnostics[0];
    assert!(
        diagnostic.message.contains("`mirror`, `steal`, `off`"),
        "{}",
        diagnostic.message
    );
    assert_eq!(
        (
            diagnostic.range.start.line,
            diagnostic.range.start.character
        ),
        (3, 12)
    );
    assert_eq!(diagnostic.path, "feature.network.incoming.mode");
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let text = "[agent]\nttl = \"x\"\n[feature]\nfs = \"wirte\"\nhostnam = true\n";
    let loaded = load_str(text, Format::Toml, &Overrides::default());
    let paths: Vec<_> = loaded.diagnostics.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["agent.ttl", "feature.fs", "feature.hostnam"]);
    assert!(loaded.config.is_none());
}

#[test]
fn environment_overrides_the_file() {
    let text = r#"{ "target": "pod/from-file", "feature": { "fs": "read", "network": { "incoming": "mirror" } } }"#;
    let (overrides, problems) = Overrides::from_env(env(&[
        ("MIRRORD_IMPERSONATED_TARGET", "deployment/from-env"),
        ("MIRRORD_TARGET_NAMESPACE", "staging"),
        ("MIRRORD_FILE_MODE", "write"),
        ("MIRRORD_AGENT_TCP_STEAL_TRAFFIC", "true"),
        ("MIRRORD_OVERRIDE_ENV_VARS_INCLUDE", "A;B"),
        ("MIRRORD_SKIP_PROCESSES", "bash;sh"),
        ("MIRRORD_REMOTE_DNS", "false"),
        ("MIRRORD_TCP_OUTGOING", "false"),
        ("MIRRORD_UDP_OUTGOING", "true"),
        ("MIRRORD_AGENT_IMAGE", "example/agent:1"),
        ("MIRRORD_AGENT_TTL", "77"),
        ("MIRRORD_AGENT_RUST_LOG", "trace"),
    ]));
    assert!(problems.is_empty(), "{problems:?}");
    let config = load_str(text, Format::Json, &overrides)
        .config
        .expect("valid");
    assert_eq!(
        config.target,
        Target::Kube {
            resource: KubeResource::Deployment,
            name: "from-env".into(),
            container: None
        }
    );
    assert_eq!(config.target_namespace.as_deref(), Some("staging"));
    assert_eq!(config.feature.fs.mode, FsMode::Write);
    assert_eq!(config.feature.network.incoming.mode, IncomingMode::Steal);
    assert_eq!(
        config.feature.env.include,
        Some(vec!["A".to_owned(), "B".to_owned()])
    );
    assert_eq!(config.skip_processes, ["bash", "sh"]);
    assert!(!config.feature.network.dns.enabled);
    assert!(!config.feature.network.outgoing.tcp);
    assert!(config.feature.network.outgoing.udp);
    assert_eq!(config.agent.image, "example/agent:1");
    assert_eq!(config.agent.ttl, 77);
    assert_eq!(config.agent.log_level, "trace");
}

#[test]
fn precedence_is_flag_then_environment_then_file_then_default() {
    let text = r#"{ "feature": { "fs": "local" }, "agent": { "ttl": 5 } }"#;
    let (from_env, _) = Overrides::from_env(env(&[
        ("MIRRORD_FILE_MODE", "read"),
        ("MIRRORD_AGENT_TTL", "6"),
    ]));
    let from_flags = Overrides {
        fs_mode: Some("write".to_owned()),
        ..Overrides::default()
    };

    let file_only = load_str(text, Format::Json, &Overrides::default())
        .config
        .unwrap();
    assert_eq!(
        (file_only.feature.fs.mode, file_only.agent.ttl),
        (FsMode::Local, 5)
    );

    let with_env = load_str(text, Format::Json, &from_env).config.unwrap();
    assert_eq!(
        (with_env.feature.fs.mode, with_env.agent.ttl),
        (FsMode::Read, 6)
    );

    let with_flags = load_str(
        text,
        Format::Json,
        &from_env.clone().overlaid_by(from_flags),
    )
    .config
    .unwrap();
    assert_eq!(
        (with_flags.feature.fs.mode, with_flags.agent.ttl),
        (FsMode::Write, 6),
        "the flag wins, the env still applies where no flag"
    );

    let defaults = mirrord_config::load_without_file(&Overrides::default())
        .config
        .unwrap();
    assert_eq!(
        (defaults.feature.fs.mode, defaults.agent.ttl),
        (FsMode::Read, 1)
    );
}

#[test]
fn detailed_fs_config_keeps_its_patterns_when_the_mode_is_overridden() {
    let text = r#"{ "feature": { "fs": { "mode": "read", "local": ["^/tmp/"] } } }"#;
    let overrides = Overrides {
        fs_mode: Some("WRITE".to_owned()),
        ..Overrides::default()
    };
    let config = load_str(text, Format::Json, &overrides).config.unwrap();
    assert_eq!(config.feature.fs.mode, FsMode::Write);
    assert_eq!(config.feature.fs.local, ["^/tmp/"]);
}

#[test]
fn bad_override_values_are_clear_errors() {
    let (overrides, problems) = Overrides::from_env(env(&[("MIRRORD_REMOTE_DNS", "maybe")]));
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].message.contains("MIRRORD_REMOTE_DNS"),
        "{}",
        problems[0].message
    );
    assert_eq!(overrides.remote_dns, None);

    let overrides = Overrides {
        target: Some("pods/x".to_owned()),
        fs_mode: Some("readonly".to_owned()),
        agent_ttl: Some("-1".to_owned()),
        ..Overrides::default()
    };
    let loaded = load_str("{}", Format::Json, &overrides);
    assert!(loaded.config.is_none());
    let messages: Vec<_> = loaded
        .diagnostics
        .iter()
        .map(|d| d.message.clone())
        .collect();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(messages[0].contains("invalid target path") && messages[0].contains("pods/x"));
}

#[test]
fn resolved_config_round_trips_for_child_processes() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/config/corpus/valid-complete.json"
    ))
    .unwrap();
    let config = load_str(&text, Format::Json, &Overrides::default())
        .config
        .unwrap();
    let json = config.to_json();
    assert_eq!(
        mirrord_config::ResolvedConfig::from_json(&json).unwrap(),
        config
    );
}

// --- malformed input never panics ------------------------------------------------------------

/// A small deterministic generator (xorshift64*) so failures reproduce.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn load_all_formats(bytes: &[u8]) {
    for format in [Format::Json, Format::Toml, Format::Yaml] {
        let loaded = mirrord_config::load_bytes(bytes, format, &Overrides::default());
        if loaded.config.is_none() {
            assert!(
                loaded.diagnostics.iter().any(|d| d.is_error()),
                "an invalid config must say why"
            );
        }
    }
}

#[test]
fn random_bytes_give_diagnostics_not_panics() {
    let mut random = Random(0x9E37_79B9_7F4A_7C15);
    let alphabet = b"{}[]\":,-0123456789.eE truefalsnl\n\t\\/*#='ab:&*!|>?";
    for round in 0..3000 {
        let length = (random.next() % 200) as usize;
        let bytes: Vec<u8> = (0..length)
            .map(|_| {
                let r = random.next();
                if round % 3 == 0 {
                    r as u8
                } else {
                    alphabet[(r as usize) % alphabet.len()]
                }
            })
            .collect();
        load_all_formats(&bytes);
    }
}

#[test]
fn mutated_valid_configs_give_diagnostics_not_panics() {
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/config/corpus");
    let mut random = Random(42);
    for entry in std::fs::read_dir(corpus).unwrap() {
        let path = entry.unwrap().path();
        let Some(format) = Format::from_path(&path) else {
            continue;
        };
        let original = std::fs::read(&path).unwrap();
        for _ in 0..100 {
            let mut bytes = original.clone();
            for _ in 0..1 + random.next() % 4 {
                if bytes.is_empty() {
                    break;
                }
                let at = (random.next() as usize) % bytes.len();
                match random.next() % 3 {
                    0 => bytes[at] = random.next() as u8,
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, b"{[\",:]}"[(random.next() % 7) as usize]),
                }
            }
            let _ = mirrord_config::load_bytes(&bytes, format, &Overrides::default());
        }
    }
}

#[test]
fn deep_nesting_is_refused_in_every_format() {
    let json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let toml = format!("a = {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let yaml = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let nested_objects = format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000));
    for (text, format) in [
        (json, Format::Json),
        (toml, Format::Toml),
        (yaml, Format::Yaml),
        (nested_objects, Format::Json),
    ] {
        let loaded = load_str(&text, format, &Overrides::default());
        assert!(loaded.config.is_none());
        assert!(
            loaded
                .diagnostics
                .iter()
                .any(|d| d.message.contains("nesting") || d.message.contains("recursion")),
            "{format:?}: {:?}",
            loaded.diagnostics
        );
    }
}

#[test]
fn a_ten_megabyte_file_loads_with_diagnostics() {
    let mut text = String::from("{\n  \"feature\": { \"env\": { \"override\": {\n");
    let mut index = 0;
    while text.len() < 10 * 1024 * 1024 {
        text.push_str(&format!(
            "    \"VARIABLE_{index}\": \"{}\",\n",
            "x".repeat(64)
        ));
        index += 1;
    }
    text.push_str("    \"LAST\": 1\n  } } }\n}\n");
    let loaded = load_str(&text, Format::Json, &Overrides::default());
    assert_eq!(
        loaded.diagnostics.len(),
        1,
        "only the non-string value is wrong"
    );
    assert!(loaded.diagnostics[0].path.ends_with("LAST"));
}

#[test]
fn invalid_utf8_is_a_diagnostic_at_the_bad_byte() {
    let bytes = b"{\n  \"target\": \"pod/\xff\"\n}\n";
    let loaded = mirrord_config::load_bytes(bytes, Format::Json, &Overrides::default());
    assert!(loaded.config.is_none());
    let diagnostic = &loaded.diagnostics[0];
    assert!(diagnostic.message.contains("UTF-8"));
    assert_eq!(
        (
            diagnostic.range.start.line,
            diagnostic.range.start.character
        ),
        (1, 17)
    );
}

#[test]
fn whole_numbers_written_as_floats_are_integers_like_json_schema_says() {
    let text = r#"{ "agent": { "ttl": 30.0, "startup_timeout": 1e2 }, "feature": { "network": { "incoming": { "port_mapping": [[80.0, 8080]] } } } }"#;
    let loaded = load_str(text, Format::Json, &Overrides::default());
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let config = loaded.config.unwrap();
    assert_eq!(config.agent.ttl, 30);
    assert_eq!(config.agent.startup_timeout, 100);
    assert_eq!(config.feature.network.incoming.port_mapping, [(80, 8080)]);
    let fractional = load_str(
        r#"{ "agent": { "ttl": 30.5 } }"#,
        Format::Json,
        &Overrides::default(),
    );
    assert!(
        fractional.diagnostics[0]
            .message
            .contains("expected integer"),
        "{:?}",
        fractional.diagnostics
    );
}
