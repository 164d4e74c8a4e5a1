//! `agent.json_log` and `internal_proxy.json_log`: a session started with both writes JSON lines
//! (one object per event, with its level and fields) instead of text, in the agent's log and in
//! the intproxy's (`internal_proxy.log_destination`), and the agent's `--json-log` flag does the
//! same for an agent started alone.
//!
//! Needs root, the sandbox tools and the agent and layer built beside the `mirrord` binary.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{MIRRORD, Sandbox, agent_binary, token};

/// Every non-empty line of `text` is a JSON object with a level and fields; returns how many.
fn json_lines(text: &str, what: &str) -> usize {
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    assert!(!lines.is_empty(), "{what} logged nothing");
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("{what}: not a JSON line ({error}): {line}\n{text}"));
        assert!(
            value.get("level").is_some() && value.get("fields").is_some(),
            "{what}: a JSON line without level or fields: {line}"
        );
    }
    lines.len()
}

#[test]
fn json_log_makes_the_agent_and_the_intproxy_log_json_lines() {
    let pod = Sandbox::up(&format!("og-json-{:05}", std::process::id() % 100_000));
    let dir = std::env::temp_dir().join(format!("mirrord-json-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let intproxy_log = dir.join("intproxy.log");
    let config = dir.join("mirrord.json");
    std::fs::write(
        &config,
        serde_json::json!({
            "agent": { "json_log": true, "log_level": "debug" },
            "internal_proxy": {
                "json_log": true,
                "log_level": "debug",
                "log_destination": intproxy_log,
            },
        })
        .to_string(),
    )
    .unwrap();
    let output = Command::new(MIRRORD)
        .args(["exec", "--target", &format!("sandbox/{}", pod.name)])
        .arg("--config-file")
        .arg(&config)
        .args(["--", "cat", "/app/config.yaml"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The intproxy writes its last lines as it exits, after its idle time-out.
    let mut text = String::new();
    for _ in 0..100 {
        text = std::fs::read_to_string(&intproxy_log).unwrap_or_default();
        if text.contains("layer disconnected") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(json_lines(&text, "the intproxy") >= 2, "{text}");
    assert!(
        text.contains("\"layer connected\""),
        "the intproxy's events are in the JSON lines: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);

    // The agent alone, as the session starts it with `agent.json_log`.
    let mut agent = Command::new(agent_binary())
        .args([
            "--target-pid",
            &pod.target_pid().to_string(),
            "--communication-timeout",
            "1",
            "--log-level",
            "debug",
            "--json-log",
        ])
        .env("MIRRORD_AGENT_TOKEN", token().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(agent.stdout.take().unwrap());
    assert!(
        stdout
            .lines()
            .map_while(Result::ok)
            .any(|line| line.starts_with("MIRRORD_AGENT_LISTENING=")),
        "the agent started"
    );
    // With no client it exits after its one-second communication time-out.
    let finished = agent.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&finished.stderr);
    assert!(json_lines(&text, "the agent") >= 1, "{text}");
}
