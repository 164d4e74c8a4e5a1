//! `mirrord ls`: the targets mirrord can run against — the cluster's pods, deployments,
//! statefulsets, replicasets, jobs, cronjobs and Argo rollouts in one namespace, or the running
//! sandbox pods when no cluster is configured (said in one line on stderr, never an error).

use std::io::Write;
use std::path::PathBuf;

use mirrord_config::resolved::KubeResource;
use mirrord_config::{Overrides, discover};
use mirrord_kube::ListOptions;

use crate::exit::{Outcome, report_error};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutputFormat {
    /// A table for people.
    Text,
    /// `{targets: [{path, kind, namespace, available}], currentNamespace, namespaces}`.
    Json,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  mirrord ls\n  mirrord ls --namespace staging --kind deployment --kind rollout\n  mirrord ls --output json"
)]
pub(crate) struct LsArgs {
    /// The namespace to list (default: the config's `target.namespace`, then the kubeconfig's).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Only these kinds: pod, deployment, rollout, statefulset, replicaset, job, cronjob.
    #[arg(long = "kind", value_parser = parse_kind, value_delimiter = ',')]
    kinds: Vec<KubeResource>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    output: OutputFormat,
    /// The config file (default: $MIRRORD_CONFIG_FILE, then .mirrord/mirrord.{json,toml,yaml}).
    #[arg(short = 'f', long)]
    config_file: Option<PathBuf>,
}

fn parse_kind(text: &str) -> Result<KubeResource, String> {
    mirrord_kube::LISTED_KINDS
        .into_iter()
        .find(|kind| kind.as_str() == text.trim().to_ascii_lowercase().trim_end_matches('s'))
        .ok_or_else(|| {
            let kinds: Vec<&str> = mirrord_kube::LISTED_KINDS
                .iter()
                .map(|k| k.as_str())
                .collect();
            format!("unknown kind `{text}`; one of {}", kinds.join(", "))
        })
}

pub(crate) fn run(args: LsArgs) -> Outcome {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let source = discover::find_config(
        args.config_file.as_deref(),
        std::env::var("MIRRORD_CONFIG_FILE").ok().as_deref(),
        &cwd,
    );
    let (overrides, _) = Overrides::from_env(|name| std::env::var(name).ok());
    let loaded = match &source {
        Some(source) => match mirrord_config::load_file(source.path(), &overrides) {
            Ok(loaded) => loaded,
            Err(error) => {
                report_error(&error.to_string(), None);
                return Outcome::UsageOrIo;
            }
        },
        None => mirrord_config::load_without_file(&overrides),
    };
    let Some(config) = loaded.config else {
        report_error(
            "the config has errors",
            Some("`mirrord verify-config FILE` shows them"),
        );
        return Outcome::Failure;
    };
    let options = ListOptions {
        namespace: args.namespace.clone(),
        kinds: args.kinds.clone(),
        page_size: None,
    };
    let listed = match mirrord_session::list_targets(&config, options) {
        Ok(listed) => listed,
        Err(error) => {
            report_error(&error.to_string(), error.help().as_deref());
            return Outcome::Failure;
        }
    };
    if let Some(note) = &listed.note {
        note_on_stderr(note);
    }
    for warning in &listed.listing.warnings {
        note_on_stderr(&format!("warning: {warning}"));
    }
    let printed = match args.output {
        OutputFormat::Json => {
            let json = serde_json::to_string_pretty(&listed.listing).expect("a listing serializes");
            print_out(&json)
        }
        OutputFormat::Text => print_out(&table(&listed.listing)),
    };
    match printed {
        Ok(()) => Outcome::Success,
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Outcome::Success,
        Err(error) => {
            report_error(&format!("cannot write the listing: {error}"), None);
            Outcome::UsageOrIo
        }
    }
}

fn table(listing: &mirrord_kube::TargetListing) -> String {
    if listing.targets.is_empty() {
        return match listing.current_namespace.as_str() {
            "" => "no targets".to_owned(),
            namespace => format!("no targets in namespace {namespace}"),
        };
    }
    let rows: Vec<[&str; 4]> = listing
        .targets
        .iter()
        .map(|t| {
            [
                t.path.as_str(),
                t.kind.as_str(),
                if t.namespace.is_empty() {
                    "-"
                } else {
                    t.namespace.as_str()
                },
                if t.available { "yes" } else { "no" },
            ]
        })
        .collect();
    let header = ["TARGET", "KIND", "NAMESPACE", "AVAILABLE"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: [&str; 4]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut text = line(header);
    for row in rows {
        text.push('\n');
        text.push_str(&line(row));
    }
    text
}

#[allow(clippy::print_stdout, reason = "the listing is the command's output")]
fn print_out(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()
}

#[allow(clippy::print_stderr, reason = "notes about the listing go to stderr")]
fn note_on_stderr(text: &str) {
    eprintln!("mirrord: {text}");
}
