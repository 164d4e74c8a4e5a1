//! What a sandbox pod contains: its files, environment variables and DNS records, as pure
//! functions of the sandbox name and addresses (so tests can predict every byte).

use std::{collections::BTreeMap, net::Ipv4Addr, path::PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    SandboxAddresses,
    sandbox::{DNS_PORT, ECHO_PORT, HTTP_PORT},
};

/// The DNS search domain of every sandbox pod, as in Kubernetes' `<namespace>.svc`.
pub(crate) const SEARCH_DOMAIN: &str = "sandbox.svc";

/// Where the pod's DNS server listens inside the sandbox's network namespace (unreachable from the host).
pub(crate) const DNS_LISTEN_IP: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// The `PATH` of the target process.
const POD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A file that exists only inside a sandbox pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxFile {
    /// Absolute path as seen by the target process (e.g. `/app/config.yaml`).
    pub path: PathBuf,
    /// The whole contents.
    pub contents: String,
}

impl SandboxFile {
    fn new(path: &str, contents: String) -> Self {
        Self {
            path: PathBuf::from(path),
            contents,
        }
    }
}

/// The names the pod's DNS server answers inside the sandbox, and their addresses.
pub(crate) fn dns_records(addresses: &SandboxAddresses) -> BTreeMap<String, Ipv4Addr> {
    BTreeMap::from([
        (format!("api.{SEARCH_DOMAIN}"), addresses.sandbox_ip),
        (format!("db.{SEARCH_DOMAIN}"), addresses.db_ip),
        (format!("echo.{SEARCH_DOMAIN}"), addresses.db_ip),
    ])
}

/// The files of the pod: `/app/*` (on a tmpfs that exists only in the pod) and the pod's own
/// `/etc/resolv.conf`, `/etc/hosts` and `/etc/hostname`.
pub(crate) fn pod_files(name: &str, addresses: &SandboxAddresses) -> Vec<SandboxFile> {
    let sandbox_ip = addresses.sandbox_ip;
    let db_ip = addresses.db_ip;
    vec![
        SandboxFile::new(
            "/app/config.yaml",
            format!(
                "# Configuration of sandbox pod {name}; this file exists only inside the pod.\n\
                 sandbox: {name}\n\
                 service:\n  name: api\n  port: {HTTP_PORT}\n\
                 database:\n  url: {}\n\
                 echo:\n  host: db.{SEARCH_DOMAIN}\n  port: {ECHO_PORT}\n",
                database_url()
            ),
        ),
        SandboxFile::new(
            "/app/README.txt",
            format!("This is the /app directory of sandbox pod {name}.\n"),
        ),
        SandboxFile::new("/app/data/greeting.txt", format!("{}\n", greeting(name))),
        SandboxFile::new(
            "/etc/resolv.conf",
            format!(
                "# resolver of sandbox pod {name}\n\
                 nameserver {DNS_LISTEN_IP}\n\
                 search {SEARCH_DOMAIN}\n\
                 options timeout:1 attempts:2\n"
            ),
        ),
        SandboxFile::new(
            "/etc/hosts",
            format!(
                "# hosts of sandbox pod {name}\n\
                 127.0.0.1\tlocalhost\n\
                 ::1\tlocalhost ip6-localhost ip6-loopback\n\
                 {sandbox_ip}\t{name} api.sandbox.local\n\
                 {db_ip}\tdb.sandbox.local\n"
            ),
        ),
        SandboxFile::new("/etc/hostname", format!("{name}\n")),
    ]
}

/// The whole environment of the target process (nothing is inherited from whoever ran `up`).
pub(crate) fn pod_env(name: &str) -> BTreeMap<String, String> {
    [
        ("PATH", POD_PATH.to_owned()),
        ("HOME", "/root".to_owned()),
        ("HOSTNAME", name.to_owned()),
        ("MIRRORD_SANDBOX", name.to_owned()),
        ("SANDBOX_GREETING", greeting(name)),
        ("DATABASE_URL", database_url()),
        ("ECHO_ADDR", format!("db.{SEARCH_DOMAIN}:{ECHO_PORT}")),
        ("DNS_SERVER", format!("{DNS_LISTEN_IP}:{DNS_PORT}")),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect()
}

fn greeting(name: &str) -> String {
    format!("hello from sandbox {name}")
}

fn database_url() -> String {
    format!("postgres://db.{SEARCH_DOMAIN}:5432/app")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn file<'a>(files: &'a [SandboxFile], path: &str) -> &'a str {
        &files
            .iter()
            .find(|file| file.path == Path::new(path))
            .unwrap_or_else(|| panic!("no {path}"))
            .contents
    }

    #[test]
    fn files_name_the_sandbox_and_its_addresses() {
        let files = pod_files("demo", &SandboxAddresses::for_slot(3));
        assert_eq!(
            file(&files, "/app/config.yaml"),
            "# Configuration of sandbox pod demo; this file exists only inside the pod.\n\
             sandbox: demo\n\
             service:\n  name: api\n  port: 80\n\
             database:\n  url: postgres://db.sandbox.svc:5432/app\n\
             echo:\n  host: db.sandbox.svc\n  port: 7\n"
        );
        assert_eq!(
            file(&files, "/etc/resolv.conf"),
            "# resolver of sandbox pod demo\nnameserver 127.0.0.1\nsearch sandbox.svc\n\
             options timeout:1 attempts:2\n"
        );
        assert_eq!(
            file(&files, "/etc/hosts"),
            "# hosts of sandbox pod demo\n127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             10.241.3.2\tdemo api.sandbox.local\n10.242.3.2\tdb.sandbox.local\n"
        );
        assert_eq!(file(&files, "/etc/hostname"), "demo\n");
        assert_eq!(
            file(&files, "/app/data/greeting.txt"),
            "hello from sandbox demo\n"
        );
        assert!(files.iter().all(|file| file.path.is_absolute()));
    }

    #[test]
    fn env_is_complete_and_names_the_sandbox() {
        let env = pod_env("demo");
        assert_eq!(env["MIRRORD_SANDBOX"], "demo");
        assert_eq!(env["SANDBOX_GREETING"], "hello from sandbox demo");
        assert_eq!(env["DATABASE_URL"], "postgres://db.sandbox.svc:5432/app");
        assert_eq!(env["HOSTNAME"], "demo");
        assert!(env["PATH"].contains("/usr/bin"));
    }

    #[test]
    fn dns_points_services_at_their_namespaces() {
        let addresses = SandboxAddresses::for_slot(9);
        let records = dns_records(&addresses);
        assert_eq!(records["db.sandbox.svc"], Ipv4Addr::new(10, 242, 9, 2));
        assert_eq!(records["api.sandbox.svc"], Ipv4Addr::new(10, 241, 9, 2));
    }
}
