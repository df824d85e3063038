//! `kestrel submit FILE --server URL`: validate an experiment here, then hand it to a
//! `kestrel serve` server, which runs it. Relative paths in the trial command resolve
//! against the file's directory on the server's machine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use kestrel_proto::manager as pb;

use super::UsageError;
use crate::remote::{self, ServerArgs};

/// Arguments of `kestrel submit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Katib Experiment YAML file.
    pub file: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
    /// Seed of the search (default: the algorithm's random_state, else random).
    #[arg(long)]
    seed: Option<u64>,
    /// Store the experiment under this name instead of metadata.name.
    #[arg(long)]
    name: Option<String>,
}

/// Submits the experiment.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let Some(url) = a.server.server.clone() else {
        return Err(UsageError(
            "submit needs a server: --server URL or KESTREL_SERVER (start one with `kestrel serve`)"
                .into(),
        )
        .into());
    };
    // Checked here as a Katib experiment; what the server's executor cannot run, the
    // server says.
    let (_, source) = super::load_experiment(&a.file)?;
    let base_dir = a
        .file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .canonicalize()
        .with_context(|| format!("resolving the directory of {}", a.file.display()))?;
    let rt = remote::runtime()?;
    let info = rt.block_on(async {
        let mut c = remote::connect(&a.server).await?;
        c.create_experiment(pb::CreateExperimentRequest {
            yaml: source,
            base_dir: base_dir.display().to_string(),
            seed: a.seed,
            name: a.name.clone().unwrap_or_default(),
        })
        .await
        .map_err(remote::status_error)
        .map(tonic::Response::into_inner)
    })?;
    print_submitted(&info, &url)?;
    Ok(ExitCode::SUCCESS)
}

/// What the server did: a new experiment, or a stored one continued with its trials.
pub fn print_submitted(info: &pb::ExperimentInfo, url: &str) -> anyhow::Result<()> {
    let kept = info.counts.as_ref().map_or(0, |c| {
        c.created
            + c.running
            + c.succeeded
            + c.failed
            + c.killed
            + c.metrics_unavailable
            + c.early_stopped
    });
    if kept > 0 {
        out!(
            "experiment {} continues ({}, {} trials kept); watch it with: kestrel watch {} --server {url}",
            info.name,
            info.state,
            kept,
            info.name
        );
    } else {
        out!(
            "submitted experiment {} (seed {}); watch it with: kestrel watch {} --server {url}",
            info.name,
            info.seed,
            info.name
        );
    }
    Ok(())
}
