//! Lifecycle of trials and experiments: states with Katib's condition types and reasons,
//! and the records the store keeps for each.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::experiment::Experiment;
use crate::metrics::MetricObservation;
use crate::space::Assignments;

/// A trial's state: the type of its latest Katib condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TrialState {
    /// Proposed and recorded, not started yet (Katib `Created`).
    Created,
    /// Its process is running.
    Running,
    /// Finished with exit status 0 and an objective value.
    Succeeded,
    /// Exited non-zero or could not start.
    Failed,
    /// Stopped by kestrel (experiment ended or the user interrupted it).
    Killed,
    /// Finished but never reported the objective metric.
    MetricsUnavailable,
    /// Stopped by an early-stopping rule; counts as completed.
    EarlyStopped,
}

impl TrialState {
    /// Every state, in lifecycle order.
    pub const ALL: [TrialState; 7] = [
        TrialState::Created,
        TrialState::Running,
        TrialState::Succeeded,
        TrialState::Failed,
        TrialState::Killed,
        TrialState::MetricsUnavailable,
        TrialState::EarlyStopped,
    ];
    /// Katib's condition type name.
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Created => "Created",
            TrialState::Running => "Running",
            TrialState::Succeeded => "Succeeded",
            TrialState::Failed => "Failed",
            TrialState::Killed => "Killed",
            TrialState::MetricsUnavailable => "MetricsUnavailable",
            TrialState::EarlyStopped => "EarlyStopped",
        }
    }
    /// Parses [`TrialState::as_str`] output.
    pub fn parse(s: &str) -> Option<TrialState> {
        TrialState::ALL.into_iter().find(|t| t.as_str() == s)
    }
    /// Whether the trial has finished (no further transitions).
    pub fn is_terminal(self) -> bool {
        !matches!(self, TrialState::Created | TrialState::Running)
    }
    /// Whether the trial counts towards `maxFailedTrialCount` (Failed, MetricsUnavailable).
    pub fn is_failure(self) -> bool {
        matches!(self, TrialState::Failed | TrialState::MetricsUnavailable)
    }
    /// Katib's reason for entering this state.
    pub fn reason(self) -> &'static str {
        match self {
            TrialState::Created => "TrialCreated",
            TrialState::Running => "TrialRunning",
            TrialState::Succeeded => "TrialSucceeded",
            TrialState::Failed => "TrialFailed",
            TrialState::Killed => "TrialKilled",
            TrialState::MetricsUnavailable => "TrialMetricsUnavailable",
            TrialState::EarlyStopped => "TrialEarlyStopped",
        }
    }
}

impl fmt::Display for TrialState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything kestrel knows about one trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    /// Unique trial name (also its Katib `trial_name`).
    pub name: String,
    /// Owning experiment.
    pub experiment: String,
    /// 0-based proposal index within the experiment.
    pub index: u64,
    /// Parameter values.
    pub assignments: Assignments,
    /// Labels from the suggestion (e.g. Hyperband rung).
    pub labels: BTreeMap<String, String>,
    /// Current state.
    pub state: TrialState,
    /// Katib-style reason of the current state.
    pub reason: String,
    /// Human-readable detail of the current state.
    pub message: String,
    /// When it was proposed.
    pub created_at: Timestamp,
    /// When its process started.
    pub started_at: Option<Timestamp>,
    /// When it reached a terminal state.
    pub completed_at: Option<Timestamp>,
    /// Reduced metrics (one per objective/additional metric reported).
    pub observation: Vec<MetricObservation>,
    /// The objective value by its strategy, when the trial reported it.
    pub objective: Option<f64>,
    /// What the executor recorded when it launched the trial (process id, Job name), so
    /// a later kestrel process can re-attach to it; `None` before launch.
    #[serde(default)]
    pub run: Option<RunRecord>,
    /// How often the trial was re-run because kestrel lost it (crashed, or shut down while
    /// it ran); such attempts do not count against `maxTrialCount`.
    #[serde(default)]
    pub restarts: u32,
    /// SHA-256 (hex) of the secret the trial's current run was given
    /// (`KESTREL_TRIAL_TOKEN`): reports about the trial over Katib's services must carry
    /// it while the trial runs. The secret itself is never stored.
    #[serde(default)]
    pub credential: Option<String>,
}

/// An executor's record of a launched trial: enough to find it again after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The executor that launched it (`local`, ...).
    pub executor: String,
    /// Executor-specific data (a process id and start time, a Job name).
    pub data: serde_json::Value,
}

impl TrialRecord {
    /// A freshly proposed trial.
    pub fn created(
        experiment: &str,
        name: String,
        index: u64,
        assignments: Assignments,
        at: Timestamp,
    ) -> Self {
        TrialRecord {
            name,
            experiment: experiment.to_string(),
            index,
            assignments,
            labels: BTreeMap::new(),
            state: TrialState::Created,
            reason: TrialState::Created.reason().into(),
            message: "Trial is created".into(),
            created_at: at,
            started_at: None,
            completed_at: None,
            observation: vec![],
            objective: None,
            run: None,
            restarts: 0,
            credential: None,
        }
    }

    /// Whether the trial reported a usable objective `metric`: a finite number, or text
    /// that is no number at all (DARTS's genotype). Only `inf` or `nan` is not one.
    pub fn has_objective(&self, metric: &str) -> bool {
        self.objective.is_some()
            || self
                .reported(metric)
                .is_some_and(|v| v.trim().parse::<f64>().is_err())
    }

    /// The latest report of `metric`, numeric or not (a DARTS objective is a genotype).
    pub fn reported(&self, metric: &str) -> Option<&str> {
        self.observation
            .iter()
            .find(|o| o.name == metric)
            .map(|o| o.latest.as_str())
    }
}

/// The best trial of `trials` by the experiment's objective, among completed trials with
/// an objective value. When no trial has a numeric objective, the latest trial to complete
/// with a textual one (Katib compares string metrics, such as DARTS's genotype, as
/// "latest wins").
pub fn best_trial<'a>(exp: &Experiment, trials: &'a [TrialRecord]) -> Option<&'a TrialRecord> {
    let done = || {
        trials
            .iter()
            .filter(|t| matches!(t.state, TrialState::Succeeded | TrialState::EarlyStopped))
    };
    done()
        .filter_map(|t| t.objective.map(|v| (t, v)))
        .reduce(|best, cur| {
            if exp.objective.kind.better(cur.1, best.1) {
                cur
            } else {
                best
            }
        })
        .map(|(t, _)| t)
        .or_else(|| {
            done()
                .filter(|t| t.reported(&exp.objective.metric).is_some())
                .max_by_key(|t| t.completed_at)
        })
}

/// An experiment's state: the type of its latest Katib condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExperimentState {
    /// Accepted, no trial started.
    Created,
    /// Trials are being run.
    Running,
    /// Finished: goal reached, trial budget used, or the search space exhausted.
    Succeeded,
    /// Too many trials failed.
    Failed,
    /// Interrupted by the user (kestrel addition; Katib has no equivalent).
    Stopped,
}

impl ExperimentState {
    /// Condition type name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExperimentState::Created => "Created",
            ExperimentState::Running => "Running",
            ExperimentState::Succeeded => "Succeeded",
            ExperimentState::Failed => "Failed",
            ExperimentState::Stopped => "Stopped",
        }
    }
    /// The state named `s` (as printed by [`ExperimentState::as_str`]).
    pub fn parse(s: &str) -> Option<ExperimentState> {
        [
            ExperimentState::Created,
            ExperimentState::Running,
            ExperimentState::Succeeded,
            ExperimentState::Failed,
            ExperimentState::Stopped,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
    /// Whether the experiment has finished.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ExperimentState::Succeeded | ExperimentState::Failed | ExperimentState::Stopped
        )
    }
}

impl fmt::Display for ExperimentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Katib's experiment condition reasons.
pub mod reason {
    /// Experiment accepted.
    pub const CREATED: &str = "ExperimentCreated";
    /// Trials running.
    pub const RUNNING: &str = "ExperimentRunning";
    /// A trial reached the objective goal.
    pub const GOAL_REACHED: &str = "ExperimentGoalReached";
    /// maxTrialCount trials completed.
    pub const MAX_TRIALS_REACHED: &str = "ExperimentMaxTrialsReached";
    /// The algorithm has no more proposals (e.g. the grid is exhausted).
    pub const SUGGESTION_END_REACHED: &str = "ExperimentSuggestionEndReached";
    /// maxFailedTrialCount trials failed (Katib's `ExperimentFailed`).
    pub const FAILED: &str = "ExperimentFailed";
    /// Interrupted by the user.
    pub const STOPPED: &str = "ExperimentStopped";
    /// Continued with a new budget after it had ended (Katib's `Restarting` condition).
    pub const RESTARTING: &str = "ExperimentRestarting";
}

/// The mutable part of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentStatus {
    /// Current state.
    pub state: ExperimentState,
    /// Katib-style reason.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
    /// When the first trial was launched.
    pub started_at: Option<Timestamp>,
    /// When it reached a terminal state.
    pub completed_at: Option<Timestamp>,
}

/// Everything kestrel stores about one experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentRecord {
    /// The validated experiment.
    pub spec: Experiment,
    /// The YAML it came from, verbatim.
    pub source: String,
    /// Seed used by the algorithm (recorded so any run can be replayed).
    pub seed: u64,
    /// When it was accepted.
    pub created_at: Timestamp,
    /// Current status.
    pub status: ExperimentStatus,
    /// Directory trial commands resolve relative paths and `$(KESTREL_EXPERIMENT_DIR)`
    /// against (the YAML file's directory); lets a server resume the experiment.
    #[serde(default)]
    pub base_dir: Option<std::path::PathBuf>,
    /// Another experiment whose finished trials the algorithm learns from as if they were
    /// this one's (`kestrel run --warm-start`); they do not count against its budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_start: Option<String>,
}

impl ExperimentRecord {
    /// A newly accepted experiment (state Created).
    pub fn new(
        spec: Experiment,
        source: String,
        seed: u64,
        base_dir: Option<std::path::PathBuf>,
        now: Timestamp,
    ) -> Self {
        ExperimentRecord {
            spec,
            source,
            seed,
            created_at: now,
            status: ExperimentStatus {
                state: ExperimentState::Created,
                reason: reason::CREATED.into(),
                message: "Experiment is created".into(),
                started_at: None,
                completed_at: None,
            },
            base_dir,
            warm_start: None,
        }
    }

    /// The experiment's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }
}

/// Counts of trials per state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialCounts {
    /// Created, not started.
    pub created: u32,
    /// Running.
    pub running: u32,
    /// Succeeded.
    pub succeeded: u32,
    /// Failed.
    pub failed: u32,
    /// Killed.
    pub killed: u32,
    /// MetricsUnavailable.
    pub metrics_unavailable: u32,
    /// EarlyStopped.
    pub early_stopped: u32,
}

impl TrialCounts {
    /// Counts the states of `trials`.
    pub fn of<'a>(trials: impl IntoIterator<Item = &'a TrialRecord>) -> Self {
        let mut c = TrialCounts::default();
        for t in trials {
            *match t.state {
                TrialState::Created => &mut c.created,
                TrialState::Running => &mut c.running,
                TrialState::Succeeded => &mut c.succeeded,
                TrialState::Failed => &mut c.failed,
                TrialState::Killed => &mut c.killed,
                TrialState::MetricsUnavailable => &mut c.metrics_unavailable,
                TrialState::EarlyStopped => &mut c.early_stopped,
            } += 1;
        }
        c
    }
    /// Created + running.
    pub fn active(&self) -> u32 {
        self.created + self.running
    }
    /// Every terminal trial (kestrel counts MetricsUnavailable as completed too).
    pub fn completed(&self) -> u32 {
        self.succeeded + self.failed + self.killed + self.metrics_unavailable + self.early_stopped
    }
    /// Failed + MetricsUnavailable (what `maxFailedTrialCount` limits).
    pub fn failures(&self) -> u32 {
        self.failed + self.metrics_unavailable
    }
    /// Every trial.
    pub fn total(&self) -> u32 {
        self.active() + self.completed()
    }
}
