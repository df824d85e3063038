//! Where `get`, `list` and `watch` read experiments from: a `kestrel serve` server when
//! `--server` is given, else the local store (opened read-only).

use kestrel_core::{ExperimentRecord, TrialRecord};

use crate::cmd::UsageError;
use crate::formats::Logs;
use crate::remote::{self, ServerArgs};
use crate::store::StoreArgs;

/// Settles where a command reads from when both a store and a server are named: a flag
/// beats an environment variable (`--store DIR` with `KESTREL_SERVER` set reads the
/// store), and `--store` with `--server` is refused rather than one silently ignored.
pub fn settle(store: &StoreArgs, server: &mut ServerArgs) -> anyhow::Result<()> {
    let (Some(dir), Some(url)) = (&store.store, &server.server) else {
        return Ok(());
    };
    let from_env = std::env::var("KESTREL_SERVER").is_ok_and(|v| &v == url);
    if from_env {
        server.server = None;
        return Ok(());
    }
    Err(UsageError(format!(
        "both --store {} and --server {url} were given: use one",
        dir.display()
    ))
    .into())
}

/// Every report of `trials`, by trial name, from the store or the server.
pub fn observation_logs(
    store: &StoreArgs,
    server: &ServerArgs,
    trials: &[TrialRecord],
) -> anyhow::Result<Logs> {
    let names: Vec<String> = trials.iter().map(|t| t.name.clone()).collect();
    if server.server.is_some() {
        let rt = remote::runtime()?;
        return rt.block_on(remote::observation_logs(server, &names));
    }
    let (store, _) = store.open_read_only()?;
    let mut all = Logs::new();
    if let Some(store) = store {
        for n in names {
            let logs = store.metrics(&n, None)?;
            all.insert(n, logs);
        }
    }
    Ok(all)
}

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

/// The newest numeric value of the objective metric of each running trial without an
/// objective yet, by trial name (empty when the reports cannot be read).
pub fn running_latest(
    store: &StoreArgs,
    server: &ServerArgs,
    exp: &kestrel_core::Experiment,
    trials: &[TrialRecord],
) -> std::collections::BTreeMap<String, f64> {
    let running: Vec<TrialRecord> = trials
        .iter()
        .filter(|t| t.state == kestrel_core::TrialState::Running && t.objective.is_none())
        .cloned()
        .collect();
    if running.is_empty() {
        return Default::default();
    }
    let logs = observation_logs(store, server, &running).unwrap_or_default();
    logs.into_iter()
        .filter_map(|(name, logs)| {
            let v = logs
                .iter()
                .rev()
                .filter(|l| l.name == exp.objective.metric)
                .find_map(|l| l.number())?;
            Some((name, v))
        })
        .collect()
}
