//! Incoming traffic end to end with real parts: a sandbox pod, the real agent attached to it, the
//! real intproxy (`mirrord intproxy`), and in place of the layer a test client that speaks the
//! layer channel and listens like a user's server would. Requests come from this host to the
//! sandbox's address with real HTTP clients (raw sockets and curl).

mod support;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use mirrord_protocol::incoming::{HttpFilter, SubscriptionMode};
use support::{
    Sandbox, echo_server, get, iptables_rules, keep_alive_requests, local_app, nft_ruleset,
    redirect_removed, session, session_with, subscribe,
};

#[test]
fn steal_delivers_connections_to_the_local_app_and_rules_go_with_the_subscription() {
    let sandbox = Sandbox::up("inc-steal");
    assert!(
        get(sandbox.address(), "/before").starts_with("sandbox inc-steal"),
        "the sandbox answers itself first"
    );
    let session = session(&sandbox);
    let (app, seen) = local_app();
    let subscription = subscribe(&session, 80, SubscriptionMode::Steal, app);
    assert_eq!(
        get(sandbox.address(), "/stolen"),
        "local app: GET /stolen\n"
    );
    assert_eq!(
        seen.recv_timeout(Duration::from_secs(5)).unwrap(),
        "GET /stolen"
    );
    assert!(
        nft_ruleset(&sandbox.netns()).contains("mirrord_agent_"),
        "the redirect is in the sandbox's ruleset"
    );
    // The layer going away ends the subscription and removes the rule.
    drop(subscription);
    assert!(
        redirect_removed(&sandbox, 80),
        "{}",
        nft_ruleset(&sandbox.netns())
    );
    assert!(get(sandbox.address(), "/after").starts_with("sandbox inc-steal"));
}

#[test]
fn mirror_keeps_the_target_answering_and_copies_requests() {
    let sandbox = Sandbox::up("inc-mirror");
    let session = session(&sandbox);
    let (app, seen) = local_app();
    let _subscription = subscribe(&session, 80, SubscriptionMode::Mirror, app);
    let bodies = keep_alive_requests(sandbox.address(), &[("/one", &[]), ("/two", &[])]);
    assert!(
        bodies
            .iter()
            .all(|body| body.starts_with("sandbox inc-mirror")),
        "{bodies:?}"
    );
    assert_eq!(
        seen.recv_timeout(Duration::from_secs(5)).unwrap(),
        "GET /one"
    );
    assert_eq!(
        seen.recv_timeout(Duration::from_secs(5)).unwrap(),
        "GET /two"
    );
}

#[test]
fn filtered_steal_routes_each_request_by_its_header_on_one_connection() {
    let sandbox = Sandbox::up("inc-filter");
    let session = session(&sandbox);
    let (app, _seen) = local_app();
    let filter = HttpFilter::Header("^x-mirrord-user: me$".to_owned());
    let _subscription = subscribe(&session, 80, SubscriptionMode::StealHttp(filter), app);
    let mine: &[(&str, &str)] = &[("x-mirrord-user", "me")];
    let bodies = keep_alive_requests(
        sandbox.address(),
        &[
            ("/a", mine),
            ("/b", &[]),
            ("/c", mine),
            ("/d", &[("x-mirrord-user", "someone")]),
        ],
    );
    assert_eq!(bodies[0], "local app: GET /a\n");
    assert!(bodies[1].starts_with("sandbox inc-filter"), "{}", bodies[1]);
    assert_eq!(bodies[2], "local app: GET /c\n");
    assert!(bodies[3].starts_with("sandbox inc-filter"), "{}", bodies[3]);

    // HTTP/2 with prior knowledge, through curl.
    let url = format!("http://{}/h2", sandbox.address());
    let curl = |header: Option<&str>| {
        let mut command = Command::new("curl");
        command.args(["-s", "--max-time", "10", "--http2-prior-knowledge", &url]);
        if let Some(header) = header {
            command.args(["-H", header]);
        }
        String::from_utf8(command.output().unwrap().stdout).unwrap()
    };
    assert_eq!(curl(Some("x-mirrord-user: me")), "local app: GET /h2\n");
    assert!(curl(None).starts_with("sandbox inc-filter"));
}

/// Kills the agent one way while clients send requests, then checks the target answers again
/// within 1 s and no rule is left.
fn check_recovery_after(name: &str, agent_args: &[&str], kill: impl FnOnce(&mut Child)) {
    let sandbox = Sandbox::up(name);
    let mut session = session_with(&sandbox, agent_args);
    let (app, _seen) = local_app();
    let _subscription = subscribe(&session, 80, SubscriptionMode::Steal, app);
    assert_eq!(
        get(sandbox.address(), "/stolen"),
        "local app: GET /stolen\n"
    );
    // Load: clients keep sending requests while the agent is killed.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let address = sandbox.address();
    let load: Vec<_> = (0..4)
        .map(|_| {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut sent = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = std::panic::catch_unwind(|| get(address, "/load"));
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    kill(&mut session.agent.child);
    session.agent.child.wait().unwrap();
    let killed = Instant::now();
    let mut answered_by_sandbox = false;
    while killed.elapsed() < Duration::from_secs(1) {
        if let Ok(body) = std::panic::catch_unwind(|| get(sandbox.address(), "/back"))
            && body.starts_with(&format!("sandbox {name}"))
        {
            answered_by_sandbox = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        answered_by_sandbox,
        "the sandbox's own service did not answer within 1 s of the kill"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent: u32 = load.into_iter().map(|thread| thread.join().unwrap()).sum();
    assert!(sent > 4, "the load ran ({sent} requests)");
    // The port works again; the last of the cleanup (an iptables watchdog deletes the jump first,
    // then the chain) may still be finishing.
    let ours = |rules: String| rules.to_lowercase().contains("mirrord");
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline
        && (ours(nft_ruleset(&sandbox.netns())) || ours(iptables_rules(&sandbox.netns())))
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let ruleset = nft_ruleset(&sandbox.netns());
    assert!(
        !ruleset.to_lowercase().contains("mirrord"),
        "rules left behind: {ruleset}"
    );
    let iptables = iptables_rules(&sandbox.netns());
    assert!(
        !iptables.to_lowercase().contains("mirrord"),
        "rules left behind: {iptables}"
    );
}

#[test]
fn killing_the_agent_gives_the_port_back_within_a_second_and_leaves_no_rule() {
    check_recovery_after("inc-kill", &[], |agent| agent.kill().unwrap());
}

#[test]
fn killing_the_agents_process_group_leaves_no_rule_either() {
    check_recovery_after("inc-killpg", &[], kill_group);
}

fn kill_group(agent: &mut Child) {
    let group = format!("-{}", agent.id());
    let status = Command::new("kill")
        .args(["-KILL", "--", &group])
        .status()
        .unwrap();
    assert!(status.success());
}

// The iptables fallback (kernels without owned nftables tables), forced here.

const IPTABLES: &[&str] = &["--redirect-backend", "iptables"];

#[test]
fn the_iptables_fallback_steals_and_removes_its_rule_with_the_subscription() {
    let sandbox = Sandbox::up("inc-ipt");
    let session = session_with(&sandbox, IPTABLES);
    let (app, _seen) = local_app();
    let subscription = subscribe(&session, 80, SubscriptionMode::Steal, app);
    assert_eq!(
        get(sandbox.address(), "/stolen"),
        "local app: GET /stolen\n"
    );
    let rules = iptables_rules(&sandbox.netns());
    assert!(rules.contains("MIRRORD_AGENT_"), "{rules}");
    assert!(rules.contains("--dport 80"), "{rules}");
    assert!(!nft_ruleset(&sandbox.netns()).contains("mirrord_agent_"));
    drop(subscription);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && iptables_rules(&sandbox.netns()).contains("--dport 80") {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(get(sandbox.address(), "/after").starts_with("sandbox inc-ipt"));
}

#[test]
fn the_iptables_watchdog_removes_the_rules_of_a_killed_agent() {
    check_recovery_after("inc-iptkill", IPTABLES, |agent| agent.kill().unwrap());
}

#[test]
fn the_iptables_watchdog_survives_the_agents_process_group() {
    check_recovery_after("inc-iptkillpg", IPTABLES, kill_group);
}

#[test]
fn stale_iptables_chains_of_dead_agents_are_swept() {
    let sandbox = Sandbox::up("inc-iptsweep");
    let netns = sandbox.netns();
    let iptables = |args: &[&str]| {
        let status = Command::new("ip")
            .args(["netns", "exec", &netns, "iptables", "-w", "-t", "nat"])
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "iptables {args:?}");
    };
    // What an agent and its watchdog, both SIGKILLed, would leave (no process has this pid).
    iptables(&["-N", "MIRRORD_AGENT_4194303"]);
    iptables(&[
        "-A",
        "MIRRORD_AGENT_4194303",
        "-p",
        "tcp",
        "--dport",
        "81",
        "-j",
        "REDIRECT",
        "--to-ports",
        "9",
    ]);
    iptables(&["-I", "PREROUTING", "-j", "MIRRORD_AGENT_4194303"]);
    let session = session_with(&sandbox, IPTABLES);
    let (app, _seen) = local_app();
    let _subscription = subscribe(&session, 80, SubscriptionMode::Steal, app);
    let rules = iptables_rules(&netns);
    assert!(!rules.contains("MIRRORD_AGENT_4194303"), "{rules}");
    assert!(rules.contains("MIRRORD_AGENT_"), "{rules}");
}

#[test]
fn filtered_steal_under_load_routes_every_request_by_its_header() {
    let sandbox = Sandbox::up("inc-load");
    let session = session(&sandbox);
    let (app, _seen) = local_app();
    let filter = HttpFilter::Header("^x-mirrord-user: me$".to_owned());
    let _subscription = subscribe(&session, 80, SubscriptionMode::StealHttp(filter), app);
    const CONNECTIONS: usize = 32;
    const REQUESTS: usize = 10_000;
    let address = sandbox.address();
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|worker| {
            std::thread::spawn(move || {
                let count = REQUESTS / CONNECTIONS + usize::from(worker < REQUESTS % CONNECTIONS);
                let mine: &[(&str, &str)] = &[("x-mirrord-user", "me")];
                let requests: Vec<(String, bool)> = (0..count)
                    .map(|i| (format!("/w{worker}/r{i}"), (worker + i) % 2 == 0))
                    .collect();
                let batch: Vec<(&str, &[(&str, &str)])> = requests
                    .iter()
                    .map(|(path, stolen)| (path.as_str(), if *stolen { mine } else { &[][..] }))
                    .collect();
                let bodies = keep_alive_requests(address, &batch);
                let mut wrong = 0;
                for ((path, stolen), body) in requests.iter().zip(&bodies) {
                    let expected = if *stolen {
                        format!("local app: GET {path}\n")
                    } else {
                        format!("sandbox inc-load: GET {path}\n")
                    };
                    if body != &expected {
                        wrong += 1;
                    }
                }
                (bodies.len(), wrong)
            })
        })
        .collect();
    let (mut answered, mut wrong) = (0, 0);
    for worker in workers {
        let (count, misrouted) = worker.join().expect("a worker failed a request");
        answered += count;
        wrong += misrouted;
    }
    assert_eq!(answered, REQUESTS, "every request is answered");
    assert_eq!(
        wrong, 0,
        "every request is answered by the side its header names"
    );
}

/// Regression: relays wrote to a slow reader inside the loop that also read from it, so an echo
/// server on the other end (which stops reading while its writes are blocked) deadlocked them.
#[test]
fn a_stolen_echo_of_bulk_data_does_not_deadlock() {
    use std::io::{Read, Write};
    let sandbox = Sandbox::up("inc-bulk");
    let session = session(&sandbox);
    let echo_addr = echo_server();
    let _subscription = subscribe(&session, 9000, SubscriptionMode::Steal, echo_addr);
    let address = std::net::SocketAddr::new(sandbox.address().ip(), 9000);
    let stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    const TOTAL: usize = 32 << 20;
    let sender = std::thread::spawn(move || {
        let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        for _ in 0..TOTAL / chunk.len() {
            writer.write_all(&chunk).unwrap();
        }
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut reader = stream;
    let mut received = Vec::with_capacity(TOTAL);
    reader
        .read_to_end(&mut received)
        .expect("the echo comes back without stalling");
    sender.join().unwrap();
    assert_eq!(received.len(), TOTAL);
    assert!(
        received
            .chunks(64 * 1024)
            .all(|chunk| chunk.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8)),
        "bytes arrive intact and in order"
    );
}

/// Regression: unsubscribing deleted the port's nat chain, and with it the kernel's nat hooks in
/// the namespace, so the packets of connections already stolen went out untranslated and the
/// client never saw another byte. A connection stolen before the unsubscription keeps working.
#[test]
fn a_connection_stolen_before_unsubscribing_keeps_working() {
    use std::io::{Read, Write};
    let sandbox = Sandbox::up("inc-unsub");
    let session = session(&sandbox);
    let echo_addr = echo_server();
    let subscription = subscribe(&session, 9001, SubscriptionMode::Steal, echo_addr);
    let address = std::net::SocketAddr::new(sandbox.address().ip(), 9001);
    let mut stream =
        std::net::TcpStream::connect_timeout(&address, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = [0u8; 6];
    stream.write_all(b"before").unwrap();
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"before");

    drop(subscription);
    assert!(redirect_removed(&sandbox, 9001));

    stream.write_all(b"after!").unwrap();
    stream
        .read_exact(&mut answer)
        .expect("the stolen connection still carries bytes after the port is given back");
    assert_eq!(&answer, b"after!");
}

#[test]
fn a_stolen_connection_kept_for_a_handover_that_nobody_takes_is_relayed() {
    let sandbox = Sandbox::up("inc-hand");
    let (app, seen) = local_app();
    // An agent with a descriptor socket keeps the connection's socket for a process on this
    // machine to take (the supervisor does, for Go servers); this client never asks, so the agent
    // relays the connection after its wait, and the request is answered all the same.
    let fd_socket = format!("mirrord-inc-hand-{}", std::process::id());
    let session_with_socket = session_with(&sandbox, &["--fd-socket", &fd_socket]);
    let subscription = subscribe(
        &session_with_socket,
        80,
        SubscriptionMode::StealHandover,
        app,
    );
    assert_eq!(
        keep_alive_requests(sandbox.address(), &[("/untaken", &[]), ("/again", &[])]),
        ["local app: GET /untaken\n", "local app: GET /again\n"]
    );
    assert_eq!(
        seen.recv_timeout(Duration::from_secs(5)).unwrap(),
        "GET /untaken"
    );
    drop(subscription);
    drop(session_with_socket);
    assert!(redirect_removed(&sandbox, 80));
    // Without a descriptor socket the mode is a plain steal.
    let session = session(&sandbox);
    let _subscription = subscribe(&session, 80, SubscriptionMode::StealHandover, app);
    assert_eq!(get(sandbox.address(), "/plain"), "local app: GET /plain\n");
}
