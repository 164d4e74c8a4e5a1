//! The sandbox's network: two named network namespaces and two veth pairs, made and removed
//! with `ip`. Host ↔ sandbox is `msbN` ↔ `eth0` (10.241.N.0/24); sandbox ↔ db is `db0` ↔ `eth0`
//! (10.242.N.0/24). Namespaces do not forward, and the host's only route to the db network is an
//! `unreachable` one for the sandbox's lifetime: a program on the host that escapes interception
//! gets `ENETUNREACH`/`EHOSTUNREACH` at once instead of sending pod-only traffic to the host's
//! default gateway.

use std::{
    collections::BTreeSet,
    fs, io,
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
};

use crate::{
    SandboxAddresses, SandboxError,
    addressing::{
        DB_LINK_INTERFACE, POD_INTERFACE, PREFIX_LEN, slot_of_db_network, slot_of_host_interface,
    },
    system::{command_line, output, run_program, spawn_error},
};

/// Where `ip netns` keeps its named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// The prefix of every sandbox namespace name.
pub(crate) const NETNS_PREFIX: &str = "mirrord-sb-";

/// `mirrord-sb-NAME`: where the target, its DNS server and its HTTP service run.
pub(crate) fn netns_name(name: &str) -> String {
    format!("{NETNS_PREFIX}{name}")
}

/// `mirrord-sb-NAME-db`: "another service in the cluster".
pub(crate) fn db_netns_name(name: &str) -> String {
    format!("{NETNS_PREFIX}{name}-db")
}

/// The file that names namespace `netns` (to open for `setns(2)`).
pub(crate) fn netns_path(netns: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(netns)
}

/// The names of every network namespace `ip netns` knows.
pub(crate) fn existing_netns() -> Result<Vec<String>, SandboxError> {
    match fs::read_dir(NETNS_DIR) {
        Ok(entries) => Ok(entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(SandboxError::io(format!("list {NETNS_DIR}"), error)),
    }
}

/// One host interface from `ip -o link show`.
#[derive(Debug, PartialEq, Eq)]
struct HostLink {
    name: String,
    /// The namespace of its veth peer, when `ip` can name it.
    peer_netns: Option<String>,
}

fn parse_links(text: &str) -> Vec<HostLink> {
    text.lines()
        .filter_map(|line| {
            let name = line.split(": ").nth(1)?;
            let name = name.split('@').next()?.to_owned();
            let mut words = line.split_whitespace();
            let peer_netns = words
                .by_ref()
                .find(|word| *word == "link-netns")
                .and_then(|_| words.next())
                .map(str::to_owned);
            Some(HostLink { name, peer_netns })
        })
        .collect()
}

fn host_links() -> Result<Vec<HostLink>, SandboxError> {
    Ok(parse_links(&run_program("ip", ["-o", "link", "show"])?))
}

/// Slots whose host interface exists, whoever made it.
pub(crate) fn host_slots_in_use() -> Result<BTreeSet<u8>, SandboxError> {
    Ok(host_links()?
        .iter()
        .filter_map(|link| slot_of_host_interface(&link.name))
        .collect())
}

/// Runs `commands` with `ip -batch -`, optionally inside namespace `netns`.
fn ip_batch(netns: Option<&str>, commands: &[String]) -> Result<(), SandboxError> {
    let mut command = Command::new("ip");
    if let Some(netns) = netns {
        command.args(["-n", netns]);
    }
    command
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|error| spawn_error(&command, error))?;
    let script = commands.join("\n") + "\n";
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|error| SandboxError::io("write to `ip -batch`", error))?;
    }
    let result = child
        .wait_with_output()
        .map_err(|error| SandboxError::io("wait for `ip -batch`", error))?;
    if result.status.success() {
        Ok(())
    } else {
        Err(SandboxError::CommandFailed {
            command: format!("{} <<< {:?}", command_line(&command), script),
            status: result.status.to_string(),
            stderr: String::from_utf8_lossy(&result.stderr).trim().to_owned(),
        })
    }
}

/// Creates both namespaces and both veth pairs of sandbox `name` in slot `addresses.slot`.
pub(crate) fn create(name: &str, addresses: &SandboxAddresses) -> Result<(), SandboxError> {
    let (netns, db_netns) = (netns_name(name), db_netns_name(name));
    let host_interface = addresses.host_interface();
    let SandboxAddresses {
        host_ip,
        sandbox_ip,
        sandbox_db_side_ip,
        db_ip,
        ..
    } = addresses;
    ip_batch(
        None,
        &[
            format!("route replace {}", pod_only_route(addresses)),
            format!("netns add {netns}"),
            format!("netns add {db_netns}"),
            format!("link add {host_interface} type veth peer name {POD_INTERFACE} netns {netns}"),
            format!("addr add {host_ip}/{PREFIX_LEN} dev {host_interface}"),
            format!("link set {host_interface} up"),
        ],
    )?;
    ip_batch(
        Some(&netns),
        &[
            "link set lo up".to_owned(),
            format!("addr add {sandbox_ip}/{PREFIX_LEN} dev {POD_INTERFACE}"),
            format!("link set {POD_INTERFACE} up"),
            format!("route add default via {host_ip}"),
            format!(
                "link add {DB_LINK_INTERFACE} type veth peer name {POD_INTERFACE} netns {db_netns}"
            ),
            format!("addr add {sandbox_db_side_ip}/{PREFIX_LEN} dev {DB_LINK_INTERFACE}"),
            format!("link set {DB_LINK_INTERFACE} up"),
        ],
    )?;
    ip_batch(
        Some(&db_netns),
        &[
            "link set lo up".to_owned(),
            format!("addr add {db_ip}/{PREFIX_LEN} dev {POD_INTERFACE}"),
            format!("link set {POD_INTERFACE} up"),
            format!("route add default via {sandbox_db_side_ip}"),
        ],
    )
}

/// Deletes the veth pairs and namespaces of sandbox `name`, whatever is left of them. Deleting
/// the links first makes their removal immediate (a deleted namespace frees its interfaces
/// only once the kernel gets round to it).
pub(crate) fn delete(name: &str) -> Result<(), SandboxError> {
    let (netns, db_netns) = (netns_name(name), db_netns_name(name));
    let existing = existing_netns()?;
    for link in host_links()? {
        let ours = link.peer_netns.as_deref() == Some(netns.as_str())
            && slot_of_host_interface(&link.name).is_some();
        if ours {
            delete_link(None, &link.name)?;
        }
    }
    if existing.contains(&netns) {
        delete_link(Some(&netns), DB_LINK_INTERFACE)?;
    }
    for namespace in [db_netns, netns] {
        if existing.contains(&namespace) {
            run_program("ip", ["netns", "del", namespace.as_str()])?;
        }
    }
    Ok(())
}

/// The host's route for the db network of `addresses`' slot: `unreachable 10.242.N.0/24`.
fn pod_only_route(addresses: &SandboxAddresses) -> String {
    format!("unreachable {}/{PREFIX_LEN}", addresses.db_network())
}

/// Deletes the host's `unreachable` route for the db network of `addresses`' slot; fine if it
/// does not exist.
pub(crate) fn delete_pod_only_route(addresses: &SandboxAddresses) -> Result<(), SandboxError> {
    let mut command = Command::new("ip");
    command.args(["route", "del"]);
    command.args(pod_only_route(addresses).split(' '));
    let result = output(&mut command)?;
    let stderr = String::from_utf8_lossy(&result.stderr);
    if result.status.success() || stderr.contains("No such process") {
        Ok(())
    } else {
        Err(SandboxError::CommandFailed {
            command: command_line(&command),
            status: result.status.to_string(),
            stderr: stderr.trim().to_owned(),
        })
    }
}

/// The slots of every `unreachable` route the host has for a sandbox db network (10.242.N.0/24).
pub(crate) fn pod_only_route_slots() -> Result<BTreeSet<u8>, SandboxError> {
    let routes = run_program("ip", ["-4", "route", "show", "type", "unreachable"])?;
    Ok(routes
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter_map(slot_of_db_network)
        .collect())
}

/// Deletes host interface `interface` of a known slot, e.g. one left behind without state.
pub(crate) fn delete_host_interface(interface: &str) -> Result<(), SandboxError> {
    delete_link(None, interface)
}

/// Deletes `interface` (in `netns`, or on the host); fine if it does not exist.
fn delete_link(netns: Option<&str>, interface: &str) -> Result<(), SandboxError> {
    let mut command = Command::new("ip");
    if let Some(netns) = netns {
        command.args(["-n", netns]);
    }
    command.args(["link", "del", interface]);
    let result = output(&mut command)?;
    let stderr = String::from_utf8_lossy(&result.stderr);
    if result.status.success() || stderr.contains("Cannot find device") {
        Ok(())
    } else {
        Err(SandboxError::CommandFailed {
            command: command_line(&command),
            status: result.status.to_string(),
            stderr: stderr.trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_line_link_listings() {
        let text = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n\
                    6: msb3@if2: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN\\    link/ether 36:7c:cb:5f:10:3b brd ff:ff:ff:ff:ff:ff link-netns mirrord-sb-demo\n\
                    7: msb4@if2: <BROADCAST> mtu 1500\\    link/ether 36:7c:cb:5f:10:3c brd ff:ff:ff:ff:ff:ff link-netnsid 3\n";
        assert_eq!(
            parse_links(text),
            [
                HostLink {
                    name: "lo".to_owned(),
                    peer_netns: None
                },
                HostLink {
                    name: "msb3".to_owned(),
                    peer_netns: Some("mirrord-sb-demo".to_owned())
                },
                HostLink {
                    name: "msb4".to_owned(),
                    peer_netns: None
                },
            ]
        );
    }

    #[test]
    fn namespace_names_derive_from_the_sandbox_name() {
        assert_eq!(netns_name("demo"), "mirrord-sb-demo");
        assert_eq!(db_netns_name("demo"), "mirrord-sb-demo-db");
        assert_eq!(
            netns_path("mirrord-sb-demo"),
            PathBuf::from("/run/netns/mirrord-sb-demo")
        );
    }
}
