//! Server-sent events: the page opens one stream and the server pushes what changed, once
//! a second at most, so an open page costs one store read a second and no requests.
//!
//! - `GET /api/events`: the experiments list (every summary) whenever any summary changed.
//! - `GET /api/experiments/{e}/events`: `{"experiment": …, "trials": [changed trials],
//!   "removed": [names]}` whenever a trial or the experiment changed; trials are the
//!   documents of `GET /api/experiments/{e}`; the first event holds every trial, so a
//!   page starts from the stream alone. `event: gone` when the experiment was deleted.
//!
//! Streams end when the client goes or the server shuts down.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use kestrel_core::{TrialRecord, document};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::Dashboard;
use crate::api::{self, ApiError};

/// How often streams look for changes.
pub const TICK: Duration = Duration::from_secs(1);
/// Event streams open at once (each reads the store once a second); more are refused
/// with 503 until one closes.
pub const MAX_STREAMS: usize = 64;

/// A place for one more stream, or the refusal.
fn slot(d: &Dashboard) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    d.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::Busy(format!(
            "{MAX_STREAMS} live views are open already; close one"
        ))
    })
}

type Events = Sse<axum::response::sse::KeepAliveStream<ReceiverStream<Result<Event, Infallible>>>>;

fn sse(rx: mpsc::Receiver<Result<Event, Infallible>>) -> Events {
    Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default())
}

/// Waits for the next tick; `false` when the client left or the dashboard is closing.
async fn next_tick(
    interval: &mut tokio::time::Interval,
    tx: &mpsc::Sender<Result<Event, Infallible>>,
    closing: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    let ticked = tokio::select! {
        _ = interval.tick() => true,
        _ = tx.closed() => false,
        _ = closing.wait_for(|c| *c) => false,
    };
    ticked && !*closing.borrow()
}

fn ticker() -> tokio::time::Interval {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    interval
}

async fn send(tx: &mpsc::Sender<Result<Event, Infallible>>, kind: &str, data: &Value) -> bool {
    tx.send(Ok(Event::default().event(kind).data(data.to_string())))
        .await
        .is_ok()
}

async fn list_events(State(d): State<Dashboard>) -> Result<Events, ApiError> {
    let permit = slot(&d)?;
    let (tx, rx) = mpsc::channel(4);
    let mut closing = d.closing.subscribe();
    tokio::spawn(async move {
        let _permit = permit;
        let mut interval = ticker();
        let mut last: Option<Value> = None;
        while next_tick(&mut interval, &tx, &mut closing).await {
            let doc = match api::summaries(&d).await {
                Ok(all) => Value::Array(all),
                Err(e) => json!({"error": e.to_string()}),
            };
            if last.as_ref() != Some(&doc) {
                if !send(&tx, "experiments", &doc).await {
                    return;
                }
                last = Some(doc);
            }
        }
    });
    Ok(sse(rx))
}

/// What about a trial, when it changes, changes its document.
fn fingerprint(t: &TrialRecord) -> String {
    format!(
        "{}|{}|{:?}|{:?}|{:?}|{:?}|{}",
        t.state.as_str(),
        t.reason,
        t.objective,
        t.observation,
        t.started_at,
        t.completed_at,
        t.message
    )
}

async fn experiment_events(
    State(d): State<Dashboard>,
    Path(exp): Path<String>,
) -> Result<Events, ApiError> {
    let exp = api::name("experiment", &exp)?;
    api::load(&d, &exp).await?;
    let permit = slot(&d)?;
    let (tx, rx) = mpsc::channel(4);
    let mut closing = d.closing.subscribe();
    tokio::spawn(async move {
        let _permit = permit;
        let mut interval = ticker();
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut last_status: Option<String> = None;
        while next_tick(&mut interval, &tx, &mut closing).await {
            let (rec, trials) = match api::load(&d, &exp).await {
                Ok(x) => x,
                Err(ApiError::NotFound(_)) => {
                    let _ = send(&tx, "gone", &json!({"name": exp})).await;
                    return;
                }
                Err(e) => {
                    if !send(&tx, "problem", &json!({"error": e.to_string()})).await {
                        return;
                    }
                    continue;
                }
            };
            let mut changed = Vec::new();
            let mut now: HashMap<String, String> = HashMap::with_capacity(trials.len());
            for t in &trials {
                let f = fingerprint(t);
                if seen.get(&t.name) != Some(&f) {
                    changed.push(document::trial(t, None));
                }
                now.insert(t.name.clone(), f);
            }
            let removed: Vec<&String> = seen.keys().filter(|k| !now.contains_key(*k)).collect();
            let status = format!("{:?}|{:?}", rec.status, rec.spec.max_trial_count);
            if changed.is_empty() && removed.is_empty() && last_status.as_ref() == Some(&status) {
                // Nothing to send: the document (and its importance) is not even built.
                continue;
            }
            let mut head = api::experiment_doc(&rec, &trials);
            if let Some(o) = head.as_object_mut() {
                o.remove("trials");
            }
            let msg = json!({"experiment": head, "trials": changed, "removed": removed});
            if !send(&tx, "update", &msg).await {
                return;
            }
            seen = now;
            last_status = Some(status);
        }
    });
    Ok(sse(rx))
}

/// The event streams' routes.
pub fn routes() -> Router<Dashboard> {
    Router::new()
        .route("/api/events", get(list_events))
        .route("/api/experiments/{e}/events", get(experiment_events))
}
