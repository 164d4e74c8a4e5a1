//! Benchmark of the system-call path (`mirrord-supervisor`), printing ratios measured in one run:
//!
//! 1. an intercepted call that stays local — `openat`+`close` of a local file from a static C
//!    program (`tests/e2e/syscall_bench.c`) — natively, under `mirrord exec` against a sandbox
//!    pod, and under the minimal supervisor (`tests/e2e/continue_only.c`: the same file calls
//!    stopped, one thread answering every call `CONTINUE` unread): the added cost over native and
//!    over that floor, and the floor once more with the program and that thread pinned to one CPU
//!    (pinning: a lever of the floor's own, which mirrord cannot pull without confining the
//!    user's program to one CPU);
//! 2. calls the filter does not name (`pread` of a local file, `getppid`): the added cost over
//!    native, from the fastest chunk of 10,000 calls in each run (what the calls cost when nothing
//!    else ran in between: the filter's few nanoseconds are otherwise lost in a shared machine's
//!    noise), native, mirrord and minimal-supervisor runs alternating five times — under the
//!    minimal supervisor these calls pay only for having a filter at all, which is the floor;
//! 3. a Go program (`tests/e2e/go/probe.go`, static build) reading a 100 MiB file of the pod under
//!    `mirrord exec`, against the same program reading it inside the pod's mount namespace.
//!
//! Run as root: `cargo bench -p mirrord-cli --bench syscall_path` (after `cargo build --release
//! -p mirrord-agent`: the bench runs the release `mirrord`, which looks for the agent beside
//! itself; or point `MIRRORD_AGENT_BIN` at a debug one, which only the Go read depends on). Targets (DESIGN.md §4): ≤ 5 µs added
//! for 1, ≤ 50 ns for 2, ≥ 50 % for 3.

#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use support::{
    MIRRORD, Sandbox,
    e2e::{build_go_probe, build_static_c},
};

/// A file every machine has and the `fs` policy keeps local (system directories).
const LOCAL_FILE: &str = "/usr/lib/os-release";
const OPEN_ROUNDS: &str = "20000";
const READ_ROUNDS: &str = "1000000";
const BIG_FILE: &str = "/app/bench-100mib";

/// Under the build directory, which the sandbox pods see too (each has its own `/tmp`).
fn scratch() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("mirrord-syscall-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn checked(command: &mut Command, what: &str) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{what}: {error}"));
    assert!(
        output.status.success(),
        "{what}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The number after `key: ` in the output.
fn figure(output: &Output, key: &str) -> f64 {
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(": "))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no `{key}` in {text}"))
}

/// Nanoseconds from `read PATH: N bytes in NS ns`.
fn read_ns(output: &Output) -> f64 {
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| {
            line.split(" bytes in ")
                .nth(1)?
                .strip_suffix(" ns")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no read figure in {text}"))
}

fn main() {
    let scratch = scratch();
    let bench = scratch.join("syscall_bench");
    build_static_c(&bench, "syscall_bench.c");
    let continue_only = scratch.join("continue_only");
    build_static_c(&continue_only, "continue_only.c");
    let probe = scratch.join("go-probe-static");
    build_go_probe(&probe, true);

    let sandbox = Sandbox::up(&format!("bench-sc-{:03}", std::process::id() % 1000));
    let target_pid = sandbox.target_pid().to_string();
    let target = format!("sandbox/{}", sandbox.name);
    let under_mirrord = |program: &Path, arguments: &[&str]| -> Output {
        checked(
            Command::new(MIRRORD)
                .args(["exec", "--target", &target, "--"])
                .arg(program)
                .args(arguments),
            "mirrord exec",
        )
    };

    let floor = |arguments: &[&str], what: &str| -> Output {
        checked(
            Command::new(&continue_only).arg(&bench).args(arguments),
            what,
        )
    };
    let pinned_floor = |arguments: &[&str]| -> Output {
        checked(
            Command::new(&continue_only)
                .env("CONTINUE_ONLY_CPU", "0")
                .arg(&bench)
                .args(arguments),
            "minimal supervisor run, pinned",
        )
    };
    let mut open_pinned = Vec::new();

    // 1 and 2: the static C program, three ways, interleaved so load changes hit all three.
    let [mut open, mut read, mut getppid] = [(); 3].map(|()| Three::<Vec<f64>>::default());
    for round in 0..5 {
        // (figures, the program's arguments, the figure it prints, how many runs)
        for (figures, arguments, key, runs) in [
            (
                &mut read,
                ["read", READ_ROUNDS, LOCAL_FILE],
                "min_ns_per_call",
                5,
            ),
            (
                &mut getppid,
                ["getppid", READ_ROUNDS, LOCAL_FILE],
                "min_ns_per_call",
                5,
            ),
            (
                &mut open,
                ["open", OPEN_ROUNDS, LOCAL_FILE],
                "ns_per_call",
                3,
            ),
        ] {
            if round >= runs {
                continue;
            }
            let native = checked(Command::new(&bench).args(arguments), "native run");
            figures.native.push(figure(&native, key));
            figures
                .mirrord
                .push(figure(&under_mirrord(&bench, &arguments), key));
            figures
                .floor
                .push(figure(&floor(&arguments, "minimal supervisor run"), key));
            if arguments[0] == "open" {
                open_pinned.push(figure(&pinned_floor(&arguments), key));
            }
        }
    }
    let [open, read, getppid] = [open.map(median), read.map(fastest), getppid.map(fastest)];
    println!(
        "system-call path, static C program (openat: medians of 3 runs; pread, getppid: fastest chunk of 5 runs):"
    );
    println!(
        "  openat+close of a local file (intercepted, stays local): native {:.2} µs, mirrord {:.2} µs \
         (+{:.2} µs, target ≤ 5 µs; ×{:.2} native); minimal supervisor {:.2} µs (+{:.2} µs: the \
         floor), mirrord ×{:.2} of it ({:+.2} µs over it)",
        open.native / 1e3,
        open.mirrord / 1e3,
        (open.mirrord - open.native) / 1e3,
        open.mirrord / open.native,
        open.floor / 1e3,
        (open.floor - open.native) / 1e3,
        open.mirrord / open.floor,
        (open.mirrord - open.floor) / 1e3,
    );
    let open_pinned = median(open_pinned);
    println!(
        "  the minimal supervisor with the program and its thread pinned to one CPU: {:.2} µs \
         (+{:.2} µs over native)",
        open_pinned / 1e3,
        (open_pinned - open.native) / 1e3,
    );
    for (what, figures) in [("pread of a local file", read), ("getppid", getppid)] {
        println!(
            "  {what} (not intercepted): native {:.1} ns, mirrord {:.1} ns ({:+.1} ns, target ≤ 50 ns; \
             ×{:.3} native); minimal supervisor {:.1} ns ({:+.1} ns: the floor of any filter), \
             mirrord {:+.1} ns over it",
            figures.native,
            figures.mirrord,
            figures.mirrord - figures.native,
            figures.mirrord / figures.native,
            figures.floor,
            figures.floor - figures.native,
            figures.mirrord - figures.floor,
        );
    }

    // 3: 100 MiB from the pod, Go.
    checked(
        Command::new("nsenter")
            .args([
                "--target",
                &target_pid,
                "--mount",
                "--",
                "dd",
                "if=/dev/urandom",
            ])
            .arg(format!("of={BIG_FILE}"))
            .args(["bs=1M", "count=100", "status=none"]),
        "dd in the pod",
    );
    let mut direct = Vec::new();
    let mut through = Vec::new();
    for _ in 0..3 {
        direct.push(read_ns(&checked(
            Command::new("nsenter")
                .args(["--target", &target_pid, "--mount", "--"])
                .arg(&probe)
                .args(["read", BIG_FILE]),
            "Go read inside the pod",
        )));
        through.push(read_ns(&under_mirrord(&probe, &["read", BIG_FILE])));
    }
    let (direct, through) = (median(direct), median(through));
    let mib = 100.0;
    println!(
        "  Go reading 100 MiB of the pod: inside the pod {:.0} MiB/s, mirrord {:.0} MiB/s \
         ({:.0} % of direct, target ≥ 50 %)",
        mib / (direct / 1e9),
        mib / (through / 1e9),
        100.0 * direct / through,
    );
    drop(sandbox);
    let _ = std::fs::remove_dir_all(&scratch);
}

/// One figure natively, under mirrord and under the minimal supervisor.
#[derive(Default)]
struct Three<T = Vec<f64>> {
    native: T,
    mirrord: T,
    floor: T,
}

impl Three {
    fn map(self, reduce: fn(Vec<f64>) -> f64) -> Three<f64> {
        Three {
            native: reduce(self.native),
            mirrord: reduce(self.mirrord),
            floor: reduce(self.floor),
        }
    }
}

fn fastest(values: Vec<f64>) -> f64 {
    values.into_iter().fold(f64::INFINITY, f64::min)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
