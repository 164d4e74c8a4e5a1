//! Any bytes, in each of the three formats, load into a config or into diagnostics: never a
//! panic, never unbounded allocation.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mirrord_config::{Format, Overrides, load_bytes};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let format = match selector % 3 {
        0 => Format::Json,
        1 => Format::Toml,
        _ => Format::Yaml,
    };
    let loaded = load_bytes(bytes, format, &Overrides::default());
    if loaded.config.is_none() {
        assert!(loaded.diagnostics.iter().any(|d| d.is_error()));
    }
});
