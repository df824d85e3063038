//! A scripted executor for tests (feature `testing`): each trial follows a [`Script`]
//! (how long it runs, what it reports when, how it ends) on tokio's clock, so reconciler
//! tests run on a paused clock with no processes. Trials live in a [`World`] that
//! outlives an executor, so a test can drop the executor and reconciler (a crash) and
//! adopt the trials with new ones.

// Test support: a broken script or lock is a test bug and panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use kestrel_core::outcome::{RunEnd, StopReason};
use kestrel_core::{MetricLog, RunRecord};
use kestrel_store::Store;
use tokio::time::Instant;

use super::{ExecError, RenderedTrial, RunPhase, TrialExecutor};

/// What a scripted trial does.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// How long it runs before exiting on its own.
    pub runs_for: Duration,
    /// Its exit status (`None`: killed by a signal).
    pub code: Option<i32>,
    /// `(after, metric, value)`: reports made `after` its start.
    pub reports: Vec<(Duration, String, String)>,
    /// When set, launching fails with this message.
    pub launch_error: Option<String>,
}

#[derive(Debug)]
struct Run {
    started: Instant,
    script: Script,
    /// Reports already written to the store.
    reported: usize,
    end: Option<RunEnd>,
    lost: bool,
}

/// The trials that exist, whatever executor watches them.
#[derive(Debug, Default)]
pub struct World {
    runs: Mutex<HashMap<String, Run>>,
    max_running: Mutex<usize>,
    launches: Mutex<Vec<String>>,
}

impl World {
    /// An empty world.
    pub fn new() -> Arc<Self> {
        Arc::new(World::default())
    }
    /// Trials running now.
    pub fn running(&self) -> usize {
        self.runs
            .lock()
            .unwrap()
            .values()
            .filter(|r| r.end.is_none() && !r.lost)
            .count()
    }
    /// The most trials that ran at once.
    pub fn max_running(&self) -> usize {
        *self.max_running.lock().unwrap()
    }
    /// Every launch, in order (a re-run trial appears twice).
    pub fn launches(&self) -> Vec<String> {
        self.launches.lock().unwrap().clone()
    }
    /// Makes a trial vanish without an exit status (its machine restarted).
    pub fn lose(&self, trial: &str) {
        if let Some(r) = self.runs.lock().unwrap().get_mut(trial) {
            r.lost = true;
        }
    }
}

/// Runs trials by script.
pub struct ScriptedExecutor {
    world: Arc<World>,
    store: Arc<dyn Store>,
    script: Box<dyn Fn(&RenderedTrial) -> Script + Send + Sync>,
    attached: Mutex<HashSet<String>>,
}

impl ScriptedExecutor {
    /// An executor whose trials follow `script`, writing their reports to `store`.
    pub fn new(
        world: Arc<World>,
        store: Arc<dyn Store>,
        script: impl Fn(&RenderedTrial) -> Script + Send + Sync + 'static,
    ) -> Self {
        ScriptedExecutor {
            world,
            store,
            script: Box::new(script),
            attached: Mutex::new(HashSet::new()),
        }
    }

    /// Writes the reports due by now and ends the run when its time is up.
    fn advance(&self, trial: &str, run: &mut Run) {
        let elapsed = Instant::now().duration_since(run.started);
        let done = run.end.is_some() || run.lost;
        let due: Vec<MetricLog> = run
            .script
            .reports
            .iter()
            .skip(run.reported)
            .take_while(|(after, _, _)| !done && *after <= elapsed)
            .map(|(_, name, value)| MetricLog {
                time: Timestamp::now(),
                name: name.clone(),
                value: value.clone(),
            })
            .collect();
        if !due.is_empty() {
            run.reported += due.len();
            self.store.append_metrics(trial, &due).unwrap();
        }
        if !done && elapsed >= run.script.runs_for {
            run.end = Some(RunEnd {
                code: run.script.code,
                stopped: None,
                log: None,
                detail: None,
            });
        }
    }
}

#[async_trait::async_trait]
impl TrialExecutor for ScriptedExecutor {
    fn kind(&self) -> &'static str {
        "scripted"
    }

    async fn launch(&self, t: &RenderedTrial) -> Result<RunRecord, ExecError> {
        let script = (self.script)(t);
        if let Some(e) = &script.launch_error {
            return Err(ExecError::Invalid(e.clone()));
        }
        self.world.runs.lock().unwrap().insert(
            t.trial.clone(),
            Run {
                started: Instant::now(),
                script,
                reported: 0,
                end: None,
                lost: false,
            },
        );
        self.world.launches.lock().unwrap().push(t.trial.clone());
        let running = self.world.running();
        let mut max = self.world.max_running.lock().unwrap();
        *max = (*max).max(running);
        self.attached.lock().unwrap().insert(t.trial.clone());
        Ok(RunRecord {
            executor: self.kind().into(),
            data: serde_json::json!({ "trial": t.trial }),
        })
    }

    async fn adopt(&self, t: &RenderedTrial, record: &RunRecord) -> Result<(), ExecError> {
        if record.executor != self.kind() {
            return Err(ExecError::Record(format!(
                "not scripted: {}",
                record.executor
            )));
        }
        self.attached.lock().unwrap().insert(t.trial.clone());
        Ok(())
    }

    async fn status(&self, trial: &str) -> Result<Option<RunPhase>, ExecError> {
        if !self.attached.lock().unwrap().contains(trial) {
            return Ok(None);
        }
        let mut runs = self.world.runs.lock().unwrap();
        let Some(run) = runs.get_mut(trial) else {
            return Ok(Some(RunPhase::Lost("no such scripted trial".into())));
        };
        self.advance(trial, run);
        Ok(Some(match (&run.end, run.lost) {
            (_, true) => RunPhase::Lost("the scripted trial was lost".into()),
            (Some(end), _) => RunPhase::Exited(end.clone()),
            (None, _) => RunPhase::Running,
        }))
    }

    async fn stop(&self, trial: &str, why: StopReason) -> Result<(), ExecError> {
        let mut runs = self.world.runs.lock().unwrap();
        if let Some(run) = runs.get_mut(trial) {
            self.advance(trial, run);
            if run.end.is_none() && !run.lost {
                run.end = Some(RunEnd {
                    code: None,
                    stopped: Some(why),
                    log: None,
                    detail: None,
                });
            }
        }
        Ok(())
    }

    fn forget(&self, trial: &str) {
        self.attached.lock().unwrap().remove(trial);
    }
}
