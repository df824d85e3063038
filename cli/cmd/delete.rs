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
    kestrel_core::validate::experiment_name(&a.name).map_err(super::UsageError)?;
    let (store, dir) = a.store.open()?;
    super::require(store.experiment(&a.name)?, &a.name, &dir)?;
    if let Some(h) = kestrel_controller::lease::live_holder(&*store, &a.name)? {
        return Err(super::UsageError(format!(
            "experiment {:?} is being run by {}; stop it first",
            a.name,
            kestrel_controller::lease::describe(&h)
        ))
        .into());
    }
    store.delete_experiment(&a.name)?;
    let runs = kestrel_controller::paths::experiment_dir(&dir.join("runs"), &a.name)
        .context("the experiment's directory")?;
    if runs.exists() {
        std::fs::remove_dir_all(&runs).with_context(|| format!("removing {}", runs.display()))?;
    }
    out!("deleted experiment {}", a.name);
    Ok(ExitCode::SUCCESS)
}
