//! The trial-executor seam: how a rendered trial is started, watched, stopped, and found
//! again after kestrel restarted.
//!
//! An executor gets the rendered trial (the substituted `trialSpec` plus its identity) and
//! derives what it needs: the local executor the primary container's command line, a
//! Kubernetes executor the object to create. What it returns from `launch` is stored with
//! the trial, so a later kestrel process can `adopt` the trial from it.
//!
//! Executors are chosen at run time in one place, [`build`]; adding one touches its own
//! module and one line there.

pub mod kubernetes;
pub mod local;
#[cfg(any(test, feature = "testing"))]
pub mod scripted;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kestrel_core::outcome::{RunEnd, StopReason};
use kestrel_core::{Experiment, RunRecord};
use kestrel_metrics_collector::MetricsSink;

/// A trial ready to run: its template rendered with its assignments.
#[derive(Debug, Clone)]
pub struct RenderedTrial {
    /// The experiment (metrics collector, primary container name, conditions).
    pub experiment: Arc<Experiment>,
    /// The trial's name.
    pub trial: String,
    /// Namespace of the trial (the experiment's, `default` without one).
    pub namespace: String,
    /// The substituted `trialSpec`, with `metadata.name` and `namespace` set.
    pub spec: serde_json::Value,
    /// Directory relative paths in the trial resolve against (the experiment file's).
    pub base_dir: PathBuf,
    /// Which run of the trial this is (its re-run count): a launch interrupted by a crash
    /// is found again only for the same attempt.
    pub attempt: u32,
    /// The run's secret, given to the trial as `KESTREL_TRIAL_TOKEN` (see
    /// [`crate::credentials`]); `None` when re-rendered to adopt a running trial.
    pub secret: Option<String>,
}

/// Where a launched trial is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunPhase {
    /// Running, or its output is still being collected.
    Running,
    /// Ended, and everything it reported has reached the metrics sink.
    Exited(RunEnd),
    /// Gone through no fault of its own (kestrel lost it: the machine restarted, its
    /// record is missing); the trial is run again and does not count against the budget.
    Lost(String),
}

/// Launches, watches, stops and re-attaches trials.
///
/// # Contract
/// - `launch` returns once the trial has started (or could not), with what must be stored
///   to find it again. Launching an attempt that was already started (kestrel died before
///   recording the launch) re-attaches to it, running or ended, instead of starting it
///   twice.
/// - `status` is `None` for a trial this executor is not attached to (launched by an
///   earlier kestrel process): the caller then calls `adopt` with the stored record.
/// - `Exited` is reported only after every metric the trial wrote was delivered.
/// - `stop` ends the trial and everything it started; its phase then becomes `Exited`
///   with `stopped` set.
/// - `forget` drops a finished trial's state.
#[async_trait::async_trait]
pub trait TrialExecutor: Send + Sync {
    /// The executor's name, stored in each [`RunRecord`].
    fn kind(&self) -> &'static str;
    /// The trial template when the experiment names one kept elsewhere
    /// (`trialTemplate.configMap`), read once when the experiment is submitted; `None`
    /// when its template is inline.
    async fn template(&self, exp: &Experiment) -> Result<Option<serde_json::Value>, ExecError> {
        let _ = exp;
        Ok(None)
    }
    /// Whether trials keep running when kestrel shuts down (a cluster's objects do), to
    /// be re-attached by the next kestrel; else a shutdown stops them and they run again.
    fn detaches(&self) -> bool {
        false
    }
    /// Checks that trials can be launched at all (a cluster answers), before an experiment
    /// is stored: a missing kubeconfig is one clear error, not a failed trial per try.
    async fn ready(&self) -> Result<(), ExecError> {
        Ok(())
    }
    /// Starts a trial.
    async fn launch(&self, trial: &RenderedTrial) -> Result<RunRecord, ExecError>;
    /// Re-attaches to a trial launched earlier (possibly by another kestrel process).
    async fn adopt(&self, trial: &RenderedTrial, record: &RunRecord) -> Result<(), ExecError>;
    /// The phase of an attached trial; `None` when not attached.
    async fn status(&self, trial: &str) -> Result<Option<RunPhase>, ExecError>;
    /// Stops an attached trial and waits until it is gone.
    async fn stop(&self, trial: &str, why: StopReason) -> Result<(), ExecError>;
    /// Drops the state of a finished trial.
    fn forget(&self, trial: &str);
    /// Waits for what [`TrialExecutor::forget`] left running in the background (a cluster
    /// trial's log being saved, its object being deleted), so that a process about to
    /// exit does not cut it off.
    async fn drain(&self) {}
}

/// A trial could not be started, watched or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The trial directory or a file could not be created.
    #[error("cannot prepare {path}")]
    Prepare {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The program could not be started.
    #[error("cannot start {program:?}")]
    Spawn {
        /// The program (`argv[0]`).
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The rendered trial cannot run on this executor.
    #[error("{0}")]
    Invalid(String),
    /// The stored record was not written by this executor or is damaged.
    #[error("bad run record: {0}")]
    Record(String),
}

/// What every executor may need to be built.
#[derive(Clone)]
pub struct ExecutorConfig {
    /// Where metric reports go.
    pub sink: Arc<dyn MetricsSink>,
    /// Time a stopped trial gets between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Root of the per-trial directories (`<runs_dir>/<experiment>/<trial>/`).
    pub runs_dir: PathBuf,
    /// What the Kubernetes executor needs.
    pub kubernetes: KubeOptions,
    /// kestrel's DBManager as trials on this machine reach it (`host:port`), for trials
    /// that report their metrics themselves (the Push collector); `None` when there is
    /// none.
    pub db_manager: Option<String>,
}

/// Options of the Kubernetes executor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeOptions {
    /// kestrel's image, holding the `kestrel` binary the collector runs from.
    pub image: String,
    /// kestrel's DBManager as the trials' pods reach it, `host:port`.
    pub db_manager: String,
}

/// Builds one executor.
type Build = fn(ExecutorConfig) -> Arc<dyn TrialExecutor>;

/// What of an experiment an executor cannot run (a message naming the field), checked
/// before anything is stored.
type Accepts = fn(&Experiment) -> Result<(), String>;

/// Every executor, by the name users choose it with (`--executor`): the one place
/// executors are registered.
const EXECUTORS: &[(&str, Build, Accepts)] = &[
    (
        "local",
        |c| Arc::new(local::ProcessExecutor::new(c)),
        local::accepts,
    ),
    (
        "kubernetes",
        |c| {
            Arc::new(kubernetes::KubeExecutor::new(kubernetes::KubeSettings {
                client: None,
                image: c.kubernetes.image,
                db_manager: c.kubernetes.db_manager,
                owner: None,
                runs_dir: Some(c.runs_dir),
            }))
        },
        kubernetes::accepts,
    ),
];

/// `exp` (whose text is `source`) with its trial template made inline when it names one
/// the executor reads from elsewhere (a ConfigMap), validated again; as it was otherwise.
pub async fn inline_template(
    executor: &dyn TrialExecutor,
    exp: Experiment,
    source: String,
) -> Result<(Experiment, String), ExecError> {
    let Some(spec) = executor.template(&exp).await? else {
        return Ok((exp, source));
    };
    let name = exp.name.clone();
    let (mut exp, source) =
        kestrel_core::with_trial_spec(&source, spec, &kestrel_algorithms::Catalog).map_err(
            |e| {
                ExecError::Invalid(format!(
                    "with the template from spec.trialTemplate.configMap: {e}"
                ))
            },
        )?;
    // A name given on the command line stays.
    exp.name = name;
    Ok((exp, source))
}

/// Whether the executor `name` can run `exp`. An executor outside the table (a test's)
/// has no restrictions; names from users are checked with [`build`] or [`executors`].
pub fn accepts(name: &str, exp: &Experiment) -> Result<(), String> {
    match EXECUTORS.iter().find(|(n, _, _)| *n == name) {
        Some((_, _, check)) => check(exp),
        None => Ok(()),
    }
}

/// The default executor's name.
pub const DEFAULT_EXECUTOR: &str = "local";

/// Where to read the output of `run`'s trial `trial` while kestrel has no log of it: a
/// trial run as a cluster object, whose pods' logs are saved when it ends; `None` for a
/// trial that writes its log here as it runs.
pub fn cluster_log_hint(trial: &str, run: &RunRecord) -> Option<String> {
    if run.executor == DEFAULT_EXECUTOR {
        return None;
    }
    let ns = run
        .data
        .get("namespace")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("default");
    Some(format!(
        "trial {trial} runs on a cluster: its log is saved here when it ends; until then: kubectl logs -n {ns} -l katib.kubeflow.org/trial={trial} --all-containers"
    ))
}

/// Names of the executors kestrel has.
pub fn executors() -> impl Iterator<Item = &'static str> {
    EXECUTORS.iter().map(|(name, _, _)| *name)
}

/// An executor name kestrel does not have.
#[derive(Debug, thiserror::Error)]
#[error("unknown executor {name:?} (available: {available})")]
pub struct UnknownExecutor {
    /// The name asked for.
    pub name: String,
    /// The names there are.
    pub available: String,
}

/// Builds the executor named `name`: the one place executors are chosen at run time.
pub fn build(name: &str, cfg: ExecutorConfig) -> Result<Arc<dyn TrialExecutor>, UnknownExecutor> {
    match EXECUTORS.iter().find(|(n, _, _)| *n == name) {
        Some((_, make, _)) => Ok(make(cfg)),
        None => Err(UnknownExecutor {
            name: name.to_string(),
            available: executors().collect::<Vec<_>>().join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn executors_are_built_by_name() {
        let cfg = super::ExecutorConfig {
            sink: std::sync::Arc::new(crate::sink::StoreSink(std::sync::Arc::new(
                kestrel_store::mem::MemStore::new(),
            ))),
            grace: std::time::Duration::from_secs(1),
            runs_dir: "/nonexistent".into(),
            kubernetes: Default::default(),
            db_manager: None,
        };
        assert_eq!(super::build("local", cfg.clone()).unwrap().kind(), "local");
        assert_eq!(
            super::build("kubernetes", cfg.clone()).unwrap().kind(),
            "kubernetes"
        );
        let e = super::build("slurm", cfg).err().unwrap();
        assert_eq!(
            e.to_string(),
            "unknown executor \"slurm\" (available: local, kubernetes)"
        );
    }
}
