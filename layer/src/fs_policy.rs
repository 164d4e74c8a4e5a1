//! Which file system a path belongs to: the user process's own machine, the target, or neither.
//!
//! Pure logic, decided once per call from the path alone (no system calls): the shims first make the
//! path absolute and normal ([`absolute`], [`normalize`]), then [`FsPolicy::decide`] applies, in order,
//!
//! 1. the user's `mapping` (regex → replacement, first match wins): the decision is about the new path;
//! 2. the user's lists: `not_found` → ENOENT, `local`, `read_only` (writes stay local), `read_write`;
//! 3. the built-in lists: credentials of local cloud tools are never visible (`~/.kube`, `~/.aws`, …);
//!    `/etc/resolv.conf`, `/etc/hosts`, `/etc/hostname` are read from the target; everything a program
//!    needs to start stays local (its own executable, shared libraries and system directories, language
//!    toolchains and package caches, the working directory the session started in, …);
//! 4. the mode: `local` and `localwithoverrides` → local; `read` → reads from the target, writes local;
//!    `write` → the target.
//!
//! Mode `local` short-circuits everything: the layer does nothing with files (as in mirrord).

// Declared with `path` so that the supervisor, which includes this file by path, finds them too.
#[path = "fs_policy/normalize.rs"]
mod normalize;
#[path = "fs_policy/tables.rs"]
mod tables;

use std::borrow::Cow;

use mirrord_config::{file::FsMode, resolved::FsConfig};
use regex::bytes::{Regex, RegexSet};

use normalize::is_normal;
pub(crate) use normalize::{absolute, normalize};
use tables::{
    Builtin, LOCAL_COMPONENTS, LOCAL_ETC_ENTRIES, LOCAL_ETC_PREFIXES, LOCAL_IN_HOME,
    NEVER_VISIBLE_IN_HOME, REMOTE_ETC_FILES, contains_component, file_name, has_dir_prefix,
    is_local_file_name, is_local_root, packed_first_component, split_first_component,
    strip_dir_prefix,
};

/// Whether an operation reads or changes the file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    /// Opening for reading, `stat`, `access`, listing a directory, …
    Read,
    /// Opening for writing or creating, `mkdir`, `unlink`, `rename`, …
    Write,
}

/// Where an operation on a path goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// The user process's own file system.
    Local,
    /// The target's file system, through the intproxy.
    Remote,
    /// Nowhere: the operation fails with `ENOENT`.
    NotFound,
}

/// A decision and the path it is about (rewritten by `mapping`, else the path asked about).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision<'a> {
    /// Where the operation goes.
    pub(crate) route: Route,
    /// The path to use there.
    pub(crate) path: Cow<'a, [u8]>,
    /// Whether `mapping` rewrote the path.
    pub(crate) mapped: bool,
}

/// Facts about this process that the built-in lists use. All paths are absolute and normal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProcessPaths {
    /// `$HOME`.
    pub(crate) home: Option<Vec<u8>>,
    /// The process's own executable (`/proc/self/exe`).
    pub(crate) executable: Option<Vec<u8>>,
    /// The working directory when the layer started (ignored when it is `/`).
    pub(crate) startup_cwd: Option<Vec<u8>>,
    /// More local directories: toolchain homes named by the environment (`JAVA_HOME`, `CARGO_HOME`, …),
    /// `$TMPDIR`.
    pub(crate) local_dirs: Vec<Vec<u8>>,
}

/// Environment variables that name toolchain or cache directories, which stay local.
pub(crate) const LOCAL_DIR_VARIABLES: &[&str] = &[
    "JAVA_HOME",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "PYENV_ROOT",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "NVM_DIR",
    "GOROOT",
    "GOPATH",
    "GOMODCACHE",
    "GOCACHE",
    "TMPDIR",
    "XDG_CACHE_HOME",
    "XDG_RUNTIME_DIR",
];

/// The compiled file policy of a session.
#[derive(Debug)]
pub(crate) struct FsPolicy {
    mode: FsMode,
    /// Whether the user gave any mapping or list (then no shortcut may skip them).
    has_user_rules: bool,
    mapping: Vec<(Regex, String)>,
    not_found: Option<RegexSet>,
    local: Option<RegexSet>,
    read_only: Option<RegexSet>,
    read_write: Option<RegexSet>,
    process: ProcessPaths,
}

impl FsPolicy {
    /// Compiles the config's patterns (once per process).
    pub(crate) fn new(config: &FsConfig, process: ProcessPaths) -> Result<Self, regex::Error> {
        let set = |patterns: &[String]| -> Result<Option<RegexSet>, regex::Error> {
            if patterns.is_empty() {
                Ok(None)
            } else {
                RegexSet::new(patterns).map(Some)
            }
        };
        let mapping = config
            .mapping
            .iter()
            .map(|(pattern, replacement)| Ok((Regex::new(pattern)?, replacement.clone())))
            .collect::<Result<_, regex::Error>>()?;
        Ok(Self {
            mode: config.mode,
            has_user_rules: !(config.mapping.is_empty()
                && config.not_found.is_empty()
                && config.local.is_empty()
                && config.read_only.is_empty()
                && config.read_write.is_empty()),
            mapping,
            not_found: set(&config.not_found)?,
            local: set(&config.local)?,
            read_only: set(&config.read_only)?,
            read_write: set(&config.read_write)?,
            process,
        })
    }

    /// A shortcut for the hot path: whether the absolute `path` (not yet normalised) is certainly local
    /// because it lies under one of the local top-level directories (`/usr`, `/tmp`, `/proc`, …) and no
    /// user rule could say otherwise. `false` means "decide the long way", not "remote".
    #[inline]
    pub(crate) fn is_plainly_local(&self, path: &[u8]) -> bool {
        !self.has_user_rules && is_local_root(packed_first_component(path)) && is_normal(path)
    }

    /// Where an operation with `intent` on the absolute, normal `path` goes.
    #[inline(never)]
    pub(crate) fn decide<'a>(&self, path: &'a [u8], intent: Intent) -> Decision<'a> {
        if self.mode == FsMode::Local {
            return Decision {
                route: Route::Local,
                path: Cow::Borrowed(path),
                mapped: false,
            };
        }
        let path = self.map(path);
        let route = self.route(&path, intent);
        Decision {
            route,
            mapped: matches!(path, Cow::Owned(_)),
            path,
        }
    }

    fn map<'a>(&self, path: &'a [u8]) -> Cow<'a, [u8]> {
        if self.mapping.is_empty() {
            return Cow::Borrowed(path);
        }
        for (pattern, replacement) in &self.mapping {
            if pattern.is_match(path) {
                return match pattern.replace(path, replacement.as_bytes()) {
                    Cow::Borrowed(_) => Cow::Borrowed(path),
                    Cow::Owned(mapped) => Cow::Owned(normalize(&mapped).into_owned()),
                };
            }
        }
        Cow::Borrowed(path)
    }

    fn route(&self, path: &[u8], intent: Intent) -> Route {
        let matches = |set: &Option<RegexSet>| set.as_ref().is_some_and(|set| set.is_match(path));
        let read_only = |intent| match intent {
            Intent::Read => Route::Remote,
            Intent::Write => Route::Local,
        };
        if matches(&self.not_found) {
            return Route::NotFound;
        }
        if matches(&self.local) {
            return Route::Local;
        }
        if matches(&self.read_only) {
            return read_only(intent);
        }
        if matches(&self.read_write) {
            return Route::Remote;
        }
        match self.builtin(path) {
            Some(Builtin::NeverVisible) => return Route::NotFound,
            Some(Builtin::RemoteReadOnly) => return read_only(intent),
            Some(Builtin::Local) => return Route::Local,
            None => {}
        }
        match self.mode {
            FsMode::Local | FsMode::Localwithoverrides => Route::Local,
            FsMode::Read => read_only(intent),
            FsMode::Write => Route::Remote,
        }
    }

    /// The built-in rule for `path`, if any. Ordered so that the common local paths are decided after a
    /// few byte comparisons.
    fn builtin(&self, path: &[u8]) -> Option<Builtin> {
        if is_local_root(packed_first_component(path)) {
            return Some(Builtin::Local);
        }
        let (first, rest) = split_first_component(path);
        match first {
            b"etc" => {
                if REMOTE_ETC_FILES.contains(&rest) {
                    return Some(Builtin::RemoteReadOnly);
                }
                let (name, _) = split_first_component(rest);
                if LOCAL_ETC_ENTRIES.contains(&name)
                    || LOCAL_ETC_PREFIXES
                        .iter()
                        .any(|prefix| name.starts_with(prefix))
                {
                    return Some(Builtin::Local);
                }
            }
            b"var" if has_dir_prefix(rest, b"/tmp") => return Some(Builtin::Local),
            _ => {}
        }
        if let Some(home) = &self.process.home
            && let Some(under_home) = strip_dir_prefix(path, home)
        {
            if NEVER_VISIBLE_IN_HOME
                .iter()
                .any(|entry| has_dir_prefix(under_home, entry))
            {
                return Some(Builtin::NeverVisible);
            }
            let (name, _) = split_first_component(under_home);
            if LOCAL_IN_HOME.contains(&name) {
                return Some(Builtin::Local);
            }
        }
        if self.process.executable.as_deref() == Some(path)
            || self
                .process
                .startup_cwd
                .as_deref()
                .is_some_and(|cwd| cwd != b"/" && has_dir_prefix(path, cwd))
            || self
                .process
                .local_dirs
                .iter()
                .any(|dir| dir.as_slice() != b"/" && has_dir_prefix(path, dir))
        {
            return Some(Builtin::Local);
        }
        if LOCAL_COMPONENTS
            .iter()
            .any(|component| contains_component(path, component))
            || is_local_file_name(file_name(path))
        {
            return Some(Builtin::Local);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: FsMode) -> FsConfig {
        FsConfig {
            mode,
            ..FsConfig::default()
        }
    }

    fn process() -> ProcessPaths {
        ProcessPaths {
            home: Some(b"/home/dev".to_vec()),
            executable: Some(b"/srv/bin/app".to_vec()),
            startup_cwd: Some(b"/home/dev/project".to_vec()),
            local_dirs: vec![b"/usr/lib/jvm/java-17".to_vec(), b"/".to_vec()],
        }
    }

    fn policy(config: FsConfig) -> FsPolicy {
        FsPolicy::new(&config, process()).unwrap()
    }

    /// Checks `(path, intent) → route` for each case, with the mapped path when it changed.
    fn check(policy: &FsPolicy, cases: &[(&str, Intent, Route)]) {
        for (path, intent, expected) in cases {
            let decision = policy.decide(path.as_bytes(), *intent);
            assert_eq!(decision.route, *expected, "{path} ({intent:?})");
        }
    }

    use Intent::{Read, Write};
    use Route::{Local, NotFound, Remote};

    #[test]
    fn read_mode_reads_remote_and_writes_local() {
        check(
            &policy(config(FsMode::Read)),
            &[
                ("/app/config.yaml", Read, Remote),
                ("/app/config.yaml", Write, Local),
                ("/etc/app/settings.json", Read, Remote),
                (
                    "/var/run/secrets/kubernetes.io/serviceaccount/token",
                    Read,
                    Remote,
                ),
            ],
        );
    }

    #[test]
    fn write_mode_sends_both_to_the_target() {
        check(
            &policy(config(FsMode::Write)),
            &[
                ("/app/data.db", Read, Remote),
                ("/app/data.db", Write, Remote),
            ],
        );
    }

    #[test]
    fn local_modes_stay_local() {
        check(
            &policy(config(FsMode::Local)),
            &[
                ("/app/config.yaml", Read, Local),
                ("/home/dev/.kube/config", Read, Local),
                ("/etc/hosts", Read, Local),
            ],
        );
        check(
            &policy(config(FsMode::Localwithoverrides)),
            &[
                ("/app/config.yaml", Read, Local),
                ("/etc/hosts", Read, Remote),
                ("/home/dev/.aws/credentials", Read, NotFound),
            ],
        );
    }

    #[test]
    fn builtin_local_paths_stay_local_in_every_remote_mode() {
        let cases: Vec<(&str, Intent, Route)> = [
            "/proc/self/maps",
            "/proc",
            "/sys/devices/system/cpu/online",
            "/dev/null",
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib64/ld-linux-x86-64.so.2",
            "/usr/lib/python3.11/os.py",
            "/bin/sh",
            "/tmp/mirrord-test/file",
            "/var/tmp/cache",
            "/run/user/0/bus",
            "/nix/store/abc-glibc/lib/libc.so.6",
            "/opt/app/bin/tool",
            "/etc/ld.so.cache",
            "/etc/localtime",
            "/etc/passwd",
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/python3.11/sitecustomize.py",
            "/home/dev/.cache/pip/http/x",
            "/home/dev/.cargo/registry/index",
            "/home/dev/.rustup/toolchains/stable/lib/librustc.so",
            "/home/dev/.npm/_cacache/index",
            "/home/dev/.pyenv/versions/3.11.7/bin/python3.11",
            "/home/dev/.config/git/config",
            "/home/dev/project/src/main.py",
            "/home/dev/project",
            "/srv/bin/app",
            "/usr/lib/jvm/java-17/lib/modules",
            "/srv/app/node_modules/express/index.json",
            "/srv/app/venv/lib/python3.11/site-packages/requests/api.txt",
            "/srv/app/__pycache__/main.cpython-311.pyc",
            "/srv/app/lib/libfoo.so",
            "/srv/app/lib/libfoo.so.1.2.3",
            "/srv/app/settings.py",
            "/srv/app/pyvenv.cfg",
        ]
        .into_iter()
        .flat_map(|path| [(path, Read, Local), (path, Write, Local)])
        .collect();
        check(&policy(config(FsMode::Read)), &cases);
        check(&policy(config(FsMode::Write)), &cases);
    }

    #[test]
    fn near_misses_of_builtin_paths_are_not_local() {
        check(
            &policy(config(FsMode::Read)),
            &[
                ("/tmpfiles/x", Read, Remote),
                ("/usrdata/x", Read, Remote),
                ("/var/lib/app/state", Read, Remote),
                ("/home/dev/project-other/x", Read, Remote),
                ("/home/dev/notes.txt", Read, Remote),
                ("/srv/app/libfoo.so.conf", Read, Remote),
                ("/srv/bin/app.yaml", Read, Remote),
                ("/etc/hosts.allow", Read, Remote),
            ],
        );
    }

    #[test]
    fn resolver_files_are_read_from_the_target_and_written_locally() {
        check(
            &policy(config(FsMode::Write)),
            &[
                ("/etc/resolv.conf", Read, Remote),
                ("/etc/hosts", Read, Remote),
                ("/etc/hostname", Read, Remote),
                ("/etc/hosts", Write, Local),
            ],
        );
    }

    #[test]
    fn cloud_credentials_are_never_visible() {
        check(
            &policy(config(FsMode::Read)),
            &[
                ("/home/dev/.kube/config", Read, NotFound),
                ("/home/dev/.kube", Read, NotFound),
                ("/home/dev/.aws/credentials", Write, NotFound),
                ("/home/dev/.config/gcloud/credentials.db", Read, NotFound),
                ("/home/dev/.kubernetes", Read, Remote),
            ],
        );
    }

    #[test]
    fn user_lists_come_before_builtins_in_their_order() {
        let mut config = config(FsMode::Read);
        config.not_found = vec![r"^/app/secret".into()];
        config.local = vec![r"\.log$".into(), r"^/app/secret-but-local".into()];
        config.read_only = vec![r"^/data/".into()];
        config.read_write = vec![
            r"^/data/".into(),
            r"^/var/lib/app/".into(),
            "^/tmp/shared/".into(),
        ];
        check(
            &policy(config),
            &[
                ("/app/secret-but-local/x", Read, NotFound),
                ("/app/server.log", Read, Local),
                ("/data/x", Read, Remote),
                ("/data/x", Write, Local),
                ("/var/lib/app/state", Write, Remote),
                ("/tmp/shared/file", Write, Remote),
                ("/tmp/other", Write, Local),
            ],
        );
    }

    #[test]
    fn mapping_rewrites_before_deciding() {
        let mut config = config(FsMode::Read);
        config.mapping.insert(
            r"^/home/dev/project/remote-config".into(),
            "/etc/app".into(),
        );
        config
            .mapping
            .insert(r"^/data/(\w+)/(.*)$".into(), "/srv/$1/../$2".into());
        let policy = policy(config);
        let decision = policy.decide(b"/home/dev/project/remote-config/app.yaml", Read);
        assert_eq!(decision.route, Remote);
        assert_eq!(decision.path.as_ref(), b"/etc/app/app.yaml");
        let decision = policy.decide(b"/data/files/a.txt", Read);
        assert_eq!(decision.path.as_ref(), b"/srv/a.txt");
        let decision = policy.decide(b"/elsewhere", Read);
        assert!(matches!(decision.path, Cow::Borrowed(_)));
    }

    #[test]
    fn invalid_user_patterns_are_errors() {
        let mut config = config(FsMode::Read);
        config.local = vec!["(".into()];
        assert!(FsPolicy::new(&config, process()).is_err());
    }

    #[test]
    fn the_shortcut_is_taken_only_when_it_cannot_be_wrong() {
        let plain = policy(config(FsMode::Read));
        assert!(plain.is_plainly_local(b"/usr/lib/python3.11/os.py"));
        assert!(plain.is_plainly_local(b"/tmp/x"));
        assert!(plain.is_plainly_local(b"/proc"));
        assert!(!plain.is_plainly_local(b"/usr/../app/config.yaml"));
        assert!(!plain.is_plainly_local(b"/usrdata/x"));
        assert!(!plain.is_plainly_local(b"/app/config.yaml"));
        let mut with_rules = config(FsMode::Read);
        with_rules.read_only = vec!["^/tmp/shared".into()];
        assert!(!policy(with_rules).is_plainly_local(b"/tmp/shared/x"));
    }
}
