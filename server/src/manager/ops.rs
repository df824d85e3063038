//! The management operations behind the gRPC methods, also used in process (the
//! operator drives experiments from Kubernetes resources through them).

use std::path::PathBuf;

use kestrel_algorithms::Catalog;
use kestrel_controller::executor::DEFAULT_EXECUTOR;
use kestrel_controller::reconciler::preflight;
use kestrel_controller::resume::continued;
use kestrel_core::experiment::TemplateSource;
use kestrel_core::{ExperimentRecord, SpecError, Timestamp, TrialCounts, TrialRecord};
use tonic::Status;

use super::{ManagerService, blocking, store_status, until_true, valid_name};

impl ManagerService {
    /// Validates the experiment of `yaml` (stored as `name` when given), stores it and
    /// starts running it; `base_dir` is the submitter's directory (see the local
    /// executor).
    pub async fn submit(
        &self,
        yaml: String,
        name: Option<String>,
        seed: Option<u64>,
        base_dir: &str,
    ) -> Result<ExperimentRecord, Status> {
        let mut exp = match kestrel_core::parse_experiment(&yaml, &Catalog) {
            Ok(e) => e,
            Err(e @ SpecError::Invalid(_)) => return Err(Status::invalid_argument(e.to_string())),
            Err(e) => {
                return Err(Status::invalid_argument(format!("invalid Experiment: {e}")));
            }
        };
        preflight(&exp, &self.inner.cfg.executor)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if let Some(name) = name {
            valid_name(&name)?;
            exp.name = name;
        }
        // A template kept in the cluster (trialTemplate.configMap) is read once, now.
        let (exp, source) = kestrel_controller::executor::inline_template(
            self.inner.reconciler.executor().as_ref(),
            exp,
            yaml,
        )
        .await
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        // Relative paths in local trials resolve against the submitter's directory, which
        // must then be the server's; trials elsewhere (a cluster) do not use it.
        let base_dir = PathBuf::from(base_dir);
        let usable = base_dir.is_absolute() && base_dir.is_dir();
        if !usable && self.inner.cfg.executor == DEFAULT_EXECUTOR {
            return Err(Status::invalid_argument(format!(
                "base_dir: {:?} is not an absolute path to a directory on the server",
                base_dir
            )));
        }
        let base_dir = usable.then_some(base_dir);
        let seed = seed
            .or_else(|| kestrel_algorithms::registry::random_state(&exp.algorithm))
            .unwrap_or_else(rand::random);
        let rec = ExperimentRecord::new(exp, source, seed, base_dir, Timestamp::now());
        let store = self.inner.store.clone();
        let stored = rec.clone();
        blocking(move || match store.create_experiment(&stored) {
            Ok(()) => Ok(()),
            Err(kestrel_store::StoreError::Conflict(_)) => Err(Status::already_exists(format!(
                "experiment {:?} already exists; choose another name or delete it",
                stored.name()
            ))),
            Err(e) => Err(store_status(&e)),
        })
        .await?;
        tracing::info!(experiment = %rec.name(), seed, "experiment submitted");
        self.inner
            .start(&rec)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        Ok(rec)
    }

    /// Stops a running experiment (its trials are killed) and waits until it has
    /// stopped; nothing happens to one that is not running.
    pub async fn stop(&self, name: &str) -> Result<(), Status> {
        valid_name(name)?;
        let done = {
            let mut running = self.inner.lock();
            running.get_mut(name).map(|r| {
                if let Some(stop) = r.stop.take() {
                    let _ = stop.send(());
                }
                r.done.clone()
            })
        };
        if let Some(mut done) = done {
            until_true(&mut done).await;
        }
        Ok(())
    }

    /// Deletes a stored experiment that is not running: its record, trials, metrics and
    /// trial directories.
    pub async fn delete(&self, name: &str) -> Result<(), Status> {
        valid_name(name)?;
        let name = name.to_string();
        if self.inner.lock().contains_key(&name) {
            return Err(Status::failed_precondition(format!(
                "experiment {name:?} is running; stop it first"
            )));
        }
        let store = self.inner.store.clone();
        let runs = kestrel_controller::paths::experiment_dir(&self.inner.cfg.runs_dir, &name)
            .ok_or_else(|| Status::invalid_argument("name: not an experiment name"))?;
        blocking(move || {
            let holder = kestrel_controller::lease::live_holder(&*store, &name)
                .map_err(|e| Status::internal(e.to_string()))?;
            if let Some(h) = holder {
                return Err(Status::failed_precondition(format!(
                    "experiment {name:?} is being run by {}; stop it first",
                    kestrel_controller::lease::describe(&h)
                )));
            }
            if !store
                .delete_experiment(&name)
                .map_err(|e| store_status(&e))?
            {
                return Err(Status::not_found(format!("no experiment named {name:?}")));
            }
            if runs.exists() {
                std::fs::remove_dir_all(&runs)
                    .map_err(|e| Status::internal(format!("removing {}: {e}", runs.display())))?;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Applies the changed experiment of `yaml` to the stored experiment `name` (see
    /// `kestrel_controller::resume`): a running one takes the new counts; a finished one
    /// runs again with its history. `None` when nothing changed.
    pub async fn update(
        &self,
        yaml: String,
        name: &str,
    ) -> Result<Option<ExperimentRecord>, Status> {
        let mut exp = match kestrel_core::parse_experiment(&yaml, &Catalog) {
            Ok(e) => e,
            Err(e @ SpecError::Invalid(_)) => return Err(Status::invalid_argument(e.to_string())),
            Err(e) => return Err(Status::invalid_argument(format!("invalid Experiment: {e}"))),
        };
        exp.name = name.to_string();
        let (old, trials) = self.snapshot(name).await?;
        // A template read from a ConfigMap was made inline when it was submitted.
        if matches!(exp.trial_template.source, TemplateSource::ConfigMap { .. }) {
            exp.trial_template.source = old.spec.trial_template.source.clone();
        }
        let counts = TrialCounts::of(&trials);
        let Some(rec) =
            continued(&old, &exp, &yaml, &counts).map_err(Status::failed_precondition)?
        else {
            return Ok(None);
        };
        let store = self.inner.store.clone();
        let stored = rec.clone();
        blocking(move || {
            store
                .replace_experiment(&stored)
                .map_err(|e| store_status(&e))
        })
        .await?;
        if !rec.status.state.is_terminal() && !self.is_running(name) {
            self.inner
                .start(&rec)
                .map_err(|e| Status::failed_precondition(e.to_string()))?;
        }
        self.inner.changed.send_modify(|n| *n = n.wrapping_add(1));
        tracing::info!(experiment = %name, state = %rec.status.state, "experiment updated");
        Ok(Some(rec))
    }

    /// The stored experiment `name` and its trials.
    pub async fn snapshot(
        &self,
        name: &str,
    ) -> Result<(ExperimentRecord, Vec<TrialRecord>), Status> {
        valid_name(name)?;
        self.inner.snapshot(name.to_string()).await
    }

    /// Whether this server is running the experiment `name`.
    pub fn is_running(&self, name: &str) -> bool {
        self.inner.lock().contains_key(name)
    }
}
