//! `mirrord schema`: print the JSON Schema of the config file, exactly as committed in `schema/`.

use std::io::Write;

use crate::exit::{Outcome, report_error};

#[derive(Debug, clap::Args)]
pub(crate) struct SchemaArgs {}

pub(crate) fn run(_args: SchemaArgs) -> Outcome {
    let text = mirrord_config::schema::schema_string();
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => Outcome::Success,
        Err(error) => {
            report_error(&format!("cannot write the schema to stdout: {error}"), None);
            Outcome::UsageOrIo
        }
    }
}
