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

use std::borrow::Cow;

use mirrord_config::{file::FsMode, resolved::FsConfig};
use regex::bytes::{Regex, RegexSet};

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

/// The first component of an absolute path packed into a `u64` (little-endian, zero-padded), or 0 when
/// it is longer than 8 bytes or the path is not absolute.
#[inline]
fn packed_first_component(path: &[u8]) -> u64 {
    if path.first() != Some(&b'/') {
        return 0;
    }
    if let Some(next_nine) = path.get(1..10) {
        // The component is at most 8 bytes when one of the next 9 bytes is a `/`.
        let word = u64::from_le_bytes(next_nine[..8].try_into().unwrap_or([0xff; 8]));
        let slashes = bytes_equal(word, b'/');
        if slashes == 0 {
            return if next_nine[8] == b'/' { word } else { 0 };
        }
        let len = slashes.trailing_zeros() / 8;
        return word & ((1u64 << (8 * len)) - 1);
    }
    let mut packed = 0u64;
    for (index, byte) in path[1..].iter().enumerate() {
        if *byte == b'/' {
            break;
        }
        packed |= u64::from(*byte) << (8 * index);
    }
    packed
}

const ONES: u64 = 0x0101_0101_0101_0101;
const LOW_SEVEN: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// The high bit of every byte of `word` that equals `byte` (exact: no carries between bytes).
#[inline]
fn bytes_equal(word: u64, byte: u8) -> u64 {
    let difference = word ^ (ONES * u64::from(byte));
    !(((difference & LOW_SEVEN) + LOW_SEVEN) | difference | LOW_SEVEN)
}

/// `name` packed like [`packed_first_component`] does (for constants).
const fn pack(name: &[u8]) -> u64 {
    let mut packed = 0u64;
    let mut index = 0;
    while index < name.len() {
        packed |= (name[index] as u64) << (8 * index);
        index += 1;
    }
    packed
}

/// Whether a packed first component is a top-level directory that belongs to the local machine.
#[inline]
fn is_local_root(first: u64) -> bool {
    const PROC: u64 = pack(b"proc");
    const SYS: u64 = pack(b"sys");
    const DEV: u64 = pack(b"dev");
    const LIB: u64 = pack(b"lib");
    const LIB32: u64 = pack(b"lib32");
    const LIB64: u64 = pack(b"lib64");
    const LIBX32: u64 = pack(b"libx32");
    const USR: u64 = pack(b"usr");
    const BIN: u64 = pack(b"bin");
    const SBIN: u64 = pack(b"sbin");
    const TMP: u64 = pack(b"tmp");
    const RUN: u64 = pack(b"run");
    const NIX: u64 = pack(b"nix");
    const OPT: u64 = pack(b"opt");
    const SNAP: u64 = pack(b"snap");
    const BOOT: u64 = pack(b"boot");
    matches!(
        first,
        PROC | SYS
            | DEV
            | LIB
            | LIB32
            | LIB64
            | LIBX32
            | USR
            | BIN
            | SBIN
            | TMP
            | RUN
            | NIX
            | OPT
            | SNAP
            | BOOT
    )
}

/// A built-in rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Builtin {
    NeverVisible,
    RemoteReadOnly,
    Local,
}

/// Files under `/etc` (as `/name`) that are always read from the target.
const REMOTE_ETC_FILES: &[&[u8]] = &[b"/resolv.conf", b"/hosts", b"/hostname"];

/// Entries directly under `/etc` that belong to the local machine (the dynamic loader, users, locale and
/// time zone, TLS trust store, shell and language runtime settings).
const LOCAL_ETC_ENTRIES: &[&[u8]] = &[
    b"ld.so.cache",
    b"ld.so.preload",
    b"ld.so.conf",
    b"ld.so.conf.d",
    b"localtime",
    b"timezone",
    b"passwd",
    b"group",
    b"shadow",
    b"gshadow",
    b"nsswitch.conf",
    b"gai.conf",
    b"host.conf",
    b"services",
    b"protocols",
    b"ssl",
    b"pki",
    b"ca-certificates",
    b"ca-certificates.conf",
    b"alternatives",
    b"locale.alias",
    b"locale.conf",
    b"locale.gen",
    b"default",
    b"mime.types",
    b"mailcap",
    b"terminfo",
    b"inputrc",
    b"bash.bashrc",
    b"bash_completion",
    b"bash_completion.d",
    b"profile",
    b"profile.d",
    b"environment",
    b"xdg",
    b"fonts",
    b"selinux",
    b"os-release",
    b"lsb-release",
    b"debian_version",
    b"login.defs",
    b"security",
    b"pam.d",
    b"machine-id",
    b"crypto-policies",
    b"gitconfig",
    b"mtab",
    b"fstab",
    b"magic",
    b"subuid",
    b"subgid",
    b"npmrc",
    b"pip.conf",
    b"manpath.config",
    b"vim",
    b"zsh",
];

/// Prefixes of entry names under `/etc` that belong to the local machine (`python3.11`, `java-17-…`).
const LOCAL_ETC_PREFIXES: &[&[u8]] = &[b"python", b"java", b"jvm", b"node", b"ld.so", b"perl"];

/// Paths under `$HOME` (as `/…`) that must not be seen from the target's point of view: credentials of the
/// user's own cloud tools, which would make client libraries talk to the cluster as the user.
const NEVER_VISIBLE_IN_HOME: &[&[u8]] = &[b"/.kube", b"/.aws", b"/.azure", b"/.config/gcloud"];

/// Entries directly under `$HOME` that stay local: toolchains, package caches, shell and tool settings.
const LOCAL_IN_HOME: &[&[u8]] = &[
    b".cache",
    b".cargo",
    b".rustup",
    b".npm",
    b".npmrc",
    b".nvm",
    b".yarn",
    b".yarnrc",
    b".pnpm-store",
    b".node-gyp",
    b".node_repl_history",
    b".pyenv",
    b".python_history",
    b".pythonrc",
    b".ipython",
    b".jupyter",
    b".virtualenvs",
    b".conda",
    b".condarc",
    b".pip",
    b".pypirc",
    b".poetry",
    b".local",
    b".config",
    b".m2",
    b".gradle",
    b".sdkman",
    b".java",
    b".jdks",
    b".ivy2",
    b".sbt",
    b".gem",
    b".rbenv",
    b".rvm",
    b".bundle",
    b".asdf",
    b".volta",
    b".deno",
    b".bun",
    b".dotnet",
    b".nuget",
    b"go",
    b".bashrc",
    b".bash_profile",
    b".bash_history",
    b".profile",
    b".zshrc",
    b".inputrc",
    b".terminfo",
    b".gitconfig",
    b".git-credentials",
    b".ssh",
    b".netrc",
    b".pki",
    b".docker",
    b".vscode",
    b".vscode-server",
    b".idea",
    b".mirrord",
];

/// Directory names that stay local wherever they are: dependency trees, bytecode caches, toolchains.
const LOCAL_COMPONENTS: &[&[u8]] = &[
    b"node_modules",
    b"bower_components",
    b"site-packages",
    b"dist-packages",
    b"__pycache__",
    b".venv",
    b".tox",
    b".mypy_cache",
    b".pytest_cache",
    b".cargo",
    b".rustup",
    b".pyenv",
    b".npm",
    b".nvm",
    b".yarn",
    b".cache",
    b".m2",
    b".gradle",
    b".git",
];

/// File name endings of code, bytecode and shared objects.
const LOCAL_SUFFIXES: &[&[u8]] = &[
    b".so",
    b".pyc",
    b".pyo",
    b".pyi",
    b".pth",
    b".py",
    b".js",
    b".mjs",
    b".cjs",
    b".node",
    b".jar",
    b".class",
    b".jmod",
    b".egg-link",
];

/// Whether a file name is code or a shared object (`libfoo.so.1.2` too) or a virtualenv marker.
fn is_local_file_name(name: &[u8]) -> bool {
    if name == b"pyvenv.cfg" {
        return true;
    }
    if LOCAL_SUFFIXES.iter().any(|suffix| name.ends_with(suffix)) {
        return true;
    }
    // `libfoo.so.1.2.3`
    find(name, b".so.").is_some_and(|at| {
        name[at + 4..]
            .iter()
            .all(|byte| byte.is_ascii_digit() || *byte == b'.')
    })
}

/// `/first/rest…` → (`first`, `/rest…`); for `/first` → (`first`, ``).
fn split_first_component(path: &[u8]) -> (&[u8], &[u8]) {
    let path = path.strip_prefix(b"/").unwrap_or(path);
    match path.iter().position(|byte| *byte == b'/') {
        Some(at) => (&path[..at], &path[at..]),
        None => (path, &[]),
    }
}

/// The last component.
fn file_name(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|byte| *byte == b'/') {
        Some(at) => &path[at + 1..],
        None => path,
    }
}

/// Whether `path` is `dir` or inside it.
fn has_dir_prefix(path: &[u8], dir: &[u8]) -> bool {
    strip_dir_prefix(path, dir).is_some()
}

/// `path` relative to `dir` (starting with `/`, or empty for `dir` itself), when it is inside it.
fn strip_dir_prefix<'a>(path: &'a [u8], dir: &[u8]) -> Option<&'a [u8]> {
    let dir = dir.strip_suffix(b"/").unwrap_or(dir);
    let rest = path.strip_prefix(dir)?;
    (rest.is_empty() || rest[0] == b'/').then_some(rest)
}

/// Whether some component of `path` is exactly `name`.
fn contains_component(path: &[u8], name: &[u8]) -> bool {
    path.split(|byte| *byte == b'/')
        .any(|component| component == name)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// `path` made absolute against `cwd` (an absolute path is returned as it is).
pub(crate) fn absolute<'a>(path: &'a [u8], cwd: &[u8]) -> Cow<'a, [u8]> {
    if path.first() == Some(&b'/') {
        return Cow::Borrowed(path);
    }
    let mut joined = Vec::with_capacity(cwd.len() + 1 + path.len());
    joined.extend_from_slice(cwd);
    if !cwd.ends_with(b"/") {
        joined.push(b'/');
    }
    joined.extend_from_slice(path);
    Cow::Owned(joined)
}

/// Removes `.` components, empty components and trailing slashes, and resolves `..` lexically (never
/// above `/`). Borrows when there is nothing to do, which is the common case.
pub(crate) fn normalize(path: &[u8]) -> Cow<'_, [u8]> {
    if is_normal(path) {
        return Cow::Borrowed(path);
    }
    let absolute = path.first() == Some(&b'/');
    let mut components: Vec<&[u8]> = Vec::new();
    for component in path.split(|byte| *byte == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                if components.pop().is_none() && !absolute {
                    components.push(b"..");
                }
            }
            other => components.push(other),
        }
    }
    let mut normal = Vec::with_capacity(path.len());
    for (index, component) in components.iter().enumerate() {
        if absolute || index > 0 {
            normal.push(b'/');
        }
        normal.extend_from_slice(component);
    }
    if normal.is_empty() {
        normal.push(if absolute { b'/' } else { b'.' });
    }
    Cow::Owned(normal)
}

/// Whether `normalize` has nothing to do: no empty, `.` or `..` component and no trailing slash.
///
/// This runs for every path argument, so it looks at many bytes at a time for a `/` followed by `/` or
/// `.` (blocks overlap by one byte so that every adjacent pair is seen) and checks only those places.
#[inline]
fn is_normal(path: &[u8]) -> bool {
    let len = path.len();
    if len > 1 && path[len - 1] == b'/' {
        return false;
    }
    if path.first() == Some(&b'.') && !component_is_plain(path, 0) {
        return false;
    }
    if len < 8 {
        return path.windows(2).enumerate().all(|(index, pair)| {
            pair[0] != b'/' || !matches!(pair[1], b'/' | b'.') || {
                pair[1] == b'.' && component_is_plain(path, index + 1)
            }
        });
    }
    if len < BLOCK {
        // Two overlapping words cover every adjacent pair.
        let word = |start: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&path[start..start + 8]);
            u64::from_le_bytes(bytes)
        };
        return word_pairs_are_plain(path, 0, word(0))
            && word_pairs_are_plain(path, len - 8, word(len - 8));
    }
    let mut offset = 0;
    loop {
        let start = offset.min(len - BLOCK);
        let Ok(block) = <&[u8; BLOCK]>::try_from(&path[start..start + BLOCK]) else {
            return false;
        };
        if !pairs_are_plain(path, start, block) {
            return false;
        }
        if start == len - BLOCK {
            return true;
        }
        offset += BLOCK - 1;
    }
}

/// How many bytes `pairs_are_plain` looks at at once.
const BLOCK: usize = 16;

/// Bit `i` set when `block[i]` is `/` and `block[i + 1]` is `/` or `.`.
#[cfg(target_arch = "x86_64")]
#[inline]
fn slash_pairs(block: &[u8; BLOCK]) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of every x86-64 processor (the target's baseline); `block` is 16 readable
    // bytes and the unaligned load has no alignment requirement.
    let (slash_mask, follower_mask) = unsafe {
        let bytes = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        let slashes = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'/' as i8));
        let dots = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'.' as i8));
        (
            _mm_movemask_epi8(slashes) as u32,
            _mm_movemask_epi8(_mm_or_si128(slashes, dots)) as u32,
        )
    };
    slash_mask & (follower_mask >> 1)
}

/// Bit `i` set when `block[i]` is `/` and `block[i + 1]` is `/` or `.`.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn slash_pairs(block: &[u8; BLOCK]) -> u32 {
    let mut pairs = 0;
    for index in 0..BLOCK - 1 {
        if block[index] == b'/' && matches!(block[index + 1], b'/' | b'.') {
            pairs |= 1 << index;
        }
    }
    pairs
}

/// Checks the `/` + (`/` or `.`) pairs inside the 8 bytes of `word` (read from `path` at `start`).
#[inline]
fn word_pairs_are_plain(path: &[u8], start: usize, word: u64) -> bool {
    let slashes = bytes_equal(word, b'/');
    let followers = slashes | bytes_equal(word, b'.');
    let mut pairs = slashes & (followers >> 8);
    while pairs != 0 {
        let index = start + (pairs.trailing_zeros() / 8) as usize;
        pairs &= pairs - 1;
        if path[index + 1] == b'/' || !component_is_plain(path, index + 1) {
            return false;
        }
    }
    true
}

/// Checks the `/` + (`/` or `.`) pairs inside `block` (read from `path` at `start`).
#[inline]
fn pairs_are_plain(path: &[u8], start: usize, block: &[u8; BLOCK]) -> bool {
    let mut pairs = slash_pairs(block);
    while pairs != 0 {
        let index = start + pairs.trailing_zeros() as usize;
        pairs &= pairs - 1;
        if path[index + 1] == b'/' || !component_is_plain(path, index + 1) {
            return false;
        }
    }
    true
}

/// Whether the component starting at `at` (with a dot) is a name rather than `.` or `..`.
fn component_is_plain(path: &[u8], at: usize) -> bool {
    let rest = &path[at..];
    let end = rest
        .iter()
        .position(|byte| *byte == b'/')
        .unwrap_or(rest.len());
    !matches!(&rest[..end], b"." | b"..")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn config(mode: FsMode) -> FsConfig {
        FsConfig {
            mode,
            read_write: Vec::new(),
            read_only: Vec::new(),
            local: Vec::new(),
            not_found: Vec::new(),
            mapping: BTreeMap::new(),
            readonly_file_buffer: 128_000,
            native_fds: true,
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
    fn normalize_resolves_dots_and_slashes() {
        let cases: &[(&str, &str)] = &[
            ("/app/config.yaml", "/app/config.yaml"),
            ("/", "/"),
            ("/app//x", "/app/x"),
            ("/app/./x", "/app/x"),
            ("/app/../etc/x", "/etc/x"),
            ("/../../etc", "/etc"),
            ("/app/x/", "/app/x"),
            ("/app/.hidden/x", "/app/.hidden/x"),
            ("/app/..hidden", "/app/..hidden"),
            ("/app/x/..", "/app"),
            ("/..", "/"),
            ("a/../../b", "../b"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                String::from_utf8_lossy(&normalize(input.as_bytes())),
                *expected,
                "{input}"
            );
        }
        assert!(matches!(normalize(b"/usr/lib/x.so"), Cow::Borrowed(_)));
    }

    /// The plain definition `is_normal` must agree with.
    fn is_normal_reference(path: &[u8]) -> bool {
        if path.len() > 1 && path.ends_with(b"/") {
            return false;
        }
        let components: Vec<&[u8]> = path.split(|byte| *byte == b'/').collect();
        components.iter().enumerate().all(|(index, component)| {
            let empty_ok = index == 0 || (path == b"/" && index == 1);
            (!component.is_empty() || empty_ok) && *component != b"." && *component != b".."
        })
    }

    #[test]
    fn is_normal_agrees_with_its_definition_across_word_boundaries() {
        let parts: [&[u8]; 8] = [
            b"",
            b".",
            b"..",
            b".hidden",
            b"..x",
            b"a",
            b"abcdefghij",
            b"lib.so",
        ];
        let mut checked = 0;
        for first in parts {
            for second in parts {
                for third in parts {
                    for prefix in [&b""[..], b"/", b"/usr", b"/1234567"] {
                        let path = [prefix, first, second, third].join(&b'/');
                        for candidate in [path.clone(), [path.as_slice(), b"/"].concat()] {
                            assert_eq!(
                                is_normal(&candidate),
                                is_normal_reference(&candidate),
                                "{}",
                                String::from_utf8_lossy(&candidate)
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 4000);
    }

    #[test]
    fn first_components_pack_only_when_short() {
        assert_eq!(packed_first_component(b"/usr/lib"), pack(b"usr"));
        assert_eq!(packed_first_component(b"/usr"), pack(b"usr"));
        assert_eq!(packed_first_component(b"/abcdefgh/x"), pack(b"abcdefgh"));
        assert_eq!(packed_first_component(b"/abcdefghi/x"), 0);
        assert_eq!(packed_first_component(b"/"), 0);
        assert_eq!(packed_first_component(b"usr/lib"), 0);
        assert!(!is_local_root(0));
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

    #[test]
    fn relative_paths_join_the_working_directory() {
        assert_eq!(absolute(b"a/b", b"/srv").as_ref(), b"/srv/a/b");
        assert_eq!(absolute(b"a", b"/").as_ref(), b"/a");
        assert_eq!(absolute(b"/x", b"/srv").as_ref(), b"/x");
    }
}
