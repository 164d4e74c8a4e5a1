//! The fallback for kernels without owned nftables tables (before 5.12): redirect rules made with
//! the `iptables` command in the target's network namespace, in a chain named after the agent
//! (`MIRRORD_AGENT_<pid>`, jumped to from `nat PREROUTING`), so that two agents never touch each
//! other's rules. Since the kernel does not remove these with the agent, two things do:
//!
//! - a watchdog, a process of its own (own process group, so that killing the agent's group does not
//!   take it along) that holds the read end of a pipe whose write end only the agent has: when the
//!   agent exits — cleanly, crashing or SIGKILLed — the pipe reads end-of-file and the watchdog
//!   deletes the chain;
//! - a sweep when a chain is created: chains of agents whose process is gone (a watchdog that was
//!   itself killed) are deleted.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The start of every agent's chain name.
pub(crate) const CHAIN_PREFIX: &str = "MIRRORD_AGENT_";

/// This agent's chain and the redirects in it; dropping it removes the chain.
#[derive(Debug)]
pub(crate) struct IptablesRedirects {
    netns: PathBuf,
    chain: String,
    /// Port → the agent's listener port.
    rules: BTreeMap<u16, u16>,
    /// Killed when the chain is removed normally; its stdin is the pipe it watches.
    watchdog: Option<Child>,
}

impl IptablesRedirects {
    /// Creates the chain in the network namespace `netns` (a `/proc/PID/ns/net` path), after
    /// sweeping stale chains, and starts the watchdog.
    pub(crate) fn create(netns: PathBuf) -> io::Result<IptablesRedirects> {
        sweep_stale(&netns);
        let chain = format!("{CHAIN_PREFIX}{}", std::process::id());
        iptables(&netns, &["-t", "nat", "-N", &chain])?;
        let mut this = IptablesRedirects {
            netns,
            chain,
            rules: BTreeMap::new(),
            watchdog: None,
        };
        iptables(
            &this.netns,
            &["-t", "nat", "-I", "PREROUTING", "-j", &this.chain],
        )?;
        this.watchdog = Some(spawn_watchdog(&this.netns, &this.chain)?);
        Ok(this)
    }

    /// The chain's name, as `iptables-save` shows it.
    pub(crate) fn name(&self) -> &str {
        &self.chain
    }

    /// Redirects new TCP connections (SYN) for `port` to `to_port`.
    pub(crate) fn redirect(&mut self, port: u16, to_port: u16) -> io::Result<()> {
        iptables(&self.netns, &rule("-A", &self.chain, port, to_port))?;
        self.rules.insert(port, to_port);
        Ok(())
    }

    /// Removes the redirect of `port` (a missing one is not an error).
    pub(crate) fn remove(&mut self, port: u16) -> io::Result<()> {
        match self.rules.remove(&port) {
            Some(to_port) => {
                iptables(&self.netns, &rule("-D", &self.chain, port, to_port)).map(drop)
            }
            None => Ok(()),
        }
    }

    /// Another agent's chain that already redirects `port`, if any.
    pub(crate) fn redirected_by_another(&self, port: u16) -> io::Result<Option<String>> {
        let rules = iptables(&self.netns, &["-t", "nat", "-S"])?;
        let dport = format!("--dport {port} ");
        Ok(rules.lines().find_map(|line| {
            let chain = line.strip_prefix("-A ")?.split_whitespace().next()?;
            (chain.starts_with(CHAIN_PREFIX) && chain != self.chain && line.contains(&dport))
                .then(|| chain.to_owned())
        }))
    }
}

impl Drop for IptablesRedirects {
    fn drop(&mut self) {
        remove_chain(&self.netns, &self.chain);
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

fn rule(action: &str, chain: &str, port: u16, to_port: u16) -> Vec<String> {
    [
        "-t",
        "nat",
        action,
        chain,
        "-p",
        "tcp",
        "--dport",
        &port.to_string(),
        "--syn",
        "-j",
        "REDIRECT",
        "--to-ports",
        &to_port.to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Runs `iptables -w ARGS` in the network namespace `netns`; its standard output.
fn iptables(netns: &Path, args: &[impl AsRef<std::ffi::OsStr>]) -> io::Result<String> {
    let namespace = std::fs::File::open(netns)?;
    let raw = namespace.as_raw_fd();
    let mut command = Command::new("iptables");
    command
        .arg("-w")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and only calls setns(2), which is
    // async-signal-safe, on a descriptor the child inherited (close-on-exec closes it only at exec).
    unsafe {
        command.pre_exec(move || {
            if libc::setns(raw, libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = command.output().map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("cannot run iptables (is it installed?): {error}"),
        )
    })?;
    drop(namespace);
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "iptables {}: {}",
            args.iter()
                .map(|arg| arg.as_ref().to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Deletes `chain` and the jump to it (each step may already be done).
pub(crate) fn remove_chain(netns: &Path, chain: &str) {
    let _ = iptables(netns, &["-t", "nat", "-D", "PREROUTING", "-j", chain]);
    let _ = iptables(netns, &["-t", "nat", "-F", chain]);
    let _ = iptables(netns, &["-t", "nat", "-X", chain]);
}

/// Deletes the chains of agents that are gone.
fn sweep_stale(netns: &Path) {
    let Ok(rules) = iptables(netns, &["-t", "nat", "-S"]) else {
        return;
    };
    for chain in rules.lines().filter_map(|line| line.strip_prefix("-N ")) {
        let Some(pid) = chain.strip_prefix(CHAIN_PREFIX) else {
            continue;
        };
        if pid
            .parse::<u32>()
            .is_ok_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        {
            tracing::info!(
                chain,
                "removing the redirect chain of an agent that is gone"
            );
            remove_chain(netns, chain);
        }
    }
}

/// Starts `mirrord-agent --iptables-watchdog CHAIN --watch-netns NETNS` with a pipe on its stdin.
fn spawn_watchdog(netns: &Path, chain: &str) -> io::Result<Child> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("--iptables-watchdog")
        .arg(chain)
        .arg("--watch-netns")
        .arg(netns)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0);
    command.spawn()
}

/// The watchdog's whole life: keep the namespace open, wait for end-of-file on stdin (the agent is
/// gone), remove the chain.
pub(crate) fn watchdog(chain: &str, netns: &Path) -> io::Result<()> {
    // Opened at once: the path may disappear with the target, the namespace stays while held.
    let namespace = std::fs::File::open(netns)?;
    let held = PathBuf::from(format!("/proc/self/fd/{}", namespace.as_raw_fd()));
    let mut sink = [0u8; 64];
    loop {
        match io::Read::read(&mut io::stdin(), &mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    remove_chain(&held, chain);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_redirect_only_new_connections_of_the_port() {
        assert_eq!(
            rule("-A", "MIRRORD_AGENT_7", 80, 41000).join(" "),
            "-t nat -A MIRRORD_AGENT_7 -p tcp --dport 80 --syn -j REDIRECT --to-ports 41000"
        );
    }
}
