//! Prints a resolved config as JSON for `MIRRORD_RESOLVED_CONFIG`: the defaults, with
//! `feature.fs.mode` set from the first argument when given (used by `benches/layer_local_calls.sh`).

// Printing the config is what this example is for.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use mirrord_config::{ResolvedConfig, file::FsMode};

fn main() {
    let mut config = ResolvedConfig::default();
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("local") => config.feature.fs.mode = FsMode::Local,
        Some("localwithoverrides") => config.feature.fs.mode = FsMode::Localwithoverrides,
        Some("read") => config.feature.fs.mode = FsMode::Read,
        Some("write") => config.feature.fs.mode = FsMode::Write,
        Some(other) => {
            eprintln!("unknown fs mode {other:?}: use local, localwithoverrides, read or write");
            std::process::exit(2);
        }
    }
    println!("{}", config.to_json());
}
