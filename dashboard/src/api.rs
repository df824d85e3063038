//! The dashboard's JSON API. Documents are those of `kestrel get -o json`
//! ([`kestrel_core::document`]); the experiment adds its YAML and its parameters'
//! importance. Every name from a path is bounded before the store is asked.
//!
//! - `GET /api/experiments`: one summary per experiment.
//! - `GET /api/experiments/{e}`: the experiment with its trials, `yaml`, `importance`.
//! - `GET /api/experiments/{e}/reports`: every report of the objective metric, per trial.
//! - `GET /api/experiments/{e}/trials/{t}`: a trial with its observation log.
//! - `GET /api/experiments/{e}/trials/{t}/log?from=BYTE&tail=LINES`: its output.
//! - `GET /api/experiments/{e}/export.csv`, `export.json`: downloads.
//! - `POST /api/experiments/{e}/stop`, `DELETE /api/experiments/{e}`: the actions.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kestrel_algorithms::importance;
use kestrel_core::{ExperimentRecord, TrialCounts, TrialRecord, best_trial, document};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Dashboard;

/// Longest experiment or trial name accepted (Kubernetes' limit for names).
pub const MAX_NAME: usize = 253;
/// Most log lines a `tail` may ask for.
pub const MAX_TAIL: usize = 100_000;
/// Most bytes of log one response carries; the page asks again from where it stopped.
pub const MAX_LOG_CHUNK: u64 = 1 << 20;
/// Most reports per trial in the intermediate-values view of all trials; longer curves
/// are thinned evenly (the first and the last report always kept).
pub const MAX_CURVE_POINTS: usize = 2_000;
/// Most reports of one trial's page (the newest are kept).
pub const MAX_TRIAL_REPORTS: usize = 100_000;

/// The indices of at most `max` of `n` items, evenly spread, the last always among them.
pub fn thin(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    let max = max.max(2);
    let mut out: Vec<usize> = (0..max - 1).map(|k| k * (n - 1) / (max - 1)).collect();
    out.push(n - 1);
    out
}

/// Why a request was not answered.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The experiment or trial does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A bad name or parameter.
    #[error("{0}")]
    BadRequest(String),
    /// The action was refused.
    #[error("{0}")]
    Refused(String),
    /// The store or the server failed.
    #[error("{0}")]
    Internal(String),
    /// Too many of something at once; try again later.
    #[error("{0}")]
    Busy(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Refused(_) => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, Json(json!({"error": self.to_string()}))).into_response()
    }
}

/// A name from a path, bounded before use.
pub fn name(what: &str, s: &str) -> Result<String, ApiError> {
    if s.is_empty() || s.len() > MAX_NAME || s.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "{what} name must be 1 to {MAX_NAME} printable characters"
        )));
    }
    Ok(s.to_string())
}

/// The list's view of an experiment.
pub fn summary(rec: &ExperimentRecord, trials: &[TrialRecord]) -> Value {
    let best = best_trial(&rec.spec, trials);
    let c = TrialCounts::of(trials);
    json!({
        "name": rec.name(),
        "state": rec.status.state.to_string(),
        "reason": rec.status.reason,
        "algorithm": rec.spec.algorithm.name,
        "objective": {"type": rec.spec.objective.kind.as_str(), "metric": rec.spec.objective.metric},
        "counts": {"total": c.total(), "succeeded": c.succeeded, "running": c.running,
                   "failed": c.failed, "earlyStopped": c.early_stopped},
        "maxTrialCount": rec.spec.max_trial_count,
        "best": best.and_then(|t| t.objective),
        "bestTrial": best.map(|t| t.name.clone()),
        "createdAt": rec.created_at,
    })
}

/// Every experiment's [`summary`].
pub async fn summaries(d: &Dashboard) -> Result<Vec<Value>, ApiError> {
    d.read(|s| {
        let mut out = Vec::new();
        for rec in s.experiments()? {
            let trials = s.trials(rec.name())?;
            out.push(summary(&rec, &trials));
        }
        Ok(out)
    })
    .await
}

async fn list(State(d): State<Dashboard>) -> Result<Json<Value>, ApiError> {
    Ok(Json(Value::Array(summaries(&d).await?)))
}

/// The experiment and its trials, or `NotFound`.
pub async fn load(
    d: &Dashboard,
    exp: &str,
) -> Result<(ExperimentRecord, Vec<TrialRecord>), ApiError> {
    let e = exp.to_string();
    d.read(move |s| {
        let Some(rec) = s.experiment(&e)? else {
            return Ok(None);
        };
        let trials = s.trials(&e)?;
        Ok(Some((rec, trials)))
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no experiment {exp:?}")))
}

/// The experiment document of the page: `kestrel get -o json`'s, with `yaml`,
/// `importance` and the parameters' types and ranges.
pub fn experiment_doc(rec: &ExperimentRecord, trials: &[TrialRecord]) -> Value {
    let mut doc = document::experiment(rec, trials, None);
    let imp = importance::ped_anova(
        &rec.spec.space,
        rec.spec.objective.kind,
        trials,
        importance::DEFAULT_GAMMA,
    );
    doc["importance"] = imp
        .iter()
        .map(|i| json!({"name": i.name, "share": i.share, "divergence": i.divergence}))
        .collect();
    doc["yaml"] = json!(rec.source);
    doc["parameters"] = rec
        .spec
        .space
        .params
        .iter()
        .map(|p| json!({"name": p.name, "type": p.domain.type_name(), "domain": p.domain}))
        .collect();
    doc
}

async fn experiment(
    State(d): State<Dashboard>,
    Path(exp): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let exp = name("experiment", &exp)?;
    let (rec, trials) = load(&d, &exp).await?;
    Ok(Json(experiment_doc(&rec, &trials)))
}

async fn reports(
    State(d): State<Dashboard>,
    Path(exp): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let exp = name("experiment", &exp)?;
    let (rec, trials) = load(&d, &exp).await?;
    let metric = rec.spec.objective.metric.clone();
    let m = metric.clone();
    let by_trial = d
        .read(move |s| {
            let mut out = BTreeMap::new();
            for t in &trials {
                let logs = s.metrics(&t.name, Some(&m))?;
                // [time, value, report number from 1] of the numeric reports.
                let all: Vec<(f64, f64, usize)> = logs
                    .iter()
                    .filter_map(|l| {
                        let v: f64 = l.value.trim().parse().ok()?;
                        v.is_finite()
                            .then(|| (l.time.as_millisecond() as f64 / 1000.0, v))
                    })
                    .enumerate()
                    .map(|(i, (t, v))| (t, v, i + 1))
                    .collect();
                let points: Vec<Value> = thin(all.len(), MAX_CURVE_POINTS)
                    .into_iter()
                    .map(|i| json!([all[i].0, all[i].1, all[i].2]))
                    .collect();
                if !points.is_empty() {
                    out.insert(t.name.clone(), points);
                }
            }
            Ok(out)
        })
        .await?;
    Ok(Json(json!({"metric": metric, "trials": by_trial})))
}

async fn trial(
    State(d): State<Dashboard>,
    Path((exp, trial)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let exp = name("experiment", &exp)?;
    let trial = name("trial", &trial)?;
    let t = find_trial(&d, &exp, &trial).await?;
    let n = t.name.clone();
    let logs = d.read(move |s| s.metrics(&n, None)).await?;
    let skipped = logs.len().saturating_sub(MAX_TRIAL_REPORTS);
    let mut doc = document::trial(&t, Some(&logs[skipped..]));
    doc["observationLogSkipped"] = json!(skipped);
    doc["log"] = json!(d.runs_dir.is_some());
    Ok(Json(doc))
}

/// The trial `trial` of experiment `exp`, or `NotFound`.
pub async fn find_trial(d: &Dashboard, exp: &str, trial: &str) -> Result<TrialRecord, ApiError> {
    let t = trial.to_string();
    d.read(move |s| s.trial(&t))
        .await?
        .filter(|t| t.experiment == exp)
        .ok_or_else(|| ApiError::NotFound(format!("no trial {trial:?} in experiment {exp:?}")))
}

#[derive(Debug, Deserialize)]
struct LogQuery {
    from: Option<u64>,
    tail: Option<usize>,
}

/// Reads a log from `from` (at most [`MAX_LOG_CHUNK`] bytes), or its last `tail` lines.
/// Returns the text, the offset it ends at and whether the file exists.
pub fn read_log(
    path: &std::path::Path,
    from: Option<u64>,
    tail: Option<usize>,
) -> std::io::Result<(String, u64)> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((String::new(), 0)),
        Err(e) => return Err(e),
    };
    let size = f.metadata()?.len();
    let start = match (from, tail) {
        (Some(off), _) => off.min(size),
        (None, Some(_)) => size.saturating_sub(MAX_LOG_CHUNK),
        (None, None) => size.saturating_sub(MAX_LOG_CHUNK),
    };
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(MAX_LOG_CHUNK).read_to_end(&mut buf)?;
    let end = start + buf.len() as u64;
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if let (None, Some(n)) = (from, tail) {
        let lines: Vec<&str> = text.lines().collect();
        let keep = lines.len().saturating_sub(n);
        text = lines[keep..].join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
    }
    Ok((text, end))
}

async fn log(
    State(d): State<Dashboard>,
    Path((exp, trial)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<Json<Value>, ApiError> {
    let exp = name("experiment", &exp)?;
    let trial = name("trial", &trial)?;
    if q.tail.is_some_and(|n| n > MAX_TAIL) {
        return Err(ApiError::BadRequest(format!(
            "tail: at most {MAX_TAIL} lines"
        )));
    }
    let t = find_trial(&d, &exp, &trial).await?;
    let Some(runs) = d.runs_dir.clone() else {
        return Err(ApiError::NotFound(
            "trial logs are not kept where this dashboard can read them".into(),
        ));
    };
    let path = runs.join(&t.experiment).join(&t.name).join("trial.log");
    let (text, end) = tokio::task::spawn_blocking(move || read_log(&path, q.from, q.tail))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(format!("reading the log: {e}")))?;
    Ok(Json(json!({
        "text": text,
        "offset": end,
        "finished": t.state.is_terminal(),
    })))
}

fn download(content_type: &'static str, file: String, body: String) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

async fn export_csv(
    State(d): State<Dashboard>,
    Path(exp): Path<String>,
) -> Result<Response, ApiError> {
    let exp = name("experiment", &exp)?;
    let (rec, trials) = load(&d, &exp).await?;
    let csv =
        document::trials_csv(&rec.spec, &trials).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(download(
        "text/csv; charset=utf-8",
        format!("{exp}.csv"),
        csv,
    ))
}

async fn export_json(
    State(d): State<Dashboard>,
    Path(exp): Path<String>,
) -> Result<Response, ApiError> {
    let exp = name("experiment", &exp)?;
    let (rec, trials) = load(&d, &exp).await?;
    let doc = document::experiment(&rec, &trials, None);
    let text = serde_json::to_string_pretty(&doc).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(download("application/json", format!("{exp}.json"), text))
}

async fn stop(
    State(d): State<Dashboard>,
    Path(exp): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let exp = name("experiment", &exp)?;
    load(&d, &exp).await?;
    let msg = d.actions.stop(&exp).await.map_err(ApiError::Refused)?;
    Ok(Json(json!({"message": msg})))
}

async fn delete(
    State(d): State<Dashboard>,
    Path(exp): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let exp = name("experiment", &exp)?;
    load(&d, &exp).await?;
    let msg = d.actions.delete(&exp).await.map_err(ApiError::Refused)?;
    Ok(Json(json!({"message": msg})))
}

/// The API's routes.
pub fn routes() -> Router<Dashboard> {
    Router::new()
        .route("/api/experiments", get(list))
        .route("/api/experiments/{e}", get(experiment).delete(delete))
        .route("/api/experiments/{e}/stop", post(stop))
        .route("/api/experiments/{e}/reports", get(reports))
        .route("/api/experiments/{e}/export.csv", get(export_csv))
        .route("/api/experiments/{e}/export.json", get(export_json))
        .route("/api/experiments/{e}/trials/{t}", get(trial))
        .route("/api/experiments/{e}/trials/{t}/log", get(log))
}
