//! The built-in tables of the file policy: which top-level directories, `/etc` entries, home
//! directory entries, path components and file names belong to the local machine, and the byte
//! helpers that look paths up in them without allocating.

/// The first component of an absolute path packed into a `u64` (little-endian, zero-padded), or 0 when
/// it is longer than 8 bytes or the path is not absolute.
#[inline]
pub(super) fn packed_first_component(path: &[u8]) -> u64 {
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

pub(super) const ONES: u64 = 0x0101_0101_0101_0101;
pub(super) const LOW_SEVEN: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// The high bit of every byte of `word` that equals `byte` (exact: no carries between bytes).
#[inline]
pub(super) fn bytes_equal(word: u64, byte: u8) -> u64 {
    let difference = word ^ (ONES * u64::from(byte));
    !(((difference & LOW_SEVEN) + LOW_SEVEN) | difference | LOW_SEVEN)
}

/// `name` packed like [`packed_first_component`] does (for constants).
pub(super) const fn pack(name: &[u8]) -> u64 {
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
pub(super) fn is_local_root(first: u64) -> bool {
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
pub(super) enum Builtin {
    NeverVisible,
    RemoteReadOnly,
    Local,
}

/// Files under `/etc` (as `/name`) that are always read from the target.
pub(super) const REMOTE_ETC_FILES: &[&[u8]] = &[b"/resolv.conf", b"/hosts", b"/hostname"];

/// Entries directly under `/etc` that belong to the local machine (the dynamic loader, users, locale and
/// time zone, TLS trust store, shell and language runtime settings).
pub(super) const LOCAL_ETC_ENTRIES: &[&[u8]] = &[
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
pub(super) const LOCAL_ETC_PREFIXES: &[&[u8]] =
    &[b"python", b"java", b"jvm", b"node", b"ld.so", b"perl"];

/// Paths under `$HOME` (as `/…`) that must not be seen from the target's point of view: credentials of the
/// user's own cloud tools, which would make client libraries talk to the cluster as the user.
pub(super) const NEVER_VISIBLE_IN_HOME: &[&[u8]] =
    &[b"/.kube", b"/.aws", b"/.azure", b"/.config/gcloud"];

/// Entries directly under `$HOME` that stay local: toolchains, package caches, shell and tool settings.
pub(super) const LOCAL_IN_HOME: &[&[u8]] = &[
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
pub(super) const LOCAL_COMPONENTS: &[&[u8]] = &[
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
pub(super) const LOCAL_SUFFIXES: &[&[u8]] = &[
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
pub(super) fn is_local_file_name(name: &[u8]) -> bool {
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
pub(super) fn split_first_component(path: &[u8]) -> (&[u8], &[u8]) {
    let path = path.strip_prefix(b"/").unwrap_or(path);
    match path.iter().position(|byte| *byte == b'/') {
        Some(at) => (&path[..at], &path[at..]),
        None => (path, &[]),
    }
}

/// The last component.
pub(super) fn file_name(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|byte| *byte == b'/') {
        Some(at) => &path[at + 1..],
        None => path,
    }
}

/// Whether `path` is `dir` or inside it.
pub(super) fn has_dir_prefix(path: &[u8], dir: &[u8]) -> bool {
    strip_dir_prefix(path, dir).is_some()
}

/// `path` relative to `dir` (starting with `/`, or empty for `dir` itself), when it is inside it.
pub(super) fn strip_dir_prefix<'a>(path: &'a [u8], dir: &[u8]) -> Option<&'a [u8]> {
    let dir = dir.strip_suffix(b"/").unwrap_or(dir);
    let rest = path.strip_prefix(dir)?;
    (rest.is_empty() || rest[0] == b'/').then_some(rest)
}

/// Whether some component of `path` is exactly `name`.
pub(super) fn contains_component(path: &[u8], name: &[u8]) -> bool {
    path.split(|byte| *byte == b'/')
        .any(|component| component == name)
}

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
