//! Every example config of mirrord's configuration reference (seed document 003), written out
//! under `tests/config/seed/` in each format it appears in (plus JSON), loads without errors and
//! means what the reference says, field by field.

use std::path::{Path, PathBuf};

use mirrord_config::file::{FsMode, ImagePullPolicy, IncomingMode};
use mirrord_config::resolved::{HttpFilter, KubeResource, Target};
use mirrord_config::{Overrides, ResolvedConfig};

fn seed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/config/seed")
}

/// Loads every format of example `name`, checks they have no errors and resolve alike, and
/// returns the resolved config.
fn load(name: &str) -> ResolvedConfig {
    let mut resolved: Vec<(PathBuf, ResolvedConfig)> = Vec::new();
    for extension in ["json", "toml", "yaml"] {
        let path = seed_dir().join(format!("{name}.{extension}"));
        if !path.exists() {
            continue;
        }
        let loaded = mirrord_config::load_file(&path, &Overrides::default()).expect("readable");
        let errors: Vec<_> = loaded.diagnostics.iter().filter(|d| d.is_error()).collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        resolved.push((path, loaded.config.expect("valid config resolves")));
    }
    assert!(
        resolved.len() >= 2,
        "example {name} should exist in at least two formats"
    );
    let (first_path, first) = &resolved[0];
    for (path, config) in &resolved[1..] {
        assert_eq!(
            config,
            first,
            "{} and {} differ",
            path.display(),
            first_path.display()
        );
    }
    resolved.remove(0).1
}

fn pod(name: &str) -> Target {
    Target::Kube {
        resource: KubeResource::Pod,
        name: name.to_owned(),
        container: None,
    }
}

#[test]
fn root_example_read_and_mirror() {
    let config = load("root-read-mirror");
    assert_eq!(config.target, pod("sample-pod-1234"));
    assert_eq!(config.skip_processes, ["ide-debugger", "ide-service"]);
    assert_eq!(config.agent.log_level, "debug");
    assert_eq!(config.agent.ttl, 1024);
    assert_eq!(config.feature.fs.mode, FsMode::Read);
    assert_eq!(config.feature.network.incoming.mode, IncomingMode::Mirror);
}

#[test]
fn root_example_write_steal_custom_image() {
    let config = load("root-write-steal");
    assert_eq!(config.target, pod("sample-pod-1234"));
    assert_eq!(config.accept_invalid_certificates, Some(true));
    assert_eq!(config.agent.log_level, "trace");
    assert_eq!(config.agent.ttl, 1024);
    assert_eq!(config.agent.image, "registry/mirrord-agent-custom:latest");
    assert_eq!(config.agent.image_pull_policy, ImagePullPolicy::Always);
    assert_eq!(config.feature.fs.mode, FsMode::Write);
    assert_eq!(config.feature.network.incoming.mode, IncomingMode::Steal);
}

#[test]
fn feature_example_exclude_secret() {
    let config = load("feature-exclude-secret");
    assert_eq!(config.feature.fs.mode, FsMode::Write);
    assert!(config.feature.capture_error_trace);
    assert!(config.feature.env.enabled);
    assert_eq!(config.feature.env.include, None);
    assert_eq!(config.feature.env.exclude, ["SECRET"]);
}

#[test]
fn feature_example_include_vars_and_txt_files() {
    let config = load("feature-include-txt");
    assert_eq!(
        config.feature.env.include,
        Some(vec!["DATABASE_URL".to_owned(), "PORT".to_owned()])
    );
    assert_eq!(config.feature.fs.mode, FsMode::Write);
    // `include` is the old spelling of `read_write`.
    assert_eq!(config.feature.fs.read_write, ["^.*.txt$"]);
    assert_eq!(config.feature.network.incoming.mode, IncomingMode::Mirror);
    assert!(config.feature.network.outgoing.tcp);
    assert!(config.feature.network.outgoing.udp);
}

#[test]
fn env_examples() {
    assert_eq!(
        load("env-include-all").feature.env.include,
        Some(vec!["*".to_owned()])
    );
    assert_eq!(
        load("env-include-two").feature.env.include,
        Some(vec!["PROJECT".to_owned(), "DATABASE".to_owned()])
    );
    let exclude = load("env-exclude-two");
    assert_eq!(exclude.feature.env.include, None);
    assert_eq!(exclude.feature.env.exclude, ["USER", "SECRET"]);
}

#[test]
fn fs_examples() {
    assert_eq!(load("fs-write").feature.fs.mode, FsMode::Write);
    assert_eq!(load("fs-mode-write").feature.fs.mode, FsMode::Write);
    assert_eq!(load("fs-mode-local").feature.fs.mode, FsMode::Local);
    let patterns = load("fs-patterns").feature.fs;
    assert_eq!(patterns.mode, FsMode::Read);
    assert_eq!(patterns.read_write, ["/var/run"]);
    assert_eq!(patterns.read_only, ["/etc"]);
    assert_eq!(patterns.local, ["/lib"]);
}

#[test]
fn network_example_steal_with_dns_and_tcp() {
    let network = load("network-steal-dns").feature.network;
    assert_eq!(network.incoming.mode, IncomingMode::Steal);
    assert!(network.dns.enabled);
    assert!(network.outgoing.tcp);
    assert!(network.outgoing.udp, "udp keeps its default");
}

#[test]
fn incoming_examples() {
    assert_eq!(
        load("incoming-mirror").feature.network.incoming.mode,
        IncomingMode::Mirror
    );
    let incoming = load("incoming-header-filter").feature.network.incoming;
    assert_eq!(incoming.mode, IncomingMode::Steal);
    assert_eq!(
        incoming.http_filter,
        Some(HttpFilter::Header("Id: token.*".to_owned()))
    );
    // The old header filter applied to ports 80 and 8080 unless told otherwise.
    assert_eq!(incoming.http_filter_ports, Some(vec![80, 8080]));
}

#[test]
fn target_examples() {
    let with_namespace = load("target-namespace");
    assert_eq!(with_namespace.target, pod("hello-world-abcd-1234"));
    assert_eq!(with_namespace.target_namespace.as_deref(), Some("hello"));
    let plain = load("target-path");
    assert_eq!(plain.target, pod("hello-world-abcd-1234"));
    assert_eq!(plain.target_namespace, None);
}

#[test]
fn every_seed_file_is_covered_by_a_test() {
    let covered = [
        "root-read-mirror",
        "root-write-steal",
        "feature-exclude-secret",
        "feature-include-txt",
        "env-include-all",
        "env-include-two",
        "env-exclude-two",
        "fs-write",
        "fs-patterns",
        "fs-mode-local",
        "fs-mode-write",
        "network-steal-dns",
        "incoming-mirror",
        "incoming-header-filter",
        "target-namespace",
        "target-path",
    ];
    for entry in std::fs::read_dir(seed_dir()).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        assert!(
            covered.contains(&stem.as_str()),
            "{} has no assertions",
            path.display()
        );
    }
}
