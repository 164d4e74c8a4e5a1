//! The sandbox lifecycle: [`Sandbox::up`], [`Sandbox::down`], [`Sandbox::list`] and
//! [`Sandbox::get`], and [`SandboxInfo`], the description of a running sandbox that `up` returns
//! and `sandbox.json` stores.

use std::{
    collections::{BTreeMap, BTreeSet},
    ffi::OsString,
    fs::{self, File},
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use crate::{
    SandboxAddresses, SandboxError, SandboxFile,
    addressing::allocate_slot,
    contents::{self, DNS_LISTEN_IP, SEARCH_DOMAIN},
    network::{self, NETNS_PREFIX, db_netns_name, netns_name, netns_path},
    pod::PodSpec,
    probe,
    state::{SandboxDir, StateRoot, is_announced, read_json, write_json},
    system::{
        self, in_network_namespace, is_alive, kill_and_wait, namespace_id, pids_in_net_namespaces,
    },
    validate_name,
};

/// Where sandbox state lives: one directory per sandbox, plus the lock file.
pub const STATE_ROOT: &str = "/run/mirrord/sandbox";

/// The port of the target's HTTP service.
pub const HTTP_PORT: u16 = 80;

/// The port of the db namespace's TCP and UDP echo services.
pub const ECHO_PORT: u16 = 7;

/// The port of the sandbox's DNS server.
pub const DNS_PORT: u16 = 53;

/// How long `down` waits for killed processes to go.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// Namespace for the sandbox lifecycle functions.
#[derive(Debug)]
pub enum Sandbox {}

/// How [`Sandbox::up`] starts a sandbox.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The program and leading arguments that run one of the sandbox's services when followed by
    /// `http …`, `dns …`, `tcp-echo …` or `udp-echo …`; for the `mirrord` binary,
    /// `[current_exe, "sandbox", "serve"]`. The program must be an absolute path.
    pub helper_command: Vec<OsString>,
    /// How long to wait for every service to answer before giving up and cleaning up.
    pub ready_timeout: Duration,
}

impl UpOptions {
    /// Options with `helper_command` and a 15 second readiness timeout.
    pub fn new(helper_command: Vec<OsString>) -> Self {
        Self {
            helper_command,
            ready_timeout: Duration::from_secs(15),
        }
    }
}

/// The processes a sandbox started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxPids {
    /// The target: the HTTP service in the pod's mount, UTS, PID and network namespaces.
    pub http: u32,
    /// The DNS server (`mirrord sandbox serve dns`), in the sandbox's network namespace.
    pub dns: u32,
    /// The TCP echo service, in the db namespace.
    pub tcp_echo: u32,
    /// The UDP echo service, in the db namespace.
    pub udp_echo: u32,
}

impl SandboxPids {
    fn all(&self) -> [u32; 4] {
        [self.http, self.dns, self.tcp_echo, self.udp_echo]
    }
}

/// A running sandbox, as `up` returns it and `mirrord sandbox up --output json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxInfo {
    /// The sandbox name.
    pub name: String,
    /// The mirrord target that stands for this sandbox's pod, `pid/<target_pid>`.
    pub target: String,
    /// The pid of the target process (the HTTP service): use `/proc/PID/root`, `ns/net`, `environ`.
    pub target_pid: u32,
    /// The address slot `N`.
    pub slot: u8,
    /// The sandbox's network namespace, `mirrord-sb-NAME`.
    pub netns: String,
    /// The db namespace, `mirrord-sb-NAME-db`.
    pub db_netns: String,
    /// The host's end of the host ↔ sandbox veth pair, `msbN`.
    pub host_interface: String,
    /// The host's address on that link, 10.241.N.1.
    pub host_ip: Ipv4Addr,
    /// The sandbox's address, 10.241.N.2, reachable from the host.
    pub sandbox_ip: Ipv4Addr,
    /// The db namespace's address, 10.242.N.2, reachable only from inside the sandbox.
    pub db_ip: Ipv4Addr,
    /// The HTTP service's port on `sandbox_ip`.
    pub http_port: u16,
    /// The port of the TCP and UDP echo services on `db_ip`.
    pub echo_port: u16,
    /// The sandbox's DNS server, as seen from inside the sandbox's network namespace.
    pub dns_server: SocketAddr,
    /// The DNS search domain of the pod.
    pub search_domain: String,
    /// Names the sandbox's DNS server answers, and their addresses.
    pub dns_records: BTreeMap<String, Ipv4Addr>,
    /// The pod's hostname.
    pub hostname: String,
    /// Files that exist only inside the pod, with their contents.
    pub files: Vec<SandboxFile>,
    /// The complete environment of the target process.
    pub env: BTreeMap<String, String>,
    /// Every process the sandbox started.
    pub pids: SandboxPids,
    /// The sandbox's state directory (pid files, logs, `sandbox.json`).
    pub state_dir: PathBuf,
}

impl SandboxInfo {
    /// `http://<sandbox_ip>:<http_port>/`.
    pub fn http_url(&self) -> String {
        format!("http://{}:{}/", self.sandbox_ip, self.http_port)
    }

    /// Whether every process the sandbox started is still alive.
    pub fn is_running(&self) -> bool {
        self.pids.all().into_iter().all(is_alive)
    }
}

/// The sandbox's processes, each with its pid and log file stem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Http,
    Dns,
    TcpEcho,
    UdpEcho,
}

impl Service {
    const ALL: [Service; 4] = [Self::Dns, Self::TcpEcho, Self::UdpEcho, Self::Http];

    fn stem(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Dns => "dns",
            Self::TcpEcho => "tcp-echo",
            Self::UdpEcho => "udp-echo",
        }
    }
}

impl Sandbox {
    /// Creates sandbox `name` and waits until its HTTP, DNS and echo services answer; returns the
    /// existing one if it is already up and healthy (a broken one is rebuilt). Needs root.
    pub fn up(name: &str, options: &UpOptions) -> Result<SandboxInfo, SandboxError> {
        validate_name(name)?;
        system::require_root()?;
        if options.helper_command.is_empty() {
            return Err(SandboxError::NoHelperCommand);
        }
        system::require_programs()?;
        let state = StateRoot::new(STATE_ROOT);
        let _lock = state.lock()?;
        let dir = state.sandbox(name);
        if let Some(info) = read_json::<SandboxInfo>(&dir.info_file())?
            && is_healthy(&info)
        {
            return Ok(info);
        }
        teardown(&state, name)?;
        let slot = free_slot(&state)?;
        let addresses = SandboxAddresses::for_slot(slot);
        let started = Instant::now();
        match build(name, &dir, &addresses, options, started) {
            Ok(info) => Ok(info),
            Err(error) => {
                // Leave nothing half-made behind; the build error is the one worth reporting.
                let _ = teardown(&state, name);
                Err(error)
            }
        }
    }

    /// Stops every process of sandbox `name` (and anything else running in its namespaces),
    /// deletes its namespaces and veth pairs and removes its state. Succeeds if it does not
    /// exist. Needs root.
    pub fn down(name: &str) -> Result<(), SandboxError> {
        validate_name(name)?;
        system::require_root()?;
        system::require_programs()?;
        let state = StateRoot::new(STATE_ROOT);
        let _lock = state.lock()?;
        teardown(&state, name)
    }

    /// Takes down every sandbox, including half-made ones found only by their namespaces.
    /// Returns the names it took down. Needs root.
    pub fn down_all() -> Result<Vec<String>, SandboxError> {
        system::require_root()?;
        system::require_programs()?;
        let state = StateRoot::new(STATE_ROOT);
        let _lock = state.lock()?;
        let mut names: BTreeSet<String> = state.names()?.into_iter().collect();
        names.extend(names_from_netns(&network::existing_netns()?));
        for name in &names {
            teardown(&state, name)?;
        }
        // Routes of sandboxes whose state was lost: no sandbox is left to need them.
        for slot in network::pod_only_route_slots()? {
            network::delete_pod_only_route(&SandboxAddresses::for_slot(slot))?;
        }
        Ok(names.into_iter().collect())
    }

    /// Every sandbox that finished coming up, sorted by name (running or not: see
    /// [`SandboxInfo::is_running`]).
    pub fn list() -> Result<Vec<SandboxInfo>, SandboxError> {
        let state = StateRoot::new(STATE_ROOT);
        let mut infos = Vec::new();
        for name in state.names()? {
            if let Some(info) = read_json::<SandboxInfo>(&state.sandbox(&name).info_file())? {
                infos.push(info);
            }
        }
        Ok(infos)
    }

    /// Sandbox `name`, if it exists.
    pub fn get(name: &str) -> Result<Option<SandboxInfo>, SandboxError> {
        validate_name(name)?;
        read_json(&StateRoot::new(STATE_ROOT).sandbox(name).info_file())
    }
}

/// Sandbox names behind the `mirrord-sb-*` namespaces in `netns` (a `NAME-db` namespace
/// counts only when `NAME`'s own namespace is missing).
fn names_from_netns(netns: &[String]) -> BTreeSet<String> {
    let ours: BTreeSet<&str> = netns
        .iter()
        .filter_map(|namespace| namespace.strip_prefix(NETNS_PREFIX))
        .collect();
    ours.iter()
        .filter(|name| {
            name.strip_suffix("-db")
                .is_none_or(|sandbox| !ours.contains(sandbox))
        })
        .filter(|name| validate_name(name).is_ok())
        .map(|name| (*name).to_owned())
        .collect()
}

/// The lowest slot used neither by a known sandbox nor by an interface on the host.
fn free_slot(state: &StateRoot) -> Result<u8, SandboxError> {
    let mut used = network::host_slots_in_use()?;
    for name in state.names()? {
        if let Ok(Some(info)) = read_json::<SandboxInfo>(&state.sandbox(&name).info_file()) {
            used.insert(info.slot);
        }
    }
    allocate_slot(&used).ok_or(SandboxError::NoFreeSlot)
}

fn build(
    name: &str,
    dir: &SandboxDir,
    addresses: &SandboxAddresses,
    options: &UpOptions,
    started: Instant,
) -> Result<SandboxInfo, SandboxError> {
    dir.create()?;
    write_json(&dir.addresses_file(), addresses)?;
    let files = contents::pod_files(name, addresses);
    let env = contents::pod_env(name);
    let pod = PodSpec {
        hostname: name.to_owned(),
        rootfs: dir.rootfs(),
        etc_layer: dir.etc_layer(),
        files: files.clone(),
        host_mount_namespace: own_namespace("mnt")?,
        host_uts_namespace: own_namespace("uts")?,
    };
    write_json(&dir.pod_spec_file(), &pod)?;
    network::create(name, addresses)?;
    let dns_records = contents::dns_records(addresses);
    let mut children = Vec::new();
    let spawned = Service::ALL.into_iter().try_for_each(|service| {
        let arguments = service_arguments(service, name, dir, &dns_records);
        let service_env = match service {
            Service::Http => env.clone(),
            _ => BTreeMap::from([("PATH".to_owned(), env["PATH"].clone())]),
        };
        let child = spawn_service(name, dir, service, options, arguments, &service_env)?;
        children.push((service, child));
        Ok(())
    });
    let ready = spawned
        .and_then(|()| wait_until_ready(name, dir, addresses, &mut children, options, started));
    // The services outlive this call (and this process); while it lives, reap them when they end.
    for (_, mut child) in children {
        thread::spawn(move || child.wait());
    }
    let pids = ready?;
    let info = SandboxInfo {
        name: name.to_owned(),
        target: format!("pid/{}", pids.http),
        target_pid: pids.http,
        slot: addresses.slot,
        netns: netns_name(name),
        db_netns: db_netns_name(name),
        host_interface: addresses.host_interface(),
        host_ip: addresses.host_ip,
        sandbox_ip: addresses.sandbox_ip,
        db_ip: addresses.db_ip,
        http_port: HTTP_PORT,
        echo_port: ECHO_PORT,
        dns_server: SocketAddr::from((DNS_LISTEN_IP, DNS_PORT)),
        search_domain: SEARCH_DOMAIN.to_owned(),
        dns_records,
        hostname: name.to_owned(),
        files,
        env,
        pids,
        state_dir: dir.path().to_owned(),
    };
    write_json(&dir.info_file(), &info)?;
    Ok(info)
}

/// The identity of this process's namespace of kind `kind` (`mnt`, `uts`, …).
fn own_namespace(kind: &str) -> Result<(u64, u64), SandboxError> {
    let path = Path::new("/proc/self/ns").join(kind);
    namespace_id(&path).ok_or_else(|| {
        SandboxError::io(
            format!("read {}", path.display()),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
    })
}

/// The arguments that follow [`UpOptions::helper_command`] to run `service`.
fn service_arguments(
    service: Service,
    name: &str,
    dir: &SandboxDir,
    dns_records: &BTreeMap<String, Ipv4Addr>,
) -> Vec<OsString> {
    let mut arguments: Vec<OsString> = match service {
        Service::Http => {
            let mut arguments: Vec<OsString> = [
                "http",
                "--port",
                &HTTP_PORT.to_string(),
                "--name",
                name,
                "--pod-spec",
            ]
            .map(OsString::from)
            .to_vec();
            arguments.push(dir.pod_spec_file().into());
            arguments
        }
        Service::TcpEcho | Service::UdpEcho => [service.stem(), "--port", &ECHO_PORT.to_string()]
            .map(OsString::from)
            .to_vec(),
        Service::Dns => {
            let mut arguments: Vec<OsString> = vec![
                "dns".into(),
                "--listen".into(),
                SocketAddr::from((DNS_LISTEN_IP, DNS_PORT))
                    .to_string()
                    .into(),
            ];
            for (record, address) in dns_records {
                arguments.push("--record".into());
                arguments.push(format!("{record}={address}").into());
            }
            arguments
        }
    };
    let mut pid_file = OsString::from("--pid-file=");
    pid_file.push(dir.pid_file(service.stem()));
    arguments.push(pid_file);
    arguments
}

/// Starts `service` in its namespaces: the target in the sandbox's network namespace and a new
/// PID namespace (where it is pid 1 and builds its own mount and UTS namespaces), the DNS server
/// in the sandbox's network namespace, the echo services in the db namespace. Stdin is
/// /dev/null, stdout and stderr go to the service's log, the environment is exactly `env`, and
/// the service starts a session of its own, so it outlives the caller.
fn spawn_service(
    name: &str,
    dir: &SandboxDir,
    service: Service,
    options: &UpOptions,
    arguments: Vec<OsString>,
    env: &BTreeMap<String, String>,
) -> Result<Child, SandboxError> {
    let log_path = dir.log_file(service.stem());
    let log = File::create(&log_path)
        .map_err(|error| SandboxError::io(format!("create {}", log_path.display()), error))?;
    let log_copy = log
        .try_clone()
        .map_err(|error| SandboxError::io(format!("open {}", log_path.display()), error))?;
    let mut command = Command::new(&options.helper_command[0]);
    command
        .args(&options.helper_command[1..])
        .args(arguments)
        .env_clear()
        .envs(env)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_copy);
    let (netns, new_pid_namespace) = match service {
        Service::Http => (netns_name(name), true),
        Service::Dns => (netns_name(name), false),
        Service::TcpEcho | Service::UdpEcho => (db_netns_name(name), false),
    };
    in_network_namespace(&netns_path(&netns), new_pid_namespace, || {
        command
            .spawn()
            .map_err(|error| system::spawn_error(&command, error))
    })
}

/// Waits until every service wrote its pid file and answers: HTTP from the host, and HTTP, DNS,
/// TCP echo and UDP echo from inside the sandbox. Fails at once when a service exits or reports an
/// error.
fn wait_until_ready(
    name: &str,
    dir: &SandboxDir,
    addresses: &SandboxAddresses,
    children: &mut [(Service, Child)],
    options: &UpOptions,
    started: Instant,
) -> Result<SandboxPids, SandboxError> {
    let deadline = started + options.ready_timeout;
    let not_ready = |problem: String| SandboxError::NotReady {
        name: name.to_owned(),
        waited: started.elapsed(),
        problem,
        logs: Service::ALL
            .into_iter()
            .map(|service| (service, log_tail(&dir.log_file(service.stem()))))
            .filter(|(_, tail)| !tail.is_empty())
            .map(|(service, tail)| format!("\n--- {}.log ---\n{tail}", service.stem()))
            .collect(),
    };
    let probe_timeout = Duration::from_millis(500);
    let mut problem;
    loop {
        problem = match check_ready(name, dir, addresses, children, probe_timeout) {
            Ok(pids) => return Ok(pids),
            Err(Readiness::Failed(problem)) => return Err(not_ready(problem)),
            Err(Readiness::NotYet(problem)) => problem,
        };
        if Instant::now() >= deadline {
            return Err(not_ready(problem));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Why a sandbox is not ready (yet).
enum Readiness {
    /// Keep waiting.
    NotYet(String),
    /// A service failed for good.
    Failed(String),
}

fn check_ready(
    name: &str,
    dir: &SandboxDir,
    addresses: &SandboxAddresses,
    children: &mut [(Service, Child)],
    probe_timeout: Duration,
) -> Result<SandboxPids, Readiness> {
    let mut pids = BTreeMap::new();
    for (service, child) in children.iter_mut() {
        let stem = service.stem();
        let log = fs::read_to_string(dir.log_file(stem)).unwrap_or_default();
        if let Some(line) = log.lines().find(|line| is_fatal_log_line(line)) {
            return Err(Readiness::Failed(format!("{stem} failed: {line}")));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Readiness::Failed(format!(
                "{stem} exited ({status}) before it was ready"
            )));
        }
        if !is_announced(&dir.pid_file(stem)) {
            return Err(Readiness::NotYet(format!("{stem} has not started")));
        }
        pids.insert(stem, child.id());
    }
    let pid_of = |service: Service| pids.get(service.stem()).copied().unwrap_or_default();
    let http_address = SocketAddr::from((addresses.sandbox_ip, HTTP_PORT));
    let reply = probe::http_get(http_address, "/healthz", probe_timeout)
        .map_err(|error| Readiness::NotYet(error.to_string()))?;
    let expected = format!("sandbox {name}: GET /healthz\n");
    if reply.body != expected {
        return Err(Readiness::Failed(format!(
            "{http_address} answered {:?} instead of {expected:?}",
            reply.body
        )));
    }
    let echo = SocketAddr::from((addresses.db_ip, ECHO_PORT));
    let dns_name = format!("db.{SEARCH_DOMAIN}");
    let inside = in_network_namespace(&netns_path(&netns_name(name)), false, || {
        Ok(probe_inside(
            echo,
            &dns_name,
            addresses.db_ip,
            probe_timeout,
        ))
    })
    .map_err(|error| Readiness::Failed(error.to_string()))?;
    inside.map_err(|problem| {
        Readiness::NotYet(format!("probe from inside the sandbox: {problem}"))
    })?;
    Ok(SandboxPids {
        http: pid_of(Service::Http),
        dns: pid_of(Service::Dns),
        tcp_echo: pid_of(Service::TcpEcho),
        udp_echo: pid_of(Service::UdpEcho),
    })
}

/// From inside the sandbox's network namespace: HTTP on loopback, both echo services and the DNS
/// server's answer for `dns_name`.
fn probe_inside(
    echo: SocketAddr,
    dns_name: &str,
    dns_expect: Ipv4Addr,
    timeout: Duration,
) -> Result<(), String> {
    let http = SocketAddr::from((Ipv4Addr::LOCALHOST, HTTP_PORT));
    let reply = probe::http_get(http, "/healthz", timeout).map_err(|error| error.to_string())?;
    if reply.status != 200 {
        return Err(format!("http at {http} answered status {}", reply.status));
    }
    probe::tcp_echo(echo, timeout).map_err(|error| error.to_string())?;
    probe::udp_echo(echo, timeout).map_err(|error| error.to_string())?;
    let dns = SocketAddr::from((DNS_LISTEN_IP, DNS_PORT));
    let addresses = probe::resolve_a(dns, dns_name, timeout).map_err(|error| error.to_string())?;
    if addresses.contains(&dns_expect) {
        Ok(())
    } else {
        Err(format!(
            "dns at {dns} resolved {dns_name} to {addresses:?}, not {dns_expect}"
        ))
    }
}

/// The line a failing service (`mirrord sandbox serve …`) prints before exiting.
fn is_fatal_log_line(line: &str) -> bool {
    line.starts_with("error:")
}

/// The last lines of a log file, for error reports.
fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// Whether `info`'s processes all live in the sandbox's namespaces and the target answers HTTP.
fn is_healthy(info: &SandboxInfo) -> bool {
    let netns = namespace_id(&netns_path(&info.netns));
    let db_netns = namespace_id(&netns_path(&info.db_netns));
    let (Some(netns), Some(db_netns)) = (netns, db_netns) else {
        return false;
    };
    let in_namespace = |pid: u32, expected| {
        is_alive(pid)
            && namespace_id(&PathBuf::from(format!("/proc/{pid}/ns/net"))) == Some(expected)
    };
    let processes_ok = in_namespace(info.pids.http, netns)
        && in_namespace(info.pids.dns, netns)
        && in_namespace(info.pids.tcp_echo, db_netns)
        && in_namespace(info.pids.udp_echo, db_netns);
    processes_ok
        && probe::http_get(
            SocketAddr::from((info.sandbox_ip, info.http_port)),
            "/healthz",
            Duration::from_secs(1),
        )
        .is_ok_and(|reply| reply.status == 200)
}

/// Removes everything sandbox `name` may have left: processes in its namespaces, its links and
/// namespaces, its state directory. The caller holds the lock.
fn teardown(state: &StateRoot, name: &str) -> Result<(), SandboxError> {
    let dir = state.sandbox(name);
    let info = read_json::<SandboxInfo>(&dir.info_file()).ok().flatten();
    let addresses = read_json::<SandboxAddresses>(&dir.addresses_file())
        .ok()
        .flatten()
        .or_else(|| {
            info.as_ref()
                .map(|info| SandboxAddresses::for_slot(info.slot))
        });
    let namespaces: Vec<_> = [netns_name(name), db_netns_name(name)]
        .iter()
        .filter_map(|netns| namespace_id(&netns_path(netns)))
        .collect();
    let pids = pids_in_net_namespaces(&namespaces);
    let survivors = kill_and_wait(&pids, KILL_TIMEOUT);
    if !survivors.is_empty() {
        return Err(SandboxError::StillRunning { pids: survivors });
    }
    network::delete(name)?;
    if let Some(info) = info {
        network::delete_host_interface(&info.host_interface)?;
    }
    if let Some(addresses) = addresses {
        network::delete_pod_only_route(&addresses)?;
    }
    dir.remove()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_names_come_from_their_namespaces() {
        let netns = [
            "mirrord-sb-demo",
            "mirrord-sb-demo-db",
            "mirrord-sb-orphan-db",
            "mirrord-sb-x-db",
            "mirrord-sb-x-db-db",
            "mirrord-sb-Bad",
            "other",
        ]
        .map(str::to_owned);
        assert_eq!(
            names_from_netns(&netns).into_iter().collect::<Vec<_>>(),
            ["demo", "orphan-db", "x-db"]
        );
    }

    #[test]
    fn fatal_log_lines_are_recognised() {
        assert!(is_fatal_log_line("error: could not listen on port 80"));
        assert!(!is_fatal_log_line("  help: run it as root"));
    }
}
