//! Where `get`, `list` and `watch` read experiments from: a `kestrel serve` server when
//! `--server` is given, else the local store (opened read-only).

use kestrel_core::{ExperimentRecord, TrialRecord};

use crate::remote::{self, ServerArgs};
use crate::store::StoreArgs;

/// An experiment and its trials.
pub type Snapshot = (ExperimentRecord, Vec<TrialRecord>);

/// One experiment with its trials.
pub fn experiment(store: &StoreArgs, server: &ServerArgs, name: &str) -> anyhow::Result<Snapshot> {
    if server.server.is_some() {
        let rt = remote::runtime()?;
        return rt.block_on(async {
            let mut c = remote::connect(server).await?;
            remote::get(&mut c, name).await
        });
    }
    let (store, dir) = store.open_read_only()?;
    let Some(store) = store else {
        return crate::cmd::require(None, name, &dir);
    };
    let rec = crate::cmd::require(store.experiment(name)?, name, &dir)?;
    let trials = store.trials(name)?;
    Ok((rec, trials))
}

/// Every experiment with its trials, and where they came from (for messages).
pub fn experiments(
    store: &StoreArgs,
    server: &ServerArgs,
) -> anyhow::Result<(Vec<Snapshot>, String)> {
    if let Some(url) = &server.server {
        let rt = remote::runtime()?;
        let all = rt.block_on(async {
            let mut c = remote::connect(server).await?;
            remote::list(&mut c).await
        })?;
        return Ok((all, url.clone()));
    }
    let (store, dir) = store.open_read_only()?;
    let mut all = Vec::new();
    let Some(store) = store else {
        return Ok((all, dir.display().to_string()));
    };
    for rec in store.experiments()? {
        let trials = store.trials(rec.name())?;
        all.push((rec, trials));
    }
    Ok((all, dir.display().to_string()))
}
