//! Watches of the fake API server (`?watch=true`): the changes after the request's
//! `resourceVersion` to objects of its collection that match its label selector, streamed
//! as newline-delimited `{"type", "object"}` JSON, then every later one until the client
//! goes or `timeoutSeconds` pass, as the API server does. Without a version (or with
//! `0`) the current objects come first as ADDED.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame};
use serde_json::json;

use super::api::{Event, Route, State, matches_selector, param};
use super::kinds;

/// What a watch request asks for.
pub(super) struct Watch {
    group_version: String,
    plural: &'static str,
    namespace: String,
    selector: String,
    after: Option<u64>,
    timeout: Duration,
}

impl Watch {
    /// The watch of `route` with the request's query.
    pub fn new(route: &Route, query: &str) -> Self {
        Watch {
            group_version: kinds::group_version(route.kind),
            plural: route.kind.plural,
            namespace: route.namespace.clone(),
            selector: param(query, "labelSelector").unwrap_or_default(),
            after: param(query, "resourceVersion")
                .and_then(|v| v.parse().ok())
                .filter(|v| *v > 0),
            timeout: Duration::from_secs(
                param(query, "timeoutSeconds")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1800),
            ),
        }
    }

    fn wants(&self, e: &Event) -> bool {
        let (gv, plural, ns, _) = &e.key;
        *gv == self.group_version
            && plural == self.plural
            && (self.namespace.is_empty() || *ns == self.namespace)
            && matches_selector(&e.object, &self.selector)
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn line(kind: &str, object: &serde_json::Value) -> Frame<Bytes> {
    Frame::data(Bytes::from(format!(
        "{}\n",
        json!({"type": kind, "object": object})
    )))
}

/// The response body of watch `w`: fed by a task until the client goes or time is up.
pub(super) fn stream(state: Arc<Mutex<State>>, w: Watch) -> BoxBody<Bytes, Infallible> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + w.timeout;
        let mut after = match w.after {
            Some(v) => v,
            None => {
                let (current, version): (Vec<_>, u64) = {
                    let s = lock(&state);
                    let objects = s
                        .objects
                        .iter()
                        .map(|(key, object)| Event {
                            version: 0,
                            key: key.clone(),
                            kind: "ADDED",
                            object: object.clone(),
                        })
                        .filter(|e| w.wants(e))
                        .collect();
                    (objects, s.version)
                };
                for e in current {
                    if tx.send(Ok(line(e.kind, &e.object))).await.is_err() {
                        return;
                    }
                }
                version
            }
        };
        loop {
            let notify = lock(&state).notify.clone();
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let batch: Vec<Event> = {
                let s = lock(&state);
                let from = s.events.partition_point(|e| e.version <= after);
                if let Some(last) = s.events.last() {
                    after = after.max(last.version);
                }
                s.events[from..]
                    .iter()
                    .filter(|e| w.wants(e))
                    .cloned()
                    .collect()
            };
            for e in batch {
                if tx.send(Ok(line(e.kind, &e.object))).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tx.closed() => return,
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    });
    StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed()
}
