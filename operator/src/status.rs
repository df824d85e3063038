//! kestrel's records in Katib's shape: an Experiment's `status` and a Trial resource,
//! field by field as katib-controller writes them (Go's `omitempty`: empty lists, zero
//! counts and empty strings are left out).
//!
//! Conditions keep one entry per type. An experiment has `Created`, then `Running` (set
//! `False`, keeping its reason, once the experiment ends), then its end: `Succeeded`
//! (`ExperimentGoalReached`, `ExperimentMaxTrialsReached`, kestrel's
//! `ExperimentSuggestionEndReached` when a grid is exhausted), `Failed` (`ExperimentFailed`)
//! or kestrel's `Stopped`. A trial likewise has `Created`, `Running` and its end
//! (`Succeeded`, `Failed`, `MetricsUnavailable`, `EarlyStopped`, `Killed`).

use jiff::Timestamp;
use kestrel_core::experiment::{CollectorKind, FileFormat};
use kestrel_core::metrics::MetricObservation;
use kestrel_core::status::reason;
use kestrel_core::{
    Experiment, ExperimentRecord, ExperimentState, TrialRecord, TrialState, best_trial,
};
use serde_json::{Map, Value as Json, json};

/// Every field of Katib's `ExperimentStatus` (`../shared/katib-contract.md`, §4).
pub const EXPERIMENT_STATUS_FIELDS: &[&str] = &[
    "startTime",
    "completionTime",
    "lastReconcileTime",
    "conditions",
    "currentOptimalTrial",
    "runningTrialList",
    "pendingTrialList",
    "failedTrialList",
    "succeededTrialList",
    "killedTrialList",
    "earlyStoppedTrialList",
    "metricsUnavailableTrialList",
    "trials",
    "trialsSucceeded",
    "trialsFailed",
    "trialsKilled",
    "trialsPending",
    "trialsRunning",
    "trialsEarlyStopped",
    "trialMetricsUnavailable",
];

/// Every field of Katib's `TrialSpec`.
pub const TRIAL_SPEC_FIELDS: &[&str] = &[
    "objective",
    "parameterAssignments",
    "earlyStoppingRules",
    "runSpec",
    "retainRun",
    "metricsCollector",
    "primaryPodLabels",
    "primaryContainerName",
    "successCondition",
    "failureCondition",
    "labels",
];

/// Every field of Katib's `TrialStatus`.
pub const TRIAL_STATUS_FIELDS: &[&str] = &[
    "startTime",
    "completionTime",
    "lastReconcileTime",
    "conditions",
    "observation",
];

/// Inserts `value` unless Go's `omitempty` would leave it out.
fn put(o: &mut Map<String, Json>, key: &str, value: Json) {
    let empty = match &value {
        Json::Null => true,
        Json::String(s) => s.is_empty(),
        Json::Array(a) => a.is_empty(),
        Json::Number(n) => n.as_u64() == Some(0),
        Json::Bool(b) => !b,
        Json::Object(_) => false,
    };
    if !empty {
        o.insert(key.into(), value);
    }
}

fn time(t: Option<Timestamp>) -> Json {
    t.map_or(Json::Null, |t| {
        json!(t.round(jiff::Unit::Second).unwrap_or(t).to_string())
    })
}

fn condition(kind: &str, on: bool, reason: &str, message: &str, at: Option<Timestamp>) -> Json {
    let mut c = Map::new();
    c.insert("type".into(), json!(kind));
    c.insert("status".into(), json!(if on { "True" } else { "False" }));
    put(&mut c, "reason", json!(reason));
    put(&mut c, "message", json!(message));
    put(&mut c, "lastUpdateTime", time(at));
    put(&mut c, "lastTransitionTime", time(at));
    Json::Object(c)
}

/// Katib's `observation`: each metric's min, max (numbers printed as Go prints them, or
/// `unavailable`) and latest report.
pub fn observation(metrics: &[MetricObservation]) -> Json {
    let num = |v: Option<f64>| v.map_or("unavailable".to_string(), |x| x.to_string());
    let metrics: Vec<Json> = metrics
        .iter()
        .map(|m| json!({"name": m.name, "min": num(m.min), "max": num(m.max), "latest": m.latest}))
        .collect();
    let mut o = Map::new();
    put(&mut o, "metrics", Json::Array(metrics));
    Json::Object(o)
}

/// The trial's assignments as Katib lists them: `[{name, value}]` in the experiment's
/// parameter order, values as strings.
pub fn assignments(exp: &Experiment, t: &TrialRecord) -> Json {
    let mut names: Vec<&str> = exp.space.params.iter().map(|p| p.name.as_str()).collect();
    for k in t.assignments.keys() {
        if !names.contains(&k.as_str()) {
            names.push(k);
        }
    }
    Json::Array(
        names
            .into_iter()
            .filter_map(|n| {
                let v = t.assignments.get(n)?;
                Some(json!({"name": n, "value": v.to_string()}))
            })
            .collect(),
    )
}

/// The Katib status list field of trials in `state`.
fn list_field(state: TrialState) -> &'static str {
    match state {
        TrialState::Created => "pendingTrialList",
        TrialState::Running => "runningTrialList",
        TrialState::Succeeded => "succeededTrialList",
        TrialState::Failed => "failedTrialList",
        TrialState::Killed => "killedTrialList",
        TrialState::MetricsUnavailable => "metricsUnavailableTrialList",
        TrialState::EarlyStopped => "earlyStoppedTrialList",
    }
}

/// The Katib status count field of trials in `state`.
fn count_field(state: TrialState) -> &'static str {
    match state {
        TrialState::Created => "trialsPending",
        TrialState::Running => "trialsRunning",
        TrialState::Succeeded => "trialsSucceeded",
        TrialState::Failed => "trialsFailed",
        TrialState::Killed => "trialsKilled",
        TrialState::MetricsUnavailable => "trialMetricsUnavailable",
        TrialState::EarlyStopped => "trialsEarlyStopped",
    }
}

fn experiment_conditions(rec: &ExperimentRecord) -> Vec<Json> {
    let s = &rec.status;
    let mut out = vec![condition(
        "Created",
        true,
        reason::CREATED,
        "Experiment is created",
        Some(rec.created_at),
    )];
    if s.state == ExperimentState::Created {
        return out;
    }
    let started = s.started_at.or(Some(rec.created_at));
    let running = s.state == ExperimentState::Running;
    out.push(condition(
        "Running",
        running,
        reason::RUNNING,
        "Experiment is running",
        if running {
            started
        } else {
            s.completed_at.or(started)
        },
    ));
    if s.state.is_terminal() {
        out.push(condition(
            s.state.as_str(),
            true,
            &s.reason,
            &s.message,
            s.completed_at,
        ));
    } else if s.reason == reason::RESTARTING {
        // Continued after it had ended (Katib's Restarting condition).
        out.push(condition(
            "Restarting",
            true,
            &s.reason,
            &s.message,
            started,
        ));
    }
    out
}

/// Katib's `status` of the Experiment `rec` with `trials`, reconciled at `now`.
pub fn experiment_status(rec: &ExperimentRecord, trials: &[TrialRecord], now: Timestamp) -> Json {
    let exp = &rec.spec;
    let mut o = Map::new();
    put(&mut o, "startTime", time(Some(rec.created_at)));
    put(&mut o, "completionTime", time(rec.status.completed_at));
    put(&mut o, "lastReconcileTime", time(Some(now)));
    put(
        &mut o,
        "conditions",
        Json::Array(experiment_conditions(rec)),
    );
    let optimal = match best_trial(exp, trials) {
        Some(b) => {
            let mut t = Map::new();
            put(&mut t, "bestTrialName", json!(b.name));
            put(&mut t, "parameterAssignments", assignments(exp, b));
            t.insert("observation".into(), observation(&b.observation));
            Json::Object(t)
        }
        None => json!({"observation": {}}),
    };
    o.insert("currentOptimalTrial".into(), optimal);
    for state in TrialState::ALL {
        let names: Vec<Json> = trials
            .iter()
            .filter(|t| t.state == state)
            .map(|t| json!(t.name))
            .collect();
        put(&mut o, count_field(state), json!(names.len()));
        put(&mut o, list_field(state), Json::Array(names));
    }
    put(&mut o, "trials", json!(trials.len()));
    Json::Object(o)
}

/// Katib's `metricsCollector` (a Trial's copy of `metricsCollectorSpec`).
fn metrics_collector(exp: &Experiment) -> Json {
    let c = &exp.metrics_collector;
    let mut source = Map::new();
    let kind = match &c.kind {
        CollectorKind::StdOut => "StdOut",
        CollectorKind::File { path, format } => {
            let format = match format {
                FileFormat::Text => "TEXT",
                FileFormat::Json => "JSON",
            };
            source.insert(
                "fileSystemPath".into(),
                json!({"path": path, "kind": "File", "format": format}),
            );
            "File"
        }
        CollectorKind::Push => "Push",
        CollectorKind::TensorFlowEvent { path } => {
            source.insert(
                "fileSystemPath".into(),
                json!({"path": path, "kind": "Directory"}),
            );
            "TensorFlowEvent"
        }
        CollectorKind::Unsupported { name } => name.as_str(),
    };
    if !c.filters.is_empty() {
        source.insert("filter".into(), json!({"metricsFormat": c.filters}));
    }
    let mut out = Map::new();
    out.insert("collector".into(), json!({"kind": kind}));
    if !source.is_empty() {
        out.insert("source".into(), Json::Object(source));
    }
    Json::Object(out)
}

/// Katib's `objective` (an Experiment's, copied into each Trial).
pub fn objective(exp: &Experiment) -> Json {
    let ob = &exp.objective;
    let mut o = Map::new();
    o.insert("type".into(), json!(ob.kind.as_str()));
    if let Some(g) = ob.goal {
        o.insert("goal".into(), json!(g));
    }
    o.insert("objectiveMetricName".into(), json!(ob.metric));
    put(
        &mut o,
        "additionalMetricNames",
        json!(ob.additional_metrics),
    );
    let strategies: Vec<Json> = ob
        .all_metrics()
        .map(|m| json!({"name": m, "value": ob.strategy(m).as_str()}))
        .collect();
    put(&mut o, "metricStrategies", Json::Array(strategies));
    Json::Object(o)
}

fn trial_conditions(t: &TrialRecord) -> Vec<Json> {
    let mut out = vec![condition(
        "Created",
        true,
        TrialState::Created.reason(),
        "Trial is created",
        Some(t.created_at),
    )];
    if t.started_at.is_some() || t.state == TrialState::Running {
        let running = t.state == TrialState::Running;
        let at = if running {
            t.started_at
        } else {
            t.completed_at.or(t.started_at)
        };
        out.push(condition(
            "Running",
            running,
            TrialState::Running.reason(),
            "Trial is running",
            at,
        ));
    }
    if t.state.is_terminal() {
        let why = if t.reason.is_empty() {
            t.state.reason()
        } else {
            t.reason.as_str()
        };
        out.push(condition(
            t.state.as_str(),
            true,
            why,
            &t.message,
            t.completed_at,
        ));
    }
    out
}

/// Katib's Trial resource for `t` of the experiment `rec`: its `runSpec` is the rendered
/// trial object; labels and owner are the caller's (metadata holds name and namespace).
pub fn trial_resource(
    rec: &ExperimentRecord,
    t: &TrialRecord,
    run_spec: Json,
    now: Timestamp,
) -> Json {
    let exp = &rec.spec;
    let tt = &exp.trial_template;
    let mut spec = Map::new();
    spec.insert("objective".into(), objective(exp));
    spec.insert("parameterAssignments".into(), assignments(exp, t));
    spec.insert("runSpec".into(), run_spec);
    put(&mut spec, "retainRun", json!(tt.retain));
    spec.insert("metricsCollector".into(), metrics_collector(exp));
    put(
        &mut spec,
        "primaryPodLabels",
        if tt.primary_pod_labels.is_empty() {
            Json::Null
        } else {
            json!(tt.primary_pod_labels)
        },
    );
    put(
        &mut spec,
        "primaryContainerName",
        json!(tt.primary_container_name),
    );
    put(&mut spec, "successCondition", json!(tt.success_condition));
    put(&mut spec, "failureCondition", json!(tt.failure_condition));
    put(
        &mut spec,
        "labels",
        if t.labels.is_empty() {
            Json::Null
        } else {
            json!(t.labels)
        },
    );
    let mut status = Map::new();
    put(&mut status, "startTime", time(t.started_at));
    put(&mut status, "completionTime", time(t.completed_at));
    put(&mut status, "lastReconcileTime", time(Some(now)));
    put(&mut status, "conditions", Json::Array(trial_conditions(t)));
    if !t.observation.is_empty() {
        status.insert("observation".into(), observation(&t.observation));
    }
    json!({
        "apiVersion": crate::API_VERSION,
        "kind": "Trial",
        "metadata": {
            "name": t.name,
            "namespace": exp.namespace.clone().unwrap_or_else(|| "default".into()),
            "labels": {"katib.kubeflow.org/experiment": exp.name},
        },
        "spec": spec,
        "status": status,
    })
}

#[cfg(test)]
mod tests;
