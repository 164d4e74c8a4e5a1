//! `mirrord supervise -- PROGRAM ARG...` (hidden): runs PROGRAM on the system-call path in a
//! session that was started elsewhere — by the IDE sidecar for a Go launch — and is described by
//! the variables the session puts in a launch's environment (the intproxy's address, the token,
//! the agent's descriptor socket, the resolved config), the same ones the layer reads.
//!
//! The IDE points the Go extension's `dlvToolPath` at a wrapper that runs `dlv` through this
//! command: `dlv` and the tools it starts are named in the config's `skip_processes` (and build
//! tools), so their calls run untouched, while the debuggee — `dlv`'s ptraced child, which
//! inherits the filter — sees the target. The layer is taken out of `LD_PRELOAD`, so no call is
//! handled twice.

use std::{
    collections::BTreeMap,
    ffi::{OsStr, OsString},
    path::Path,
};

use mirrord_config::ResolvedConfig;
use mirrord_session::{
    LAYER_AGENT_FDS_ENV, LAYER_INTPROXY_ADDR_ENV, LAYER_TOKEN_ENV, RESOLVED_CONFIG_ENV,
};
use mirrord_supervisor::Endpoints;

use crate::exit::{Outcome, report_error};

/// The file name of the layer library, taken out of `LD_PRELOAD`.
const LAYER_FILE_NAME: &str = "libmirrord_layer.so";

#[derive(Debug, clap::Args)]
pub(crate) struct SuperviseArgs {
    /// The program to run and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<OsString>,
}

/// The session described by the environment, or what is missing from it.
fn session_from_environment(
    variable: impl Fn(&str) -> Option<String>,
) -> Result<(ResolvedConfig, Endpoints), String> {
    let required = |name: &str| {
        variable(name).ok_or_else(|| {
            format!("${name} is not set: `mirrord supervise` runs in an environment a mirrord session made (a launch patched by the IDE)")
        })
    };
    let config = ResolvedConfig::from_json(&required(RESOLVED_CONFIG_ENV)?)
        .map_err(|error| format!("${RESOLVED_CONFIG_ENV} does not parse: {error}"))?;
    let intproxy = required(LAYER_INTPROXY_ADDR_ENV)?;
    let intproxy = intproxy.parse().map_err(|error| {
        format!("${LAYER_INTPROXY_ADDR_ENV} ({intproxy}) is not an address: {error}")
    })?;
    let token = required(LAYER_TOKEN_ENV)?
        .parse()
        .map_err(|error| format!("${LAYER_TOKEN_ENV} is not a session token: {error}"))?;
    let agent_fds = variable(LAYER_AGENT_FDS_ENV).filter(|_| config.feature.fs.native_fds);
    Ok((
        config,
        Endpoints {
            intproxy,
            token,
            agent_fds,
        },
    ))
}

/// The layer's path as `LD_PRELOAD` names it, if it does.
fn preloaded_layer(environment: &BTreeMap<OsString, OsString>) -> Option<String> {
    let preload = environment.get(OsStr::new("LD_PRELOAD"))?.to_str()?;
    preload
        .split([':', ' '])
        .find(|entry| Path::new(entry).file_name() == Some(OsStr::new(LAYER_FILE_NAME)))
        .map(str::to_owned)
}

#[allow(clippy::print_stderr, reason = "progress is for the user, on stderr")]
pub(crate) fn run(args: SuperviseArgs) -> Outcome {
    let mut environment: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
    let (config, endpoints) = match session_from_environment(|name| {
        std::env::var_os(name).and_then(|value| value.into_string().ok())
    }) {
        Ok(session) => session,
        Err(message) => {
            report_error(&message, None);
            return Outcome::Failure;
        }
    };
    if let Some(layer) = preloaded_layer(&environment) {
        crate::syscall_exec::remove_layer(&mut environment, Path::new(&layer));
    }
    let (program, arguments) = args.command.split_first().expect("clap requires a command");
    let Some(found) =
        mirrord_supervisor::resolve(Path::new(program), std::env::var_os("PATH").as_deref())
    else {
        report_error(
            &format!("`{}` is not found", program.to_string_lossy()),
            None,
        );
        return Outcome::Exit(127);
    };
    if let Err(error) = mirrord_supervisor::check_kernel() {
        report_error(
            &format!(
                "`{}` cannot run on the system-call path: {error}",
                program.to_string_lossy()
            ),
            None,
        );
        return Outcome::Failure;
    }
    eprintln!(
        "mirrord: `{}` runs under the system-call supervisor; its own calls stay local (skip_processes), the programs it runs see {}",
        program.to_string_lossy(),
        config.target
    );
    crate::syscall_exec::supervise(found, arguments, environment, &config, endpoints)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_comes_from_the_launch_environment() {
        let config = mirrord_config::load_without_file(&mirrord_config::Overrides::default())
            .config
            .unwrap();
        let token = "ab".repeat(32);
        let variables = BTreeMap::from([
            (RESOLVED_CONFIG_ENV, config.to_json()),
            (LAYER_INTPROXY_ADDR_ENV, "127.0.0.1:4000".to_owned()),
            (LAYER_TOKEN_ENV, token.clone()),
        ]);
        let (resolved, endpoints) =
            session_from_environment(|name| variables.get(name).cloned()).unwrap();
        assert_eq!(resolved, config);
        assert_eq!(endpoints.intproxy.to_string(), "127.0.0.1:4000");
        assert_eq!(endpoints.token.to_string(), token);
        let missing = session_from_environment(|_| None).unwrap_err();
        assert!(missing.contains(RESOLVED_CONFIG_ENV), "{missing}");
    }

    #[test]
    fn the_layer_is_found_in_ld_preload_by_its_file_name() {
        let environment = BTreeMap::from([(
            OsString::from("LD_PRELOAD"),
            OsString::from("/usr/lib/other.so:/opt/m/libmirrord_layer.so"),
        )]);
        assert_eq!(
            preloaded_layer(&environment).as_deref(),
            Some("/opt/m/libmirrord_layer.so")
        );
    }
}
