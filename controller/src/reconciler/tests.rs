//! Reconciler tests on the scripted executor and tokio's paused clock: no processes, no
//! sleeps; each test drives passes as the local driver would.

use std::sync::Arc;
use std::time::Duration;

use kestrel_core::status::reason;
use kestrel_core::{ExperimentRecord, ExperimentState, ExperimentStatus, TrialRecord, TrialState};
use kestrel_store::Store;
use kestrel_store::mem::MemStore;

use super::*;
use crate::executor::RenderedTrial;
use crate::executor::scripted::{Script, ScriptedExecutor, World};

fn yaml(spec: &str) -> String {
    format!(
        r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {{name: e}}
spec:
{spec}
  algorithm: {{algorithmName: random}}
  parameters:
    - {{name: x, parameterType: double, feasibleSpace: {{min: "0", max: "1"}}}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{{name: x, reference: x}}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec: {{template: {{spec: {{containers: [{{name: main, command: [train, "${{trialParameters.x}}"]}}]}}}}}}
"#
    )
}

/// The trial's x, read back from its rendered command.
fn x(t: &RenderedTrial) -> f64 {
    t.spec["spec"]["template"]["spec"]["containers"][0]["command"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap()
}

/// A script chosen by launch order (0, 1, ...).
fn by_order(
    f: impl Fn(usize, &RenderedTrial) -> Script + Send + Sync + 'static,
) -> impl Fn(&RenderedTrial) -> Script + Send + Sync + 'static {
    let n = std::sync::atomic::AtomicUsize::new(0);
    move |t| f(n.fetch_add(1, std::sync::atomic::Ordering::SeqCst), t)
}

/// A trial that runs 10 s and reports `loss` = x at the end.
fn reports_x(t: &RenderedTrial) -> Script {
    Script {
        runs_for: Duration::from_secs(10),
        code: Some(0),
        reports: vec![(Duration::from_secs(10), "loss".into(), x(t).to_string())],
        launch_error: None,
    }
}

struct Setup {
    store: Arc<dyn Store>,
    world: Arc<World>,
}

impl Setup {
    fn new(spec: &str) -> Self {
        let exp =
            kestrel_core::parse_experiment(&yaml(spec), &kestrel_algorithms::Catalog).unwrap();
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        store
            .create_experiment(&ExperimentRecord::new(
                exp,
                String::new(),
                7,
                None,
                jiff::Timestamp::now(),
            ))
            .unwrap();
        Setup {
            store,
            world: World::new(),
        }
    }

    /// A reconciler over a fresh executor (a new kestrel process) on the same world.
    fn reconciler(
        &self,
        script: impl Fn(&RenderedTrial) -> Script + Send + Sync + 'static,
    ) -> Reconciler {
        let ex = ScriptedExecutor::new(self.world.clone(), self.store.clone(), script);
        Reconciler::new(
            self.store.clone(),
            Arc::new(ex),
            Options {
                tick: Duration::from_millis(200),
            },
        )
    }

    fn trials(&self) -> Vec<TrialRecord> {
        self.store.trials("e").unwrap()
    }

    fn states(&self) -> Vec<TrialState> {
        self.trials().iter().map(|t| t.state).collect()
    }
}

/// Runs passes (sleeping on the paused clock between them) until the experiment ends or
/// `until` holds.
async fn passes(
    r: &Reconciler,
    until: impl Fn(&[TrialRecord]) -> bool,
) -> Option<ExperimentStatus> {
    for _ in 0..10_000 {
        match r.reconcile("e").await.unwrap() {
            Action::Done(s) => return Some(s),
            Action::Requeue(d) => {
                if until(&r.store.trials("e").unwrap()) {
                    return None;
                }
                tokio::time::sleep(d).await;
            }
        }
    }
    panic!("the experiment never ended");
}

async fn to_end(r: &Reconciler) -> ExperimentStatus {
    passes(r, |_| false).await.unwrap()
}

fn count(trials: &[TrialRecord], s: TrialState) -> usize {
    trials.iter().filter(|t| t.state == s).count()
}

#[tokio::test(start_paused = true)]
async fn keeps_parallelism_and_stops_at_the_trial_budget() {
    let s = Setup::new(
        "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 7\n  parallelTrialCount: 3",
    );
    let started = tokio::time::Instant::now();
    let status = to_end(&s.reconciler(reports_x)).await;
    assert_eq!(status.state, ExperimentState::Succeeded);
    assert_eq!(status.reason, reason::MAX_TRIALS_REACHED);
    assert_eq!(s.states(), vec![TrialState::Succeeded; 7]);
    assert_eq!(s.world.max_running(), 3);
    assert_eq!(s.world.launches().len(), 7);
    // Three waves of 10 s (3 + 3 + 1), each replacement launched in the pass that saw
    // its predecessor end.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(31),
        "{took:?}"
    );
    // Objectives come from the reports.
    for t in s.trials() {
        assert_eq!(t.objective, t.assignments["x"].to_string().parse().ok());
    }
}

#[tokio::test(start_paused = true)]
async fn goal_ends_the_experiment_and_kills_the_rest() {
    let s = Setup::new(
        "  objective: {type: maximize, goal: 0.0, objectiveMetricName: loss}\n  maxTrialCount: 50\n  parallelTrialCount: 2",
    );
    // The first trial reaches the goal at once; the others run for a long time.
    let r = s.reconciler(by_order(|i, t| {
        let mut sc = reports_x(t);
        if i == 0 {
            sc.runs_for = Duration::from_secs(1);
            sc.reports = vec![(Duration::from_secs(1), "loss".into(), "1".into())];
        } else {
            sc.runs_for = Duration::from_secs(3600);
        }
        sc
    }));
    let status = to_end(&r).await;
    assert_eq!(status.reason, reason::GOAL_REACHED);
    let ts = s.trials();
    assert_eq!(count(&ts, TrialState::Succeeded), 1);
    assert_eq!(count(&ts, TrialState::Killed), ts.len() - 1);
    assert!(
        ts.iter().all(|t| t.state != TrialState::Killed
            || t.message == "stopped because the experiment finished")
    );
    assert_eq!(s.world.running(), 0);
}

#[tokio::test(start_paused = true)]
async fn failures_fail_the_experiment_with_reasons() {
    let s = Setup::new(
        "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 10\n  maxFailedTrialCount: 2\n  parallelTrialCount: 1",
    );
    let r = s.reconciler(by_order(|i, t| {
        let mut sc = reports_x(t);
        match i {
            0 => sc.code = Some(1),                              // Failed
            1 => sc.reports.clear(),                             // MetricsUnavailable
            _ => sc.launch_error = Some("no such image".into()), // never reached
        }
        sc
    }));
    let status = to_end(&r).await;
    assert_eq!(status.state, ExperimentState::Failed);
    assert_eq!(status.reason, reason::FAILED);
    let ts = s.trials();
    assert_eq!(ts.len(), 2);
    assert_eq!(ts[0].state, TrialState::Failed);
    assert_eq!(ts[0].message, "exited with status 1");
    assert_eq!(ts[1].state, TrialState::MetricsUnavailable);
    let logs = s.store.metrics(&ts[1].name, None).unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(
        (logs[0].name.as_str(), logs[0].value.as_str()),
        ("loss", "unavailable")
    );
}

#[tokio::test(start_paused = true)]
async fn a_non_finite_objective_is_metrics_unavailable_and_text_succeeds() {
    let s = Setup::new(
        "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 3\n  parallelTrialCount: 1",
    );
    let r = s.reconciler(by_order(|i, t| {
        let mut sc = reports_x(t);
        let v = ["1e999", "nan", "normal_conv_3x3"][i];
        sc.reports = vec![(Duration::from_secs(1), "loss".into(), v.into())];
        sc
    }));
    to_end(&r).await;
    let states = s.states();
    assert_eq!(
        states,
        [
            TrialState::MetricsUnavailable,
            TrialState::MetricsUnavailable,
            TrialState::Succeeded
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_trial_that_cannot_start_is_failed_with_the_reason() {
    let s = Setup::new(
        "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 3\n  maxFailedTrialCount: 1\n  parallelTrialCount: 1",
    );
    let r = s.reconciler(|t| Script {
        launch_error: Some(format!("image pull failed for {}", t.trial)),
        ..Script::default()
    });
    assert_eq!(to_end(&r).await.state, ExperimentState::Failed);
    let t = &s.trials()[0];
    assert_eq!(t.state, TrialState::Failed);
    assert!(
        t.message
            .starts_with("trial could not start: image pull failed"),
        "{}",
        t.message
    );
    assert!(s.world.launches().is_empty());
}

#[tokio::test(start_paused = true)]
async fn median_rule_stops_a_lagging_trial() {
    let s = Setup::new(
        "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 4\n  parallelTrialCount: 1\n  earlyStopping:\n    algorithmName: medianstop\n    algorithmSettings:\n      - {name: min_trials_required, value: \"3\"}\n      - {name: start_step, value: \"2\"}",
    );
    // Three good trials, then one that reports a high loss every second for an hour.
    let r = s.reconciler(by_order(|i, _| {
        let bad = i == 3;
        let value = if bad { "0.9" } else { "0.1" };
        let n = if bad { 3600 } else { 5 };
        Script {
            runs_for: Duration::from_secs(n),
            code: Some(0),
            reports: (1..=n)
                .map(|i| (Duration::from_secs(i), "loss".into(), value.into()))
                .collect(),
            launch_error: None,
        }
    }));
    let started = tokio::time::Instant::now();
    let status = to_end(&r).await;
    assert_eq!(status.reason, reason::MAX_TRIALS_REACHED);
    let ts = s.trials();
    assert_eq!(ts[3].state, TrialState::EarlyStopped);
    assert_eq!(ts[3].objective, Some(0.9));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_restarted_reconciler_adopts_running_trials_and_launches_no_extra() {
    let s = Setup::new(
        "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 6\n  parallelTrialCount: 3",
    );
    let first = s.reconciler(reports_x);
    passes(&first, |ts| count(ts, TrialState::Running) == 3).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    drop(first); // kestrel crashes; the trials go on
    let second = s.reconciler(reports_x);
    let status = to_end(&second).await;
    assert_eq!(status.reason, reason::MAX_TRIALS_REACHED);
    assert_eq!(s.states(), vec![TrialState::Succeeded; 6]);
    assert_eq!(s.world.launches().len(), 6, "{:?}", s.world.launches());
    assert_eq!(s.world.max_running(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_lost_trial_runs_again_without_using_the_budget() {
    let s = Setup::new(
        "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 4\n  parallelTrialCount: 2",
    );
    let r = s.reconciler(reports_x);
    passes(&r, |ts| count(ts, TrialState::Running) == 2).await;
    let lost = s.trials()[0].name.clone();
    s.world.lose(&lost);
    let status = to_end(&r).await;
    assert_eq!(status.reason, reason::MAX_TRIALS_REACHED);
    let ts = s.trials();
    assert_eq!(ts.len(), 4);
    assert!(ts.iter().all(|t| t.state == TrialState::Succeeded));
    assert_eq!(ts[0].restarts, 1);
    let launches = s.world.launches();
    assert_eq!(launches.len(), 5);
    assert_eq!(launches.iter().filter(|n| **n == lost).count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_trial_without_a_launch_record_is_run_again() {
    // kestrel died between recording a trial Running and storing its run record (an old
    // store, or a crash): nothing can be adopted, so it runs again.
    let s = Setup::new(
        "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 1\n  parallelTrialCount: 1",
    );
    let first = s.reconciler(reports_x);
    passes(&first, |ts| count(ts, TrialState::Running) == 1).await;
    let mut t = s.trials()[0].clone();
    t.run = None;
    s.store.update_trial(&t, TrialState::Running).unwrap();
    drop(first);
    let status = to_end(&s.reconciler(reports_x)).await;
    assert_eq!(status.state, ExperimentState::Succeeded);
    assert_eq!(s.trials()[0].restarts, 1);
}

#[tokio::test(start_paused = true)]
async fn stop_kills_running_trials_and_suspend_runs_them_again_on_resume() {
    let s = Setup::new(
        "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 4\n  parallelTrialCount: 2",
    );
    let r = s.reconciler(reports_x);
    passes(&r, |ts| count(ts, TrialState::Running) == 2).await;
    // Suspend: the experiment stays Running, its trials wait to run again.
    let status = r.halt("e", Halt::Suspend).await.unwrap();
    assert_eq!(status.state, ExperimentState::Running);
    assert_eq!(s.states(), vec![TrialState::Created; 2]);
    assert_eq!(s.world.running(), 0);
    // Resume, then stop for good.
    let r = s.reconciler(reports_x);
    passes(&r, |ts| count(ts, TrialState::Running) == 2).await;
    let status = r.halt("e", Halt::Stop).await.unwrap();
    assert_eq!(status.state, ExperimentState::Stopped);
    assert_eq!(status.reason, reason::STOPPED);
    let ts = s.trials();
    assert!(
        ts.iter()
            .all(|t| t.state == TrialState::Killed && t.message == "stopped by the user")
    );
    assert!(ts.iter().all(|t| t.restarts == 1));
    // A finished experiment's pass does nothing.
    assert_eq!(r.reconcile("e").await.unwrap(), Action::Done(status));
}

#[tokio::test(start_paused = true)]
async fn the_driver_holds_the_lease_and_reports_progress() {
    let s = Setup::new(
        "  objective: {type: minimize, objectiveMetricName: loss}\n  maxTrialCount: 3\n  parallelTrialCount: 3",
    );
    let r = s.reconciler(reports_x);
    let lease = crate::lease::acquire(&s.store, "e", "test").unwrap();
    let mut seen = Vec::new();
    let status = drive(&r, "e", lease, std::future::pending(), |p| {
        seen.push(p.counts.completed())
    })
    .await
    .unwrap();
    assert_eq!(status.reason, reason::MAX_TRIALS_REACHED);
    assert_eq!(seen.last(), Some(&3));
    assert_eq!(s.store.lease("e").unwrap(), None, "released at the end");
}
