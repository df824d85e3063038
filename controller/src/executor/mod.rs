//! The trial-executor seam: how a trial's program is started, watched and stopped.
//! Implementations: [`local::ProcessExecutor`] (host processes); Kubernetes Jobs later.

pub mod local;

use std::path::PathBuf;

use kestrel_metrics_collector::Collector;

/// Everything needed to start one trial.
#[derive(Debug, Clone)]
pub struct TrialRun {
    /// Experiment name.
    pub experiment: String,
    /// Trial name.
    pub trial: String,
    /// Program and arguments (after substitution).
    pub argv: Vec<String>,
    /// Extra environment variables (after substitution).
    pub env: Vec<(String, String)>,
    /// Working directory of the process.
    pub working_dir: PathBuf,
    /// Directory of the experiment file (exported as `KESTREL_EXPERIMENT_DIR`).
    pub experiment_dir: PathBuf,
    /// The trial's own directory (logs, scratch); created by the executor.
    pub trial_dir: PathBuf,
    /// Parser for the trial's metric lines.
    pub collector: Collector,
    /// Where metrics come from.
    pub source: MetricsSource,
}

/// Where a trial's metrics are read.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricsSource {
    /// The process's stdout and stderr.
    Output,
    /// A file the process writes (tailed while it runs, read to the end when it exits).
    File(PathBuf),
}

/// Why a trial is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The experiment finished (goal, budget) while the trial ran.
    ExperimentFinished,
    /// The user interrupted kestrel.
    Interrupted,
    /// The early-stopping rule judged the trial hopeless.
    EarlyStopped,
}

/// The state of a launched trial's program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunPhase {
    /// Still running (or its output is still being collected).
    Running,
    /// Exited and all its output was collected. `code` is `None` when killed by a signal.
    Exited {
        /// Exit status.
        code: Option<i32>,
        /// Set when kestrel stopped it.
        stopped: Option<StopReason>,
    },
}

/// Launches, watches and stops trials.
///
/// # Contract
/// - `launch` returns once the program has started (or failed to start).
/// - `status` reports `Exited` only after every metric the program wrote has been
///   delivered to the metrics sink, so the controller can compute the observation.
/// - `stop` ends the program and everything it started; its phase then becomes
///   `Exited { stopped: Some(reason), .. }`.
#[allow(async_fn_in_trait)]
pub trait TrialExecutor {
    /// A handle to a running trial.
    type Handle;
    /// Starts the trial's program.
    async fn launch(&self, run: TrialRun) -> Result<Self::Handle, ExecError>;
    /// The program's current phase.
    fn status(&self, handle: &Self::Handle) -> RunPhase;
    /// Stops the program and waits until it is gone.
    async fn stop(&self, handle: &Self::Handle, why: StopReason);
}

/// A trial could not be started.
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
}
