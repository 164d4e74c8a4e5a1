//! `Sandbox::up` with services that fail: it must report the failing service (its error line, or
//! its exit when it dies without one) instead of waiting out the readiness timeout, and leave
//! nothing behind. Needs root and iproute2.

use std::{path::Path, process::Command, time::Duration};

use mirrord_sandbox::{Sandbox, SandboxError, UpOptions};

fn ip(args: &[&str]) -> String {
    let output = Command::new("ip").args(args).output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `up` with `script` as every service and returns the error.
fn up_with_failing_services(name: &str, script: &str) -> SandboxError {
    let helper = ["/bin/sh", "-c", script, "sh"].map(Into::into).to_vec();
    // Long enough that a sandbox reported only at the deadline says "has not started" instead of
    // naming the service that failed.
    let options = UpOptions {
        ready_timeout: Duration::from_secs(10),
        ..UpOptions::new(helper)
    };
    let error = Sandbox::up(name, &options).unwrap_err();
    Sandbox::down(name).unwrap();
    error
}

/// Asserts `up` of `name` left no namespace, state or host route behind.
fn assert_nothing_left(name: &str, routes_before: &str) {
    let netns = ip(&["netns", "list"]);
    assert!(!netns.contains(&format!("mirrord-sb-{name}")), "{netns}");
    assert!(!Path::new("/run/mirrord/sandbox").join(name).exists());
    assert_eq!(Sandbox::get(name).unwrap(), None);
    assert_eq!(
        ip(&["-4", "route", "show", "type", "unreachable"]),
        routes_before
    );
}

#[test]
fn failing_services_are_reported_at_once_and_cleaned_up() {
    let routes_before = ip(&["-4", "route", "show", "type", "unreachable"]);

    // A service that fails the way `mirrord sandbox serve` reports errors.
    let name = format!("fail-{}", std::process::id() % 1_000_000);
    let error = up_with_failing_services(&name, "echo 'error: broken helper' >&2; exit 1");
    let SandboxError::NotReady { problem, logs, .. } = &error else {
        panic!("unexpected error: {error}");
    };
    assert!(
        problem.contains("failed: error: broken helper"),
        "{problem}"
    );
    assert!(logs.contains("error: broken helper"), "{logs}");
    assert_nothing_left(&name, &routes_before);

    // A service that dies without a word: its exit is the news, with the last lines of its log.
    let name = format!("exit-{}", std::process::id() % 1_000_000);
    let error = up_with_failing_services(&name, "echo 'last words'; exit 3");
    let SandboxError::NotReady { problem, logs, .. } = &error else {
        panic!("unexpected error: {error}");
    };
    assert!(
        problem.ends_with("exited (exit status: 3) before it was ready"),
        "{problem}"
    );
    assert!(logs.contains("last words"), "{logs}");
    assert_nothing_left(&name, &routes_before);
}
