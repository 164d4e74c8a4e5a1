//! `mirrord sandbox up|down|list`: the built-in sandbox pods, local targets made of network and
//! mount namespaces (see the `mirrord-sandbox` crate), plus the hidden `mirrord sandbox serve`
//! helpers that run a sandbox's services.

use std::{
    error::Error,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use mirrord_sandbox::{
    MAX_NAME_LEN, PidFile, Sandbox, SandboxError, SandboxInfo, UpOptions,
    dns::{DnsService, DnsZone},
    pod::{self, PodSpec},
    services::{self, HttpService, TcpEchoService, UdpEchoService},
};

use crate::exit::{Outcome, report_error};

const SANDBOX_HELP: &str = "\
A sandbox pod is a local stand-in for a Kubernetes pod: a network namespace joined to this
machine by a veth pair (10.241.N.0/24), its own mount and PID namespaces (files under /app,
its own /etc/hosts and /etc/resolv.conf and /proc), its own environment variables and DNS
server, an HTTP service on port 80 (the target), and a second namespace with TCP and UDP echo
services on port 7 that only the pod can reach (10.242.N.0/24; the host gets an `unreachable`
route for it while the sandbox exists).

Use one as a target with `mirrord exec --target sandbox/NAME` or `--target pid/<PID>` (`up`
prints the PID).

Needs root and `ip` (Debian package iproute2); everything else is built into mirrord.
State, pid files and logs live in /run/mirrord/sandbox/NAME.

Examples:
  mirrord sandbox up                 # the sandbox `demo`
  mirrord sandbox up api-2 --output json
  curl http://10.241.1.2/
  mirrord sandbox list
  mirrord sandbox down --all";

/// Arguments of `mirrord sandbox`; the text below is its `--help` epilogue.
#[derive(Debug, clap::Args)]
#[command(after_help = SANDBOX_HELP)]
pub(crate) struct SandboxArgs {
    #[command(subcommand)]
    command: SandboxCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SandboxCommand {
    /// Create a sandbox pod, or show the one already running, once all its services answer.
    Up(UpArgs),
    /// Stop a sandbox pod and remove its processes, namespaces, interfaces and state.
    Down(DownArgs),
    /// List the sandbox pods.
    List(ListArgs),
    /// Run one of a sandbox pod's helper processes (started by `up`).
    #[command(hide = true)]
    Serve(ServeArgs),
}

/// How results are printed.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
enum OutputFormat {
    /// For people.
    #[default]
    Human,
    /// One JSON document on stdout, for programs.
    Json,
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    /// Sandbox name: 1 to 20 characters of a-z, 0-9 and `-`.
    #[arg(default_value = "demo")]
    name: String,
    /// Print the sandbox as text or as JSON (the same fields as `list --output json`).
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
    /// Seconds to wait for every service to answer before giving up.
    #[arg(long, default_value_t = 15, value_name = "SECONDS")]
    timeout: u64,
}

#[derive(Debug, clap::Args)]
struct DownArgs {
    /// Sandbox name.
    #[arg(default_value = "demo", conflicts_with = "all")]
    name: String,
    /// Take down every sandbox pod, including half-made ones.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Print a table or a JSON array of sandboxes.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    #[command(subcommand)]
    helper: Helper,
}

#[derive(Debug, clap::Subcommand)]
enum Helper {
    /// The target: an HTTP/1.1 service, optionally inside a pod built from a spec first.
    Http {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        name: String,
        /// Build the pod described by this `pod.json` (in a fresh mount namespace) first.
        #[arg(long)]
        pod_spec: Option<PathBuf>,
        #[arg(long)]
        pid_file: Option<PathBuf>,
    },
    /// A TCP echo service.
    TcpEcho {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        pid_file: Option<PathBuf>,
    },
    /// A UDP echo service.
    UdpEcho {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        pid_file: Option<PathBuf>,
    },
    /// The pod's DNS server, over UDP and TCP: A and AAAA records, NXDOMAIN for other names.
    Dns {
        /// The address to listen on (UDP and TCP).
        #[arg(long)]
        listen: SocketAddr,
        /// A record, `NAME=ADDRESS` (repeat for more; a name may have several addresses).
        #[arg(long = "record", value_parser = parse_record)]
        records: Vec<(String, IpAddr)>,
        #[arg(long)]
        pid_file: Option<PathBuf>,
    },
}

/// Parses `NAME=ADDRESS` for `serve dns --record`.
fn parse_record(text: &str) -> Result<(String, IpAddr), String> {
    let (name, address) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=ADDRESS"))?;
    let address = address
        .parse()
        .map_err(|error| format!("`{address}` is not an IP address: {error}"))?;
    Ok((name.to_owned(), address))
}

pub(crate) fn run(args: SandboxArgs) -> Outcome {
    match args.command {
        SandboxCommand::Up(args) => up(args),
        SandboxCommand::Down(args) => down(args),
        SandboxCommand::List(args) => list(args),
        SandboxCommand::Serve(args) => serve(args.helper),
    }
}

fn up(args: UpArgs) -> Outcome {
    let helper = match std::env::current_exe() {
        Ok(exe) => vec![exe.into_os_string(), "sandbox".into(), "serve".into()],
        Err(error) => {
            report_error(&format!("could not find the mirrord binary: {error}"), None);
            return Outcome::UsageOrIo;
        }
    };
    let options = UpOptions {
        ready_timeout: Duration::from_secs(args.timeout),
        ..UpOptions::new(helper)
    };
    match Sandbox::up(&args.name, &options) {
        Ok(info) => {
            match args.output {
                OutputFormat::Human => print_up(&info),
                OutputFormat::Json => print_json(&info),
            }
            Outcome::Success
        }
        Err(error) => report_sandbox_error(&error),
    }
}

fn down(args: DownArgs) -> Outcome {
    if args.all {
        return match Sandbox::down_all() {
            Ok(names) if names.is_empty() => {
                print_line("no sandbox pods to take down");
                Outcome::Success
            }
            Ok(names) => {
                print_line(&format!("took down {}", names.join(", ")));
                Outcome::Success
            }
            Err(error) => report_sandbox_error(&error),
        };
    }
    match Sandbox::down(&args.name) {
        Ok(()) => {
            print_line(&format!("sandbox {} is down", args.name));
            Outcome::Success
        }
        Err(error) => report_sandbox_error(&error),
    }
}

fn list(args: ListArgs) -> Outcome {
    let sandboxes = match Sandbox::list() {
        Ok(sandboxes) => sandboxes,
        Err(error) => return report_sandbox_error(&error),
    };
    match args.output {
        OutputFormat::Json => print_json(&sandboxes),
        OutputFormat::Human if sandboxes.is_empty() => {
            print_line("no sandbox pods (create one with `mirrord sandbox up`)");
        }
        OutputFormat::Human => {
            let rows: Vec<[String; 5]> = sandboxes
                .iter()
                .map(|info| {
                    [
                        info.name.clone(),
                        info.target.clone(),
                        info.http_url(),
                        info.db_ip.to_string(),
                        if info.is_running() {
                            "running"
                        } else {
                            "broken (run `down`)"
                        }
                        .to_owned(),
                    ]
                })
                .collect();
            print_table(["NAME", "TARGET", "HTTP", "DB", "STATUS"], &rows);
        }
    }
    Outcome::Success
}

/// Runs a helper; its errors go to stderr (the service's log), where `up` looks for them.
fn serve(helper: Helper) -> Outcome {
    let result: Result<(), Box<dyn Error>> = services::start_own_session()
        .map_err(|error| format!("could not start a session of its own: {error}").into())
        .and_then(|()| serve_helper(helper));
    match result {
        Ok(()) => Outcome::Success,
        Err(error) => {
            report_error(&error_chain(error.as_ref()), None);
            Outcome::Failure
        }
    }
}

fn serve_helper(helper: Helper) -> Result<(), Box<dyn Error>> {
    match helper {
        Helper::Http {
            port,
            name,
            pod_spec,
            pid_file,
        } => serve_http(port, &name, pod_spec, pid_file),
        Helper::TcpEcho { port, pid_file } => open_pid_file(pid_file).and_then(|pid_file| {
            let service = TcpEchoService::bind(any_address(port)).map_err(listen_error(port))?;
            announce(pid_file)?;
            Ok(service.run()?)
        }),
        Helper::UdpEcho { port, pid_file } => open_pid_file(pid_file).and_then(|pid_file| {
            let service = UdpEchoService::bind(any_address(port)).map_err(listen_error(port))?;
            announce(pid_file)?;
            Ok(service.run()?)
        }),
        Helper::Dns {
            listen,
            records,
            pid_file,
        } => open_pid_file(pid_file).and_then(|pid_file| {
            let mut zone = DnsZone::new();
            for (name, address) in &records {
                zone.insert(name, *address);
            }
            let service = DnsService::bind(listen, zone)
                .map_err(|error| format!("could not listen on {listen}: {error}"))?;
            announce(pid_file)?;
            Ok(service.run()?)
        }),
    }
}

fn serve_http(
    port: u16,
    name: &str,
    pod_spec: Option<PathBuf>,
    pid_file: Option<PathBuf>,
) -> Result<(), Box<dyn Error>> {
    // Opened before entering the pod, whose /run does not show the host's state directory.
    let pid_file = open_pid_file(pid_file)?;
    if let Some(path) = pod_spec {
        let text = std::fs::read_to_string(&path)
            .map_err(|error| format!("could not read {}: {error}", path.display()))?;
        let spec: PodSpec = serde_json::from_str(&text)
            .map_err(|error| format!("could not parse {}: {error}", path.display()))?;
        pod::enter_pod(&spec)?;
    }
    let service = HttpService::bind(any_address(port), name).map_err(listen_error(port))?;
    announce(pid_file)?;
    Ok(service.run()?)
}

fn any_address(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
}

fn listen_error(port: u16) -> impl FnOnce(std::io::Error) -> String {
    move |error| format!("could not listen on port {port}: {error}")
}

fn open_pid_file(path: Option<PathBuf>) -> Result<Option<PidFile>, Box<dyn Error>> {
    path.map(|path| {
        PidFile::create(&path)
            .map_err(|error| format!("could not create {}: {error}", path.display()).into())
    })
    .transpose()
}

/// Fills the pid file, which tells `up` this service listens.
fn announce(pid_file: Option<PidFile>) -> Result<(), Box<dyn Error>> {
    match pid_file {
        Some(pid_file) => pid_file
            .announce()
            .map_err(|error| format!("could not write the pid file: {error}").into()),
        None => Ok(()),
    }
}

/// Reports a sandbox error with help the user can act on, and picks the exit code.
fn report_sandbox_error(error: &SandboxError) -> Outcome {
    let message = error_chain(error);
    let (help, outcome) = match error {
        SandboxError::InvalidName { .. } => (
            Some(format!(
                "use 1 to {MAX_NAME_LEN} characters of a-z, 0-9 and `-`, starting and ending \
                 with a letter or digit, e.g. `demo` or `pod-2`"
            )),
            Outcome::UsageOrIo,
        ),
        SandboxError::NotRoot => (
            Some(
                "run it with sudo, or as root in a container with CAP_SYS_ADMIN and CAP_NET_ADMIN"
                    .to_owned(),
            ),
            Outcome::UsageOrIo,
        ),
        // One line: the message already names the program and its package.
        SandboxError::MissingTool { .. } => (None, Outcome::Failure),
        SandboxError::NoFreeSlot => (
            Some("take some down with `mirrord sandbox down NAME` or `--all`".to_owned()),
            Outcome::Failure,
        ),
        SandboxError::NotReady { .. } => (
            Some(
                "everything it made has been removed again; the service logs are above".to_owned(),
            ),
            Outcome::Failure,
        ),
        SandboxError::Io { .. } | SandboxError::State { .. } => (None, Outcome::UsageOrIo),
        _ => (
            Some("`mirrord sandbox down --all` removes whatever a failed sandbox left".to_owned()),
            Outcome::Failure,
        ),
    };
    report_error(&message, help.as_deref());
    outcome
}

/// The error and its sources, joined with ": ".
fn error_chain(error: &dyn Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn print_up(info: &SandboxInfo) {
    let names: Vec<&str> = info.dns_records.keys().map(String::as_str).collect();
    let files: Vec<String> = info
        .files
        .iter()
        .map(|file| file.path.display().to_string())
        .collect();
    let rows = [
        [
            "target",
            &format!(
                "{}   (mirrord exec --target {} -- <command>)",
                info.target, info.target
            ),
        ],
        [
            "http",
            &format!("{}   (reachable from this machine)", info.http_url()),
        ],
        ["netns", &format!("{} (db: {})", info.netns, info.db_netns)],
        [
            "dns",
            &format!(
                "{} inside the sandbox: {}",
                info.dns_server,
                names.join(", ")
            ),
        ],
        [
            "db",
            &format!(
                "{}: tcp and udp echo on port {} (only from inside the sandbox)",
                info.db_ip, info.echo_port
            ),
        ],
        ["files", &files.join(", ")],
        ["state", &info.state_dir.display().to_string()],
    ];
    print_line(&format!("sandbox {} is up", info.name));
    for [key, value] in rows {
        print_line(&format!("  {key:<8}{value}"));
    }
}

fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let render = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    print_line(&render(header.to_vec()));
    for row in rows {
        print_line(&render(row.iter().map(String::as_str).collect()));
    }
}

fn print_json<T: serde::Serialize>(value: &T) {
    // Serialising these plain data types cannot fail.
    print_line(&serde_json::to_string_pretty(value).unwrap_or_default());
}

fn print_line(line: &str) {
    use std::io::Write;
    // A closed pipe (`… | head`) is not an error worth a message.
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: SandboxCommand,
    }

    fn parse(args: &[&str]) -> Result<SandboxCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("sandbox").chain(args.iter().copied()))
            .map(|cli| cli.command)
    }

    #[test]
    fn names_default_to_demo() {
        assert!(
            matches!(parse(&["up"]), Ok(SandboxCommand::Up(UpArgs { name, .. })) if name == "demo")
        );
        assert!(
            matches!(parse(&["down"]), Ok(SandboxCommand::Down(DownArgs { name, all: false })) if name == "demo")
        );
    }

    #[test]
    fn down_all_takes_no_name() {
        assert!(parse(&["down", "--all"]).is_ok());
        assert!(parse(&["down", "x", "--all"]).is_err());
    }

    #[test]
    fn helper_command_is_plain_os_strings() {
        let helper: Vec<std::ffi::OsString> = vec!["/bin/true".into()];
        assert_eq!(UpOptions::new(helper.clone()).helper_command, helper);
    }
}
