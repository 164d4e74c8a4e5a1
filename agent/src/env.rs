//! The target's environment variables, read from `/proc/PID/environ` and filtered.

use mirrord_protocol::env::{EnvVar, GetEnvRequest};

/// Variables that describe the target's own machine or toolchain rather than its configuration;
/// copying them would break the local process. A client gets one only by naming it exactly in
/// `include`.
pub(crate) const BUILT_IN_EXCLUDES: &[&str] = &[
    "PATH",
    "HOME",
    "HOMEPATH",
    "PWD",
    "OLDPWD",
    "SHLVL",
    "_",
    "TERM",
    "SHELL",
    "USER",
    "LOGNAME",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "CLASSPATH",
    "JAVA_EXE",
    "JAVA_HOME",
    "JAVA_TOOL_OPTIONS",
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
    "GOPATH",
    "GOROOT",
    "NODE_PATH",
    "NODE_OPTIONS",
    "RUST_LOG",
    "CARGO_HOME",
    "RUSTUP_HOME",
];

/// Reads and filters the environment of process `pid` (this process's own when `None`).
pub(crate) fn target_env(
    pid: Option<u32>,
    request: &GetEnvRequest,
) -> std::io::Result<Vec<EnvVar>> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/environ"),
        None => "/proc/self/environ".to_owned(),
    };
    let raw = std::fs::read(path)?;
    Ok(select(&raw, request))
}

fn select(raw: &[u8], request: &GetEnvRequest) -> Vec<EnvVar> {
    raw.split(|&b| b == 0)
        .filter_map(|entry| {
            let text = String::from_utf8_lossy(entry);
            let (name, value) = text.split_once('=')?;
            Some(EnvVar {
                name: name.to_owned(),
                value: value.to_owned(),
            })
        })
        .filter(|var| !var.name.is_empty())
        .filter(|var| {
            let named_exactly = request.include.iter().any(|pattern| pattern == &var.name);
            let built_in =
                BUILT_IN_EXCLUDES.contains(&var.name.as_str()) || var.name.starts_with("MIRRORD_");
            (named_exactly || !built_in) && request.selects(&var.name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(request: GetEnvRequest) -> Vec<String> {
        let raw =
            b"PATH=/bin\0DATABASE_URL=pg://db\0PORT=80\0SECRET_KEY=x\0HOME=/root\0MIRRORD_X=1\0";
        select(raw, &request)
            .into_iter()
            .map(|var| var.name)
            .collect()
    }

    #[test]
    fn filters_like_mirrord() {
        assert_eq!(
            names(GetEnvRequest::default()),
            ["DATABASE_URL", "PORT", "SECRET_KEY"]
        );
        let exclude = GetEnvRequest {
            include: vec![],
            exclude: vec!["SECRET_*".into()],
        };
        assert_eq!(names(exclude), ["DATABASE_URL", "PORT"]);
        let include = GetEnvRequest {
            include: vec!["DATA*".into(), "PATH".into()],
            exclude: vec![],
        };
        assert_eq!(names(include), ["PATH", "DATABASE_URL"]);
    }
}
