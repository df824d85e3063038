//! Server-sent events: the page opens one stream and the server pushes what changed, once
//! a second at most, so open pages cost one store read a second for each experiment shown
//! (shared, [`crate::feed`]) and no requests.
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

use crate::api::{self, ApiError};
use crate::{Dashboard, feed};

/// How often streams look for changes.
pub const TICK: Duration = Duration::from_secs(1);
/// Event streams open at once (each works out its page's changes once a second); more
/// are refused with 503 until one closes.
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

/// Waits for the feed's next snapshot; `None` when the client left, the feed ended or
/// the dashboard is closing.
async fn next_snapshot<T>(
    feed: &mut feed::Receiver<T>,
    tx: &mpsc::Sender<Result<Event, Infallible>>,
    closing: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<feed::Snapshot<T>> {
    loop {
        let changed = tokio::select! {
            r = feed.changed() => r.is_ok(),
            _ = tx.closed() => false,
            _ = closing.wait_for(|c| *c) => false,
        };
        if !changed || *closing.borrow() {
            return None;
        }
        if let Some(s) = feed.borrow_and_update().clone() {
            return Some(s);
        }
    }
}

/// The tick of a feed's reads.
pub(crate) fn ticker() -> tokio::time::Interval {
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
    let reader = d.clone();
    let mut feed = d.list_feed.subscribe("", d.closing.subscribe(), move || {
        let d = reader.clone();
        async move {
            api::summaries(&d)
                .await
                .map_err(|e| feed::Failure::Other(e.to_string()))
        }
    });
    tokio::spawn(async move {
        let _permit = permit;
        let mut last: Option<Value> = None;
        while let Some(snapshot) = next_snapshot(&mut feed, &tx, &mut closing).await {
            let doc = match snapshot.as_ref() {
                Ok(all) => Value::Array(all.clone()),
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
    let (reader, name) = (d.clone(), exp.clone());
    let mut feed = d
        .experiment_feeds
        .subscribe(&exp, d.closing.subscribe(), move || {
            let (d, name) = (reader.clone(), name.clone());
            async move {
                api::load(&d, &name).await.map_err(|e| match e {
                    ApiError::NotFound(_) => feed::Failure::NotFound,
                    other => feed::Failure::Other(other.to_string()),
                })
            }
        });
    tokio::spawn(async move {
        let _permit = permit;
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut last_status: Option<String> = None;
        while let Some(snapshot) = next_snapshot(&mut feed, &tx, &mut closing).await {
            let (rec, trials) = match snapshot.as_ref() {
                Ok((rec, trials)) => (rec, trials),
                Err(feed::Failure::NotFound) => {
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
            for t in trials {
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
            let mut head = api::experiment_doc(rec, trials);
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
