//! Documents of experiments and trials: the JSON (and YAML) and CSV that `kestrel get`,
//! `list` and `run` print with `-o json|yaml|csv` and that the dashboard serves and exports.
//!
//! One view, built field by field rather than from the store's own encoding: keys are
//! camelCase throughout (as Katib's resources), numbers are numbers (a metric's `latest` is
//! a number when it is one, text such as a DARTS genotype otherwise), and internals
//! (credential hashes) stay out.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::metrics::MetricObservation;
use crate::{
    Experiment, ExperimentRecord, ExperimentStatus, MetricLog, TrialCounts, TrialRecord, best_trial,
};

/// A CSV document could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing CSV: {0}")]
pub struct CsvError(String);

impl From<csv::Error> for CsvError {
    fn from(e: csv::Error) -> Self {
        CsvError(e.to_string())
    }
}

/// Trials sorted best first: those with an objective by value, then the rest by index.
pub fn ranked<'a>(exp: &Experiment, trials: &'a [TrialRecord]) -> Vec<&'a TrialRecord> {
    let mut v: Vec<&TrialRecord> = trials.iter().collect();
    v.sort_by(|a, b| match (a.objective, b.objective) {
        (Some(x), Some(y)) => {
            let ord = x.total_cmp(&y);
            let ord = if exp.objective.kind == crate::ObjectiveType::Maximize {
                ord.reverse()
            } else {
                ord
            };
            ord.then(a.index.cmp(&b.index))
        }
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.index.cmp(&b.index),
    });
    v
}

/// The value of metric `m` of trial `t`, by the strategy the experiment gives it.
pub fn metric_value(exp: &Experiment, t: &TrialRecord, m: &str) -> Option<f64> {
    t.observation
        .iter()
        .find(|o| o.name == m)
        .and_then(|o| o.value(exp.objective.strategy(m)))
}

/// Observation logs by trial name, for `--observation-log`.
pub type Logs = BTreeMap<String, Vec<MetricLog>>;

/// A number when `s` is a finite one, else the text.
fn number_or_text(s: &str) -> Value {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => json!(v),
        _ => json!(s),
    }
}

fn observation(o: &MetricObservation) -> Value {
    json!({
        "name": o.name,
        "min": o.min,
        "max": o.max,
        "latest": number_or_text(&o.latest),
    })
}

/// A trial; with `log`, its observation log (every report, oldest first).
pub fn trial(t: &TrialRecord, log: Option<&[MetricLog]>) -> Value {
    let mut v = json!({
        "name": t.name,
        "experiment": t.experiment,
        "index": t.index,
        "state": t.state.as_str(),
        "reason": t.reason,
        "message": t.message,
        "assignments": t.assignments,
        "labels": t.labels,
        "objective": t.objective,
        "observation": t.observation.iter().map(observation).collect::<Vec<_>>(),
        "createdAt": t.created_at,
        "startedAt": t.started_at,
        "completedAt": t.completed_at,
        "restarts": t.restarts,
    });
    if let Some(log) = log {
        v["observationLog"] = log
            .iter()
            .map(|m| json!({"time": m.time, "metric": m.name, "value": number_or_text(&m.value)}))
            .collect();
    }
    v
}

fn status(s: &ExperimentStatus) -> Value {
    json!({
        "state": s.state.to_string(),
        "reason": s.reason,
        "message": s.message,
        "startedAt": s.started_at,
        "completedAt": s.completed_at,
    })
}

fn counts(c: &TrialCounts) -> Value {
    json!({
        "total": c.total(),
        "created": c.created,
        "running": c.running,
        "succeeded": c.succeeded,
        "failed": c.failed,
        "killed": c.killed,
        "metricsUnavailable": c.metrics_unavailable,
        "earlyStopped": c.early_stopped,
    })
}

fn objective(e: &Experiment) -> Value {
    let o = &e.objective;
    json!({
        "type": o.kind.as_str(),
        "metric": o.metric,
        "goal": o.goal,
        "additionalMetrics": o.additional_metrics,
    })
}

/// The experiment and its trials as one document.
pub fn experiment(rec: &ExperimentRecord, trials: &[TrialRecord], logs: Option<&Logs>) -> Value {
    let best = best_trial(&rec.spec, trials).map(|t| t.name.clone());
    let settings: BTreeMap<&str, &str> = rec
        .spec
        .algorithm
        .settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    json!({
        "name": rec.name(),
        "status": status(&rec.status),
        "seed": rec.seed,
        "createdAt": rec.created_at,
        "objective": objective(&rec.spec),
        "algorithm": {"name": rec.spec.algorithm.name, "settings": settings},
        "parallelTrialCount": rec.spec.parallel_trial_count,
        "maxTrialCount": rec.spec.max_trial_count,
        "maxFailedTrialCount": rec.spec.max_failed_trial_count,
        "warmStart": rec.warm_start,
        "bestTrial": best,
        "counts": counts(&TrialCounts::of(trials)),
        "trials": trials
            .iter()
            .map(|t| trial(t, logs.map(|l| l.get(&t.name).map_or(&[][..], Vec::as_slice))))
            .collect::<Vec<_>>(),
    })
}

/// The trials as CSV, best first: name, state, reason, objective, additional metrics,
/// parameters, times and message; the header names the metric and the parameters.
pub fn trials_csv(exp: &Experiment, trials: &[TrialRecord]) -> Result<String, CsvError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["name", "state", "reason", exp.objective.metric.as_str()];
    header.extend(exp.objective.additional_metrics.iter().map(String::as_str));
    header.extend(exp.space.params.iter().map(|p| p.name.as_str()));
    header.extend(["createdAt", "startedAt", "completedAt", "message"]);
    w.write_record(&header)?;
    let time = |t: Option<jiff::Timestamp>| t.map(|t| t.to_string()).unwrap_or_default();
    for t in ranked(exp, trials) {
        let mut row = vec![
            t.name.clone(),
            t.state.as_str().to_string(),
            t.reason.clone(),
            t.objective.map(|v| v.to_string()).unwrap_or_default(),
        ];
        for m in &exp.objective.additional_metrics {
            let v = metric_value(exp, t, m);
            row.push(v.map(|v| v.to_string()).unwrap_or_default());
        }
        for p in &exp.space.params {
            row.push(
                t.assignments
                    .get(&p.name)
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            );
        }
        row.extend([
            time(Some(t.created_at)),
            time(t.started_at),
            time(t.completed_at),
            t.message.clone(),
        ]);
        w.write_record(&row)?;
    }
    let bytes = w.into_inner().map_err(|e| CsvError(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| CsvError(e.to_string()))
}

/// The experiments as CSV, oldest first.
pub fn experiments_csv(all: &[(ExperimentRecord, Vec<TrialRecord>)]) -> Result<String, CsvError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "name",
        "state",
        "reason",
        "algorithm",
        "metric",
        "best",
        "bestTrial",
        "succeeded",
        "total",
        "maxTrialCount",
        "createdAt",
    ])?;
    for (rec, trials) in all {
        let c = TrialCounts::of(trials);
        let best = best_trial(&rec.spec, trials);
        w.write_record([
            rec.name().to_string(),
            rec.status.state.to_string(),
            rec.status.reason.clone(),
            rec.spec.algorithm.name.clone(),
            rec.spec.objective.metric.clone(),
            best.and_then(|t| t.objective)
                .map(|v| v.to_string())
                .unwrap_or_default(),
            best.map(|t| t.name.clone()).unwrap_or_default(),
            c.succeeded.to_string(),
            c.total().to_string(),
            rec.spec
                .max_trial_count
                .map(|m| m.to_string())
                .unwrap_or_default(),
            rec.created_at.to_string(),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| CsvError(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| CsvError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_stay_numbers_and_text_stays_text() {
        assert_eq!(number_or_text("0.25"), json!(0.25));
        assert_eq!(number_or_text(" 3 "), json!(3.0));
        assert_eq!(number_or_text("NaN"), json!("NaN"));
        assert_eq!(
            number_or_text("Genotype(normal=[])"),
            json!("Genotype(normal=[])")
        );
    }

    #[test]
    fn trial_keys_are_camel_case_and_hold_no_credential() {
        let mut t = TrialRecord::created(
            "e",
            "e-1".into(),
            1,
            Default::default(),
            jiff::Timestamp::UNIX_EPOCH,
        );
        t.credential = Some("abc".into());
        t.observation.push(MetricObservation {
            name: "acc".into(),
            min: Some(0.5),
            max: Some(0.9),
            latest: "0.8".into(),
        });
        let log = [MetricLog {
            time: jiff::Timestamp::UNIX_EPOCH,
            name: "acc".into(),
            value: "0.5".into(),
        }];
        let v = trial(&t, Some(&log));
        for (k, _) in v.as_object().unwrap() {
            assert!(!k.contains('_'), "{k}");
        }
        assert!(v.get("credential").is_none());
        assert_eq!(v["observation"][0]["latest"], json!(0.8));
        assert_eq!(v["observationLog"][0]["value"], json!(0.5));
        assert!(trial(&t, None).get("observationLog").is_none());
    }
}
