//! Which changes continue an experiment, and how.

use kestrel_core::ExperimentStatus;

use super::*;

const YAML: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: e}
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: random}
  maxTrialCount: 4
  maxFailedTrialCount: 2
  parameters:
    - {name: x, parameterType: double, feasibleSpace: {min: "0", max: "1"}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{name: x, reference: x}]
    trialSpec: {apiVersion: batch/v1, kind: Job, spec: {template: {spec: {containers: [{name: main, image: x, command: [t, "${trialParameters.x}"]}]}}}}
"#;

fn spec(edit: impl Fn(&mut Experiment)) -> Experiment {
    let mut e = kestrel_core::parse_experiment(YAML, &kestrel_algorithms::Catalog).unwrap();
    edit(&mut e);
    e
}

fn ended(state: ExperimentState, why: &str) -> ExperimentRecord {
    let mut r = ExperimentRecord::new(spec(|_| {}), YAML.into(), 1, None, Timestamp::UNIX_EPOCH);
    r.status = ExperimentStatus {
        state,
        reason: why.into(),
        message: String::new(),
        started_at: Some(Timestamp::UNIX_EPOCH),
        completed_at: state.is_terminal().then_some(Timestamp::UNIX_EPOCH),
    };
    r
}

fn counts(done: u32, failed: u32) -> TrialCounts {
    TrialCounts {
        succeeded: done - failed,
        failed,
        ..TrialCounts::default()
    }
}

#[test]
fn a_larger_budget_continues_what_ran_out_of_trials_or_was_stopped() {
    let more = spec(|e| e.max_trial_count = Some(8));
    for (state, why) in [
        (ExperimentState::Succeeded, reason::MAX_TRIALS_REACHED),
        (ExperimentState::Stopped, reason::STOPPED),
    ] {
        let rec = continued(&ended(state, why), &more, "new yaml", &counts(4, 0))
            .unwrap()
            .unwrap();
        assert_eq!(rec.status.state, ExperimentState::Running);
        assert_eq!(rec.status.reason, reason::RESTARTING);
        assert_eq!(rec.status.completed_at, None);
        assert_eq!(rec.spec.max_trial_count, Some(8));
        assert_eq!(rec.source, "new yaml");
    }
    // A failed one continues when it may fail more and has trials left.
    let lenient = spec(|e| {
        e.max_trial_count = Some(8);
        e.max_failed_trial_count = Some(5);
    });
    let rec = continued(
        &ended(ExperimentState::Failed, reason::FAILED),
        &lenient,
        "",
        &counts(3, 2),
    );
    assert_eq!(rec.unwrap().unwrap().status.state, ExperimentState::Running);
    // A running one takes the new counts as they are.
    let running = ended(ExperimentState::Running, reason::RUNNING);
    let rec = continued(&running, &more, "", &counts(1, 0))
        .unwrap()
        .unwrap();
    assert_eq!(rec.status, running.status);
    assert_eq!(rec.spec.max_trial_count, Some(8));
}

#[test]
fn what_cannot_continue_says_why() {
    let cases = [
        (
            ended(ExperimentState::Succeeded, reason::MAX_TRIALS_REACHED),
            spec(|e| e.max_trial_count = Some(3)),
            counts(4, 0),
            "must be above the 4 trials",
        ),
        (
            ended(ExperimentState::Succeeded, reason::GOAL_REACHED),
            spec(|e| e.max_trial_count = Some(9)),
            counts(2, 0),
            "reached its goal",
        ),
        (
            ended(ExperimentState::Succeeded, reason::SUGGESTION_END_REACHED),
            spec(|e| e.max_trial_count = Some(9)),
            counts(2, 0),
            "exhausted",
        ),
        (
            ended(ExperimentState::Failed, reason::FAILED),
            spec(|e| e.max_trial_count = Some(9)),
            counts(3, 2),
            "maxFailedTrialCount must be above the 2",
        ),
        (
            ended(ExperimentState::Running, reason::RUNNING),
            spec(|e| e.objective.metric = "acc".into()),
            counts(0, 0),
            "only parallelTrialCount",
        ),
    ];
    for (old, new, c, wanted) in cases {
        let e = continued(&old, &new, "", &c).unwrap_err();
        assert!(e.contains(wanted), "{e}");
    }
    // The same spec is no change.
    let old = ended(ExperimentState::Succeeded, reason::MAX_TRIALS_REACHED);
    assert_eq!(continued(&old, &old.spec, "", &counts(4, 0)), Ok(None));
}
