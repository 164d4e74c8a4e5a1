//! No key is silently ignored: every leaf of the generated schema (`schema/mirrord-schema.json`)
//! is either used by the code — and then [`USED`] names a test that shows what it does — or marked
//! in the schema as a key mirrord defines that this implementation does not (`x-mirrord-unsupported`:
//! loading warns in `verify-config`, the IDE sidecar's diagnostics and `mirrord exec`), or
//! deprecated (loading warns, and the warning says what it became or that it is ignored).
//!
//! A key added to the config types fails this test until it gets a test or a marking; a test
//! renamed or removed fails it too, since each named test must exist in the repository's sources
//! (a Rust `fn`, a node `test('…')`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Key path → a test that exercises what the key does.
const USED: &[(&str, &str)] = &[
    (
        "target.path",
        "python_sees_the_targets_files_env_dns_and_network",
    ),
    (
        "target.namespace",
        "resolves_every_kind_to_a_ready_pod_and_container",
    ),
    (
        "accept_invalid_certificates",
        "root_example_write_steal_custom_image",
    ),
    (
        "skip_processes",
        "skip_processes_leaves_the_named_program_alone",
    ),
    (
        "skip_build_tools",
        "build_tools_are_skipped_only_when_asked",
    ),
    (
        "skip_extra_build_tools",
        "build_tools_are_skipped_only_when_asked",
    ),
    (
        "kubeconfig",
        "exec_runs_against_a_deployment_through_a_job_and_port_forward",
    ),
    (
        "kube_context",
        "kube_context_picks_the_context_of_the_named_kubeconfig",
    ),
    ("agent.log_level", "customised_job"),
    (
        "agent.json_log",
        "json_log_makes_the_agent_and_the_intproxy_log_json_lines",
    ),
    ("agent.namespace", "customised_job"),
    (
        "agent.image.registry",
        "root_example_write_steal_custom_image",
    ),
    ("agent.image.tag", "root_example_write_steal_custom_image"),
    ("agent.image_pull_policy", "customised_job"),
    ("agent.image_pull_secrets", "customised_job"),
    ("agent.ttl", "customised_job"),
    ("agent.ephemeral", "ephemeral_container"),
    ("agent.communication_timeout", "customised_job"),
    (
        "agent.startup_timeout",
        "an_image_that_cannot_be_pulled_fails_fast_and_cleans_up",
    ),
    (
        "agent.flush_connections",
        "without_flush_connections_existing_connections_keep_reaching_the_pod",
    ),
    ("agent.privileged", "customised_job"),
    ("agent.disabled_capabilities", "customised_job"),
    ("agent.tolerations", "customised_job"),
    ("agent.resources.requests", "customised_job"),
    ("agent.resources.limits", "customised_job"),
    (
        "agent.node_selector",
        "an_unschedulable_agent_fails_with_the_scheduler_message",
    ),
    ("agent.labels", "customised_job"),
    ("agent.annotations", "customised_job"),
    ("agent.service_account", "customised_job"),
    ("agent.dns.timeout", "customised_job"),
    ("agent.dns.attempts", "customised_job"),
    (
        "feature.env.include",
        "env_exclude_include_and_override_select_the_targets_variables",
    ),
    (
        "feature.env.exclude",
        "env_exclude_include_and_override_select_the_targets_variables",
    ),
    (
        "feature.env.override",
        "env_exclude_include_and_override_select_the_targets_variables",
    ),
    (
        "feature.env.unset",
        "environment_precedence_and_layer_variables",
    ),
    ("feature.env.env_file", "parses_env_files"),
    (
        "feature.env.mapping",
        "environment_precedence_and_layer_variables",
    ),
    (
        "feature.fs.mode",
        "fs_read_mode_keeps_writes_local_and_write_mode_sends_them_to_the_target",
    ),
    (
        "feature.fs.read_write",
        "user_lists_come_before_builtins_in_their_order",
    ),
    (
        "feature.fs.read_only",
        "user_lists_come_before_builtins_in_their_order",
    ),
    (
        "feature.fs.local",
        "fs_mode_local_and_a_local_override_keep_paths_on_this_machine",
    ),
    (
        "feature.fs.not_found",
        "user_lists_come_before_builtins_in_their_order",
    ),
    ("feature.fs.mapping", "mapping_rewrites_before_deciding"),
    (
        "feature.fs.readonly_file_buffer",
        "sequential_reads_are_read_ahead_without_moving_the_position_the_process_sees",
    ),
    (
        "feature.fs.native_fds",
        "remote_files_are_the_targets_own_descriptors_unless_native_fds_is_off",
    ),
    ("feature.network.incoming.mode", "python_http_server_steal"),
    (
        "feature.network.incoming.http_filter.header_filter",
        "python_http_server_filtered_steal",
    ),
    (
        "feature.network.incoming.http_filter.path_filter",
        "filters_match_headers_paths_and_methods",
    ),
    (
        "feature.network.incoming.http_filter.method_filter",
        "filters_match_headers_paths_and_methods",
    ),
    (
        "feature.network.incoming.http_filter.all_of",
        "filters_match_headers_paths_and_methods",
    ),
    (
        "feature.network.incoming.http_filter.any_of",
        "filters_match_headers_paths_and_methods",
    ),
    (
        "feature.network.incoming.http_filter.ports",
        "the_mode_and_the_filter_make_the_subscription",
    ),
    (
        "feature.network.incoming.port_mapping",
        "port_mapping_and_listen_ports_choose_the_ports",
    ),
    (
        "feature.network.incoming.listen_ports",
        "port_mapping_and_listen_ports_choose_the_ports",
    ),
    (
        "feature.network.incoming.ignore_localhost",
        "ports_are_chosen_by_the_config",
    ),
    (
        "feature.network.incoming.ignore_ports",
        "ignored_ports_stay_local",
    ),
    (
        "feature.network.incoming.ports",
        "ports_are_chosen_by_the_config",
    ),
    (
        "feature.network.outgoing.tcp",
        "no_outgoing_makes_connections_from_this_machine_so_no_echo_comes_back",
    ),
    (
        "feature.network.outgoing.udp",
        "no_outgoing_makes_connections_from_this_machine_so_no_echo_comes_back",
    ),
    (
        "feature.network.outgoing.ignore_localhost",
        "loopback_reaches_the_targets_localhost_unless_ignore_localhost",
    ),
    (
        "feature.network.outgoing.filter.remote",
        "protocols_can_be_switched_off_and_filtered",
    ),
    (
        "feature.network.outgoing.filter.local",
        "loopback_goes_to_the_target_except_the_sessions_own_ports",
    ),
    (
        "feature.network.outgoing.unix_streams",
        "unix_streams_reach_a_socket_served_inside_the_target_only_when_they_match",
    ),
    (
        "feature.network.dns.enabled",
        "disabled_or_filtered_names_stay_local",
    ),
    (
        "feature.network.dns.filter.remote",
        "disabled_or_filtered_names_stay_local",
    ),
    (
        "feature.network.dns.filter.local",
        "disabled_or_filtered_names_stay_local",
    ),
    (
        "feature.network.ipv6",
        "ipv6_destinations_stay_local_unless_ipv6_is_on",
    ),
    ("feature.hostname", "the_whoami_example_shows_the_target"),
    (
        "feature.copy_target.enabled",
        "copy_target_runs_against_a_copy_and_leaves_the_original_alone",
    ),
    (
        "feature.copy_target.scale_down",
        "copy_target_scale_down_is_restored_after_kill_9",
    ),
    (
        "feature.copy_target.exclude_containers",
        "copy_keeps_the_spec_without_labels_owner_node_or_excluded_containers",
    ),
    (
        "feature.copy_target.exclude_init_containers",
        "copy_keeps_the_spec_without_labels_owner_node_or_excluded_containers",
    ),
    (
        "internal_proxy.start_idle_timeout",
        "the_agent_exits_soon_after_its_sessions_client_leaves",
    ),
    (
        "internal_proxy.idle_timeout",
        "the_agent_exits_soon_after_its_sessions_client_leaves",
    ),
    (
        "internal_proxy.log_level",
        "json_log_makes_the_agent_and_the_intproxy_log_json_lines",
    ),
    (
        "internal_proxy.log_destination",
        "api_server_dying_mid_session_gives_errnos_not_a_hang",
    ),
    (
        "internal_proxy.json_log",
        "json_log_makes_the_agent_and_the_intproxy_log_json_lines",
    ),
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A schema with `$ref`s to `definitions` followed.
fn resolve<'s>(root: &'s Value, mut schema: &'s Value) -> &'s Value {
    while let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap();
        schema = &root["definitions"][name];
    }
    schema
}

/// `schema` and every branch of its `anyOf`/`oneOf`/`allOf`, recursively.
fn branches<'s>(root: &'s Value, schema: &'s Value) -> Vec<&'s Value> {
    let schema = resolve(root, schema);
    let mut all = vec![schema];
    for combinator in ["anyOf", "oneOf", "allOf"] {
        for branch in schema
            .get(combinator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            all.extend(branches(root, branch));
        }
    }
    all
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marking {
    Unsupported,
    Deprecated,
}

fn marking(root: &Value, schema: &Value) -> Option<Marking> {
    let all = branches(root, schema);
    if all
        .iter()
        .any(|b| b.get("x-mirrord-unsupported") == Some(&Value::Bool(true)))
    {
        Some(Marking::Unsupported)
    } else if all
        .iter()
        .any(|b| b.get("deprecated") == Some(&Value::Bool(true)))
    {
        Some(Marking::Deprecated)
    } else {
        None
    }
}

/// Every key path under `schema`: a marked key ends its walk; keys with object forms are walked
/// into; the rest are leaves. Returns (path, marking) pairs for the leaves and the marked keys.
fn walk(root: &Value, schema: &Value, path: &str, out: &mut Vec<(String, Option<Marking>)>) {
    if !path.is_empty()
        && let Some(marking) = marking(root, schema)
    {
        out.push((path.to_owned(), Some(marking)));
        return;
    }
    let mut properties = Map::new();
    for branch in branches(root, schema) {
        if let Some(own) = branch.get("properties").and_then(Value::as_object) {
            for (key, value) in own {
                properties.insert(key.clone(), value.clone());
            }
        }
    }
    if properties.is_empty() {
        out.push((path.to_owned(), None));
        return;
    }
    for (key, value) in &properties {
        if key == "$schema" {
            continue;
        }
        let child = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        walk(root, value, &child, out);
    }
}

fn schema_keys() -> Vec<(String, Option<Marking>)> {
    let text = std::fs::read_to_string(repo_root().join("schema/mirrord-schema.json")).unwrap();
    let root: Value = serde_json::from_str(&text).unwrap();
    let mut keys = Vec::new();
    walk(&root, &root, "", &mut keys);
    keys
}

/// The text of every source file a test can live in.
fn sources() -> String {
    fn collect(dir: &Path, text: &mut String) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(name.as_str(), "node_modules" | "target" | ".git" | "out") {
                    collect(&path, text);
                }
            } else if [".rs", ".mjs", ".ts", ".kt"]
                .iter()
                .any(|ext| name.ends_with(ext))
                && let Ok(contents) = std::fs::read_to_string(&path)
            {
                text.push_str(&contents);
                text.push('\n');
            }
        }
    }
    let root = repo_root();
    let mut text = String::new();
    for dir in ["crates", "agent", "layer", "tests", "editors"] {
        collect(&root.join(dir), &mut text);
    }
    text
}

#[test]
fn every_key_is_used_by_a_named_test_or_marked_unsupported() {
    let keys = schema_keys();
    assert!(keys.len() > 80, "the walk found too few keys: {keys:?}");
    let used: BTreeSet<&str> = USED.iter().map(|(key, _)| *key).collect();
    let mut problems = Vec::new();
    for (key, marking) in &keys {
        match (marking, used.contains(key.as_str())) {
            (None, false) => problems.push(format!(
                "`{key}` is neither named by a test in USED nor marked `x-mirrord-unsupported`"
            )),
            (Some(marking), true) => problems.push(format!(
                "`{key}` is marked {marking:?} in the schema but USED says a test shows it working"
            )),
            _ => {}
        }
    }
    let walked: BTreeSet<&str> = keys.iter().map(|(key, _)| key.as_str()).collect();
    for key in &used {
        if !walked.contains(key) {
            problems.push(format!(
                "USED names `{key}`, which the schema does not have"
            ));
        }
    }
    let sources = sources();
    for (key, test) in USED {
        let rust = format!("fn {test}(");
        let node = [format!("test('{test}'"), format!("test(\"{test}\"")];
        if !sources.contains(&rust) && !node.iter().any(|n| sources.contains(n.as_str())) {
            problems.push(format!("`{key}`: no test named `{test}` in the sources"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_keys_this_implementation_does_not_support_are_marked() {
    let keys = schema_keys();
    let marking = |wanted: &str| {
        keys.iter()
            .find(|(key, _)| key == wanted)
            .unwrap_or_else(|| panic!("the schema has no `{wanted}`"))
            .1
    };
    for key in [
        "operator",
        "sip_binaries",
        "connect_tcp",
        "connect_agent_name",
        "connect_agent_port",
        "agent.network_interface",
        "feature.capture_error_trace",
    ] {
        assert_eq!(marking(key), Some(Marking::Unsupported), "{key}");
    }
}
