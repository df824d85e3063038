//! Katib's `api.v1.beta1` messages ⇄ core: the experiment a suggestion request carries,
//! its trials, the proposals of a reply and observation logs.
//!
//! The experiment is checked by the same rules as a YAML Experiment
//! ([`kestrel_core::validate::problem`], in `spec`); error paths are spelled as in the
//! message, e.g. `experiment.spec.parameter_specs.parameters[0].feasible_space.min`.

use kestrel_core::{
    Assignments, FieldError, MetricLog, MetricObservation, ObjectiveType, Problem, Timestamp,
    TrialRecord, TrialState, Value,
};

use super::{ConvertError, time};
use crate::katib as pb;

mod spec;
#[cfg(test)]
pub(crate) use spec::wire_path;
pub use spec::{Call, early_stopping, problem, problem_for};

/// The trials of a request, as records the algorithms read. `index` is the position in
/// the request (Katib has no proposal index). Assignments must name every parameter of
/// the space with a feasible value; NAS experiments' assignments are kept as text.
pub fn trials(problem: &Problem, trials: &[pb::Trial]) -> Result<Vec<TrialRecord>, ConvertError> {
    trials_after(problem, &[], trials)
}

/// [`trials`] of the request whose first trials were already converted to `before` (a
/// cache of an earlier request's history), converting only `rest`: `before` is needed
/// only for its names (each name once in the whole request). The records of `rest` are
/// exactly those [`trials`] gives for the whole request.
pub fn trials_after(
    problem: &Problem,
    before: &[TrialRecord],
    rest: &[pb::Trial],
) -> Result<Vec<TrialRecord>, ConvertError> {
    if rest.is_empty() {
        // Nothing new: the names before were checked when they were converted.
        return Ok(Vec::new());
    }
    let mut errs = Vec::new();
    let mut names: std::collections::HashSet<&str> =
        before.iter().map(|t| t.name.as_str()).collect();
    let mut out = Vec::with_capacity(rest.len());
    let offset = before.len();
    for (i, t) in rest.iter().enumerate().map(|(j, t)| (offset + j, t)) {
        if t.name.trim().is_empty() {
            errs.push(FieldError::new(format!("trials[{i}].name"), "is required"));
        } else if !names.insert(t.name.as_str()) {
            errs.push(FieldError::new(
                format!("trials[{i}].name"),
                format!("{:?} appears twice", t.name),
            ));
        }
        if let Some(rec) = trial(problem, t, i, &mut errs) {
            out.push(rec);
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(ConvertError::Invalid(errs))
    }
}

/// One trial of a request. Field paths of errors are built only when there is an error:
/// a request carries thousands of trials, and most carry none.
fn trial(
    problem: &Problem,
    t: &pb::Trial,
    i: usize,
    errs: &mut Vec<FieldError>,
) -> Option<TrialRecord> {
    let before = errs.len();
    let spec = t.spec.as_ref();
    let given: &[pb::ParameterAssignment] = spec
        .and_then(|s| s.parameter_assignments.as_ref())
        .map_or(&[], |p| &p.assignments);
    let pa = || format!("trials[{i}].spec.parameter_assignments.assignments");
    let mut assignments = Assignments::new();
    if problem.nas_config.is_some() {
        for a in given {
            assignments.insert(a.name.clone(), Value::Str(a.value.clone()));
        }
    } else {
        for (j, a) in given.iter().enumerate() {
            let Some(p) = problem.space.params.iter().find(|p| p.name == a.name) else {
                errs.push(FieldError::new(
                    format!("{}[{j}].name", pa()),
                    format!("{:?} is not a parameter of the experiment", a.name),
                ));
                continue;
            };
            match p.domain.parse(&a.value) {
                Some(v) if p.domain.contains(&v) => {
                    assignments.insert(a.name.clone(), v);
                }
                _ => errs.push(FieldError::new(
                    format!("{}[{j}].value", pa()),
                    format!(
                        "{:?} is not a feasible {} value of {:?}",
                        a.value,
                        p.domain.type_name(),
                        a.name
                    ),
                )),
            }
        }
        for p in &problem.space.params {
            if !given.iter().any(|a| a.name == p.name) {
                errs.push(FieldError::new(
                    pa(),
                    format!("parameter {:?} is not assigned", p.name),
                ));
            }
        }
    }
    let none = pb::TrialStatus::default();
    let status = t.status.as_ref().unwrap_or(&none);
    let state = match status.condition() {
        pb::trial_status::TrialConditionType::Created => TrialState::Created,
        // Katib's Unknown is a trial whose state could not be read: still pending.
        pb::trial_status::TrialConditionType::Running
        | pb::trial_status::TrialConditionType::Unknown => TrialState::Running,
        pb::trial_status::TrialConditionType::Succeeded => TrialState::Succeeded,
        pb::trial_status::TrialConditionType::Killed => TrialState::Killed,
        pb::trial_status::TrialConditionType::Failed => TrialState::Failed,
        pb::trial_status::TrialConditionType::Metricsunavailable => TrialState::MetricsUnavailable,
        pb::trial_status::TrialConditionType::Earlystopped => TrialState::EarlyStopped,
    };
    let mut when = |s: &str, field: &str| match s.trim().parse::<Timestamp>() {
        Ok(t) => Some(t),
        Err(_) if s.trim().is_empty() => None,
        Err(_) => {
            if let Err(e) = time(s, &format!("trials[{i}].status.{field}")) {
                errs.extend(e.fields().iter().cloned());
            }
            None
        }
    };
    let started_at = when(&status.start_time, "start_time");
    let completed_at = when(&status.completion_time, "completion_time");
    let observation: Vec<MetricObservation> = status
        .observation
        .as_ref()
        .map(|o| {
            o.metrics
                .iter()
                .map(|m| {
                    let x = m.value.trim().parse::<f64>().ok().filter(|x| x.is_finite());
                    MetricObservation {
                        name: m.name.clone(),
                        min: x,
                        max: x,
                        latest: m.value.clone(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let objective = observation
        .iter()
        .find(|m| m.name == problem.objective.metric)
        .and_then(|m| m.min);
    if errs.len() > before {
        return None;
    }
    Some(TrialRecord {
        name: t.name.clone(),
        experiment: problem.name.clone(),
        index: i as u64,
        assignments,
        labels: spec
            .map(|s| s.labels.clone().into_iter().collect())
            .unwrap_or_default(),
        state,
        reason: state.reason().into(),
        message: String::new(),
        created_at: started_at.or(completed_at).unwrap_or(Timestamp::UNIX_EPOCH),
        started_at,
        completed_at,
        observation,
        objective,
        run: None,
        restarts: 0,
        credential: None,
    })
}

/// A proposal's assignments in the space's parameter order, values in Katib's spelling.
pub fn assignments(problem: &Problem, a: &Assignments) -> Vec<pb::ParameterAssignment> {
    let ordered = problem.space.params.iter().map(|p| p.name.as_str());
    let rest = a
        .keys()
        .map(String::as_str)
        .filter(|k| !problem.space.params.iter().any(|p| p.name == *k));
    ordered
        .chain(rest)
        .filter_map(|name| {
            a.get(name).map(|v| pb::ParameterAssignment {
                name: name.to_string(),
                value: v.to_string(),
            })
        })
        .collect()
}

/// The metric logs of a ReportObservationLog request. Katib's collectors always send a
/// time; a log without one is stamped with `received` rather than dropped.
pub fn metric_logs(
    log: Option<&pb::ObservationLog>,
    received: Timestamp,
) -> Result<Vec<MetricLog>, ConvertError> {
    let logs = log.map_or(&[][..], |l| &l.metric_logs[..]);
    if logs.len() > MAX_LOGS_PER_REQUEST {
        return Err(ConvertError::Invalid(vec![FieldError::new(
            "observation_log.metric_logs",
            format!(
                "{} logs in one request (at most {MAX_LOGS_PER_REQUEST})",
                logs.len()
            ),
        )]));
    }
    let mut errs = Vec::new();
    let mut out = Vec::with_capacity(logs.len());
    for (i, l) in logs.iter().enumerate() {
        let at = format!("observation_log.metric_logs[{i}]");
        let Some(m) = l.metric.as_ref().filter(|m| !m.name.trim().is_empty()) else {
            errs.push(FieldError::new(format!("{at}.metric.name"), "is required"));
            continue;
        };
        if m.name.len() > MAX_METRIC_NAME || m.value.len() > MAX_METRIC_VALUE {
            errs.push(FieldError::new(
                format!("{at}.metric"),
                format!(
                    "name of {} bytes or value of {} bytes (at most {MAX_METRIC_NAME} and {MAX_METRIC_VALUE})",
                    m.name.len(),
                    m.value.len()
                ),
            ));
            continue;
        }
        match time(&l.time_stamp, &format!("{at}.time_stamp")) {
            Ok(t) => out.push(MetricLog {
                time: t.unwrap_or(received),
                name: m.name.clone(),
                value: m.value.clone(),
            }),
            Err(e) => errs.extend(e.fields().iter().cloned()),
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(ConvertError::Invalid(errs))
    }
}

/// Most metric logs one ReportObservationLog may carry.
pub const MAX_LOGS_PER_REQUEST: usize = 10_000;
/// Longest metric name.
pub const MAX_METRIC_NAME: usize = 256;
/// Longest metric value (a DARTS genotype is a few hundred bytes).
pub const MAX_METRIC_VALUE: usize = 16 << 10;
/// Longest trial name (a Kubernetes object name).
pub const MAX_TRIAL_NAME: usize = 253;

/// Metric logs as a Katib observation log (times in RFC 3339, UTC).
pub fn observation_log(logs: &[MetricLog]) -> pb::ObservationLog {
    pb::ObservationLog {
        metric_logs: logs
            .iter()
            .map(|l| pb::MetricLog {
                time_stamp: l.time.to_string(),
                metric: Some(pb::Metric {
                    name: l.name.clone(),
                    value: l.value.clone(),
                }),
            })
            .collect(),
    }
}

/// Katib's objective type of a core one.
pub fn objective_type(t: ObjectiveType) -> pb::ObjectiveType {
    match t {
        ObjectiveType::Minimize => pb::ObjectiveType::Minimize,
        ObjectiveType::Maximize => pb::ObjectiveType::Maximize,
    }
}

/// A problem as Katib's Experiment message (what Katib's controller would send).
pub fn experiment(problem: &Problem) -> pb::Experiment {
    pb::Experiment {
        name: problem.name.clone(),
        spec: Some(pb::ExperimentSpec {
            parameter_specs: Some(pb::experiment_spec::ParameterSpecs {
                parameters: problem.space.params.iter().map(parameter_spec).collect(),
            }),
            objective: Some(pb::ObjectiveSpec {
                r#type: objective_type(problem.objective.kind).into(),
                goal: problem.objective.goal.unwrap_or(0.0),
                objective_metric_name: problem.objective.metric.clone(),
                additional_metric_names: problem.objective.additional_metrics.clone(),
            }),
            algorithm: Some(algorithm_spec(&problem.algorithm)),
            early_stopping: problem
                .early_stopping
                .as_ref()
                .map(|e| pb::EarlyStoppingSpec {
                    algorithm_name: e.name.clone(),
                    algorithm_settings: e
                        .settings
                        .iter()
                        .map(|(name, value)| pb::EarlyStoppingSetting {
                            name: name.clone(),
                            value: value.clone(),
                        })
                        .collect(),
                }),
            parallel_trial_count: i32::try_from(problem.parallel_trial_count).unwrap_or(i32::MAX),
            max_trial_count: problem
                .max_trial_count
                .map_or(0, |m| i32::try_from(m).unwrap_or(i32::MAX)),
            nas_config: None,
        }),
    }
}

/// An algorithm and its settings, in file order, as Katib's `AlgorithmSpec`.
pub fn algorithm_spec(a: &kestrel_core::AlgorithmSpec) -> pb::AlgorithmSpec {
    pb::AlgorithmSpec {
        algorithm_name: a.name.clone(),
        algorithm_settings: a
            .settings
            .iter()
            .map(|(name, value)| pb::AlgorithmSetting {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
    }
}

fn parameter_spec(p: &kestrel_core::ParamSpec) -> pb::ParameterSpec {
    use kestrel_core::{Distribution, Domain};
    let dist = |d: Distribution| match d {
        Distribution::Uniform => pb::Distribution::Uniform,
        Distribution::LogUniform => pb::Distribution::LogUniform,
        Distribution::Normal => pb::Distribution::Normal,
        Distribution::LogNormal => pb::Distribution::LogNormal,
    };
    let (kind, fs) = match &p.domain {
        Domain::Double {
            min,
            max,
            step,
            distribution,
        } => (
            pb::ParameterType::Double,
            pb::FeasibleSpace {
                max: max.to_string(),
                min: min.to_string(),
                list: vec![],
                step: step.map(|s| s.to_string()).unwrap_or_default(),
                distribution: dist(*distribution).into(),
            },
        ),
        Domain::Int {
            min,
            max,
            step,
            distribution,
        } => (
            pb::ParameterType::Int,
            pb::FeasibleSpace {
                max: max.to_string(),
                min: min.to_string(),
                list: vec![],
                step: step.to_string(),
                distribution: dist(*distribution).into(),
            },
        ),
        Domain::Discrete { values, .. } => (
            pb::ParameterType::Discrete,
            pb::FeasibleSpace {
                list: values.clone(),
                ..Default::default()
            },
        ),
        Domain::Categorical { values } => (
            pb::ParameterType::Categorical,
            pb::FeasibleSpace {
                list: values.clone(),
                ..Default::default()
            },
        ),
    };
    pb::ParameterSpec {
        name: p.name.clone(),
        parameter_type: kind.into(),
        feasible_space: Some(fs),
    }
}
