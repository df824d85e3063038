//! `kestrel delete NAME`: remove an experiment, its trials, metrics and trial directories,
//! from the local store or, with `--server` (or `KESTREL_SERVER`), from that server.

use std::process::ExitCode;

use anyhow::Context;

use kestrel_proto::manager as pb;

use crate::remote::{self, ServerArgs};
use crate::store::StoreArgs;

/// Arguments of `kestrel delete`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Experiment name.
    pub name: String,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    server: ServerArgs,
}

/// Deletes the experiment.
pub fn run(mut a: Args) -> anyhow::Result<ExitCode> {
    kestrel_core::validate::experiment_name(&a.name).map_err(super::UsageError)?;
    crate::source::settle(&a.store, &mut a.server)?;
    if a.server.server.is_some() {
        let rt = remote::runtime()?;
        rt.block_on(async {
            let mut c = remote::connect(&a.server).await?;
            c.delete_experiment(pb::ExperimentRef {
                name: a.name.clone(),
            })
            .await
            .map_err(remote::status_error)
        })?;
        out!(
            "deleted experiment {} on {}",
            a.name,
            a.server.server.as_deref().unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    delete_local(&a.store, &a.name)?;
    out!("deleted experiment {}", a.name);
    Ok(ExitCode::SUCCESS)
}

/// Deletes `name` from the local store with its trial directories; refused while a
/// process runs it.
pub fn delete_local(store: &StoreArgs, name: &str) -> anyhow::Result<()> {
    let (store, dir) = store.open()?;
    super::require(store.experiment(name)?, name, &dir)?;
    if let Some(h) = kestrel_controller::lease::live_holder(&*store, name)? {
        return Err(super::UsageError(format!(
            "experiment {name:?} is being run by {}; stop it first",
            kestrel_controller::lease::describe(&h)
        ))
        .into());
    }
    store.delete_experiment(name)?;
    let runs = kestrel_controller::paths::experiment_dir(&dir.join("runs"), name)
        .context("the experiment's directory")?;
    if runs.exists() {
        std::fs::remove_dir_all(&runs).with_context(|| format!("removing {}", runs.display()))?;
    }
    Ok(())
}
