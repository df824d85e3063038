//! kestrel's management messages ⇄ core records. A client rebuilds full records from an
//! `ExperimentDetail` by re-reading the stored YAML, so the CLI prints a server's
//! experiments with the same code as a local store's.

use kestrel_core::{
    AlgorithmCatalog, Assignments, ExperimentRecord, ExperimentState, ExperimentStatus, FieldError,
    MetricObservation, SearchSpace, TrialCounts, TrialRecord, TrialState, Value,
};

use super::{ConvertError, spec_error, time, time_string};
use crate::manager as pb;

/// A trial record as a message.
pub fn trial(t: &TrialRecord) -> pb::Trial {
    pb::Trial {
        name: t.name.clone(),
        index: t.index,
        state: t.state.as_str().into(),
        reason: t.reason.clone(),
        message: t.message.clone(),
        assignments: t
            .assignments
            .iter()
            .map(|(name, v)| pb::Assignment {
                name: name.clone(),
                value: v.to_string(),
            })
            .collect(),
        labels: t.labels.clone().into_iter().collect(),
        objective: t.objective,
        observation: t
            .observation
            .iter()
            .map(|m| pb::MetricObservation {
                name: m.name.clone(),
                min: m.min,
                max: m.max,
                latest: m.latest.clone(),
            })
            .collect(),
        created_at: t.created_at.to_string(),
        started_at: time_string(t.started_at),
        completed_at: time_string(t.completed_at),
    }
}

/// Trial counts as a message.
pub fn counts(c: &TrialCounts) -> pb::TrialCounts {
    pb::TrialCounts {
        created: c.created,
        running: c.running,
        succeeded: c.succeeded,
        failed: c.failed,
        killed: c.killed,
        metrics_unavailable: c.metrics_unavailable,
        early_stopped: c.early_stopped,
    }
}

/// The summary of an experiment; `best` is its best trial so far.
pub fn info(
    rec: &ExperimentRecord,
    c: &TrialCounts,
    best: Option<&TrialRecord>,
) -> pb::ExperimentInfo {
    let spec = &rec.spec;
    pb::ExperimentInfo {
        name: spec.name.clone(),
        state: rec.status.state.as_str().into(),
        reason: rec.status.reason.clone(),
        message: rec.status.message.clone(),
        algorithm: spec.algorithm.name.clone(),
        objective_metric: spec.objective.metric.clone(),
        objective_type: spec.objective.kind.as_str().into(),
        goal: spec.objective.goal,
        max_trial_count: spec.max_trial_count,
        parallel_trial_count: spec.parallel_trial_count,
        counts: Some(counts(c)),
        best_trial: best.map(trial),
        seed: rec.seed,
        created_at: rec.created_at.to_string(),
        started_at: time_string(rec.status.started_at),
        completed_at: time_string(rec.status.completed_at),
    }
}

/// A trial message as a record of `experiment` (assignments read against `space`).
pub fn trial_record(
    t: &pb::Trial,
    experiment: &str,
    space: &SearchSpace,
) -> Result<TrialRecord, ConvertError> {
    let at = format!("trial {:?}", t.name);
    let state = TrialState::parse(&t.state).ok_or_else(|| {
        ConvertError::field(format!("{at}.state"), format!("{:?} is unknown", t.state))
    })?;
    let mut assignments = Assignments::new();
    for a in &t.assignments {
        let v = space
            .params
            .iter()
            .find(|p| p.name == a.name)
            .and_then(|p| p.domain.parse(&a.value))
            .unwrap_or_else(|| Value::Str(a.value.clone()));
        assignments.insert(a.name.clone(), v);
    }
    let created = time(&t.created_at, &format!("{at}.created_at"))?;
    Ok(TrialRecord {
        name: t.name.clone(),
        experiment: experiment.to_string(),
        index: t.index,
        assignments,
        labels: t.labels.clone().into_iter().collect(),
        state,
        reason: t.reason.clone(),
        message: t.message.clone(),
        created_at: created.unwrap_or(kestrel_core::Timestamp::UNIX_EPOCH),
        started_at: time(&t.started_at, &format!("{at}.started_at"))?,
        completed_at: time(&t.completed_at, &format!("{at}.completed_at"))?,
        observation: t
            .observation
            .iter()
            .map(|m| MetricObservation {
                name: m.name.clone(),
                min: m.min,
                max: m.max,
                latest: m.latest.clone(),
            })
            .collect(),
        objective: t.objective,
        run: None,
        restarts: 0,
        credential: None,
    })
}

/// The experiment record of a summary whose spec is `source` (the stored YAML).
pub fn experiment_record(
    info: &pb::ExperimentInfo,
    source: &str,
    catalog: &dyn AlgorithmCatalog,
) -> Result<ExperimentRecord, ConvertError> {
    let mut spec = kestrel_core::parse_experiment(source, catalog)
        .map_err(|e| spec_error(&e, |p| format!("source.{p}")))?;
    spec.name = info.name.clone();
    let state = ExperimentState::parse(&info.state)
        .ok_or_else(|| ConvertError::field("info.state", format!("{:?} is unknown", info.state)))?;
    Ok(ExperimentRecord {
        spec,
        source: source.to_string(),
        seed: info.seed,
        created_at: time(&info.created_at, "info.created_at")?
            .unwrap_or(kestrel_core::Timestamp::UNIX_EPOCH),
        status: ExperimentStatus {
            state,
            reason: info.reason.clone(),
            message: info.message.clone(),
            started_at: time(&info.started_at, "info.started_at")?,
            completed_at: time(&info.completed_at, "info.completed_at")?,
        },
        base_dir: None,
        warm_start: None,
    })
}

/// An experiment with its trials, rebuilt from a detail message.
pub fn detail_records(
    d: &pb::ExperimentDetail,
    catalog: &dyn AlgorithmCatalog,
) -> Result<(ExperimentRecord, Vec<TrialRecord>), ConvertError> {
    let info = d
        .info
        .as_ref()
        .ok_or_else(|| ConvertError::field("info", "is required"))?;
    let rec = experiment_record(info, &d.source, catalog)?;
    let mut errs: Vec<FieldError> = Vec::new();
    let mut trials = Vec::with_capacity(d.trials.len());
    for t in &d.trials {
        match trial_record(t, &rec.spec.name, &rec.spec.space) {
            Ok(r) => trials.push(r),
            Err(e) => errs.extend(e.fields().iter().cloned()),
        }
    }
    if errs.is_empty() {
        Ok((rec, trials))
    } else {
        Err(ConvertError::Invalid(errs))
    }
}
