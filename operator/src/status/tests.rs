//! The projections against Katib's field lists (`../shared/katib-contract.md`, §4) and
//! known values.

use std::collections::BTreeSet;

use kestrel_core::space::Value;
use kestrel_core::{ExperimentStatus, MetricObservation};

use super::*;

const YAML: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: mnist, namespace: kubeflow}
spec:
  objective: {type: maximize, goal: 0.99, objectiveMetricName: accuracy, additionalMetricNames: [loss]}
  algorithm: {algorithmName: random}
  maxTrialCount: 7
  parameters:
    - {name: lr, parameterType: double, feasibleSpace: {min: "0.01", max: "0.1"}}
    - {name: layers, parameterType: int, feasibleSpace: {min: "1", max: "4"}}
  trialTemplate:
    primaryContainerName: training
    trialParameters: [{name: lr, reference: lr}, {name: layers, reference: layers}]
    trialSpec: {apiVersion: batch/v1, kind: Job, spec: {template: {spec: {restartPolicy: Never, containers: [{name: training, image: x, command: [t, "${trialParameters.lr}", "${trialParameters.layers}"]}]}}}}
"#;

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_780_000_000 + s).unwrap()
}

fn record(state: ExperimentState) -> ExperimentRecord {
    let exp = kestrel_core::parse_experiment(YAML, &kestrel_algorithms::Catalog).unwrap();
    let mut rec = ExperimentRecord::new(exp, YAML.into(), 1, None, at(0));
    rec.status = ExperimentStatus {
        state,
        reason: reason::MAX_TRIALS_REACHED.into(),
        message: "Experiment has succeeded because max trial count has reached".into(),
        started_at: Some(at(1)),
        completed_at: state.is_terminal().then(|| at(100)),
    };
    rec
}

fn metric(name: &str, min: f64, max: f64, latest: &str) -> MetricObservation {
    MetricObservation {
        name: name.into(),
        min: Some(min),
        max: Some(max),
        latest: latest.into(),
    }
}

fn trial(i: u64, state: TrialState, accuracy: Option<f64>) -> TrialRecord {
    let assignments = [
        ("lr".to_string(), Value::Double(0.05)),
        ("layers".to_string(), Value::Int(i as i64)),
    ]
    .into();
    let mut t = TrialRecord::created("mnist", format!("mnist-{i}"), i, assignments, at(i as i64));
    t.state = state;
    t.reason = state.reason().into();
    if state != TrialState::Created {
        t.started_at = Some(at(10 + i as i64));
    }
    if state.is_terminal() {
        t.completed_at = Some(at(50 + i as i64));
    }
    if let Some(a) = accuracy {
        t.objective = Some(a);
        t.observation = vec![
            metric("accuracy", a - 0.1, a, &a.to_string()),
            metric("loss", 0.25, 1.5, "0.25"),
        ];
    }
    t
}

fn keys(v: &Json) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn set<'a>(names: &[&'a str]) -> BTreeSet<&'a str> {
    names.iter().copied().collect()
}

#[test]
fn an_experiment_with_trials_in_every_state_fills_every_katib_field() {
    let trials = vec![
        trial(0, TrialState::Succeeded, Some(0.9)),
        trial(1, TrialState::Succeeded, Some(0.95)),
        trial(2, TrialState::Failed, None),
        trial(3, TrialState::Killed, None),
        trial(4, TrialState::MetricsUnavailable, None),
        trial(5, TrialState::EarlyStopped, Some(0.5)),
        trial(6, TrialState::Running, None),
        trial(7, TrialState::Created, None),
    ];
    let s = experiment_status(&record(ExperimentState::Succeeded), &trials, at(200));
    assert_eq!(keys(&s), set(EXPERIMENT_STATUS_FIELDS));
    assert_eq!(s["trials"], 8);
    assert_eq!(s["trialsSucceeded"], 2);
    assert_eq!(s["succeededTrialList"], json!(["mnist-0", "mnist-1"]));
    assert_eq!(s["pendingTrialList"], json!(["mnist-7"]));
    assert_eq!(s["trialMetricsUnavailable"], 1);
    assert_eq!(s["startTime"], "2026-05-28T20:26:40Z");
    assert_eq!(s["completionTime"], "2026-05-28T20:28:20Z");
    // The best trial, with Katib's assignment order and string values.
    let best = &s["currentOptimalTrial"];
    assert_eq!(best["bestTrialName"], "mnist-1");
    assert_eq!(
        best["parameterAssignments"],
        json!([{"name": "lr", "value": "0.05"}, {"name": "layers", "value": "1"}])
    );
    assert_eq!(
        best["observation"]["metrics"][0],
        json!({"name": "accuracy", "min": "0.85", "max": "0.95", "latest": "0.95"})
    );
    // One condition per type; Running set False once the experiment ended.
    let conditions = s["conditions"].as_array().unwrap();
    let shape: Vec<(&str, &str, &str)> = conditions
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
                c["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("Created", "True", "ExperimentCreated"),
            ("Running", "False", "ExperimentRunning"),
            ("Succeeded", "True", "ExperimentMaxTrialsReached"),
        ]
    );
    for c in conditions {
        assert_eq!(
            keys(c),
            set(&[
                "type",
                "status",
                "reason",
                "message",
                "lastUpdateTime",
                "lastTransitionTime"
            ])
        );
    }
}

#[test]
fn a_new_experiment_has_only_what_katib_writes_for_one() {
    let s = experiment_status(&record(ExperimentState::Created), &[], at(5));
    assert_eq!(
        keys(&s),
        set(&[
            "startTime",
            "lastReconcileTime",
            "conditions",
            "currentOptimalTrial"
        ])
    );
    assert_eq!(s["currentOptimalTrial"], json!({"observation": {}}));
    assert_eq!(s["conditions"].as_array().unwrap().len(), 1);
    let running = experiment_status(
        &record(ExperimentState::Running),
        &[trial(0, TrialState::Running, None)],
        at(5),
    );
    assert_eq!(running["conditions"][1]["status"], "True");
    assert_eq!(running["runningTrialList"], json!(["mnist-0"]));
    assert!(running.get("completionTime").is_none());
    // Continued after it ended: Katib's Restarting condition.
    let mut restarted = record(ExperimentState::Running);
    restarted.status.reason = reason::RESTARTING.into();
    let s = experiment_status(&restarted, &[], at(5));
    let types: Vec<&str> = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Created", "Running", "Restarting"]);
}

#[test]
fn a_trial_resource_has_katibs_spec_and_status() {
    let rec = record(ExperimentState::Running);
    let mut t = trial(1, TrialState::Succeeded, Some(0.95));
    t.reason = "TrialSucceeded".into();
    t.message = "Trial has succeeded".into();
    t.labels = [("hyperband.rung".to_string(), "1".to_string())].into();
    let job = json!({"apiVersion": "batch/v1", "kind": "Job"});
    let r = trial_resource(&rec, &t, job.clone(), at(60));
    assert_eq!(r["apiVersion"], "kubeflow.org/v1beta1");
    assert_eq!(r["kind"], "Trial");
    assert_eq!(r["metadata"]["namespace"], "kubeflow");
    assert_eq!(
        r["metadata"]["labels"]["katib.kubeflow.org/experiment"],
        "mnist"
    );
    let spec_keys = keys(&r["spec"]);
    assert!(
        spec_keys.is_subset(&set(TRIAL_SPEC_FIELDS)),
        "{spec_keys:?}"
    );
    assert_eq!(
        spec_keys.len(),
        TRIAL_SPEC_FIELDS.len() - 3,
        "all but earlyStoppingRules, retainRun, primaryPodLabels"
    );
    assert_eq!(keys(&r["status"]), set(TRIAL_STATUS_FIELDS));
    assert_eq!(r["spec"]["runSpec"], job);
    assert_eq!(
        r["spec"]["objective"],
        json!({"type": "maximize", "goal": 0.99, "objectiveMetricName": "accuracy",
               "additionalMetricNames": ["loss"],
               "metricStrategies": [{"name": "accuracy", "value": "max"}, {"name": "loss", "value": "max"}]})
    );
    assert_eq!(
        r["spec"]["metricsCollector"],
        json!({"collector": {"kind": "StdOut"}})
    );
    assert_eq!(
        r["spec"]["successCondition"],
        r#"status.conditions.#(type=="Complete")#|#(status=="True")#"#
    );
    let types: Vec<&str> = r["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Created", "Running", "Succeeded"]);
    assert_eq!(
        r["status"]["conditions"][2]["message"],
        "Trial has succeeded"
    );
    assert_eq!(r["status"]["observation"]["metrics"][1]["min"], "0.25");
    // A trial that never ran: Created only, no observation.
    let pending = trial_resource(&rec, &trial(2, TrialState::Created, None), job, at(60));
    assert_eq!(
        keys(&pending["status"]),
        set(&["lastReconcileTime", "conditions"])
    );
}
