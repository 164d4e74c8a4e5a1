//! `Sandbox::up` with services that fail: it must report the service's error quickly and leave
//! nothing behind. Needs root, iproute2, util-linux, mount and dnsmasq-base.

use std::{path::Path, process::Command, time::Duration};

use mirrord_sandbox::{Sandbox, SandboxError, UpOptions};

#[test]
fn failing_services_are_reported_and_cleaned_up() {
    let name = format!("fail-{}", std::process::id() % 1_000_000);
    // A "helper" that fails the way `mirrord sandbox serve` reports errors.
    let helper = [
        "/bin/sh",
        "-c",
        "echo 'error: broken helper' >&2; exit 1",
        "sh",
    ]
    .map(Into::into)
    .to_vec();
    let options = UpOptions {
        ready_timeout: Duration::from_secs(10),
        ..UpOptions::new(helper)
    };
    let error = Sandbox::up(&name, &options).unwrap_err();
    let cleanup = Sandbox::down(&name);
    let SandboxError::NotReady {
        problem, waited, ..
    } = &error
    else {
        panic!("unexpected error: {error}");
    };
    assert!(problem.contains("error: broken helper"), "{problem}");
    assert!(*waited < Duration::from_secs(5), "took {waited:?}");
    cleanup.unwrap();
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let netns = String::from_utf8_lossy(&netns.stdout);
    assert!(!netns.contains(&format!("mirrord-sb-{name}")), "{netns}");
    assert!(!Path::new("/run/mirrord/sandbox").join(&name).exists());
    assert_eq!(Sandbox::get(&name).unwrap(), None);
}
