//! `kestrel delete NAME`: remove an experiment, its trials, metrics and trial directories.

use std::process::ExitCode;

use anyhow::Context;

use crate::store::StoreArgs;

/// Arguments of `kestrel delete`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Experiment name.
    pub name: String,
    #[command(flatten)]
    store: StoreArgs,
}

/// Deletes the experiment.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let (store, dir) = a.store.open()?;
    let rec = super::require(store.experiment(&a.name)?, &a.name, &dir)?;
    if !rec.status.state.is_terminal() {
        eprintln!(
            "warning: {} is {}; if a kestrel process is still running it, stop that first",
            a.name, rec.status.state
        );
    }
    store.delete_experiment(&a.name)?;
    let runs = dir.join("runs").join(&a.name);
    if runs.exists() {
        std::fs::remove_dir_all(&runs).with_context(|| format!("removing {}", runs.display()))?;
    }
    out!("deleted experiment {}", a.name);
    Ok(ExitCode::SUCCESS)
}
