//! A fake Kubernetes API server (feature `testing`): an HTTP server on 127.0.0.1 that keeps
//! objects in memory and speaks enough of the Kubernetes REST API for a real
//! `kube::Client` (and kube-runtime's watcher) to work against it: discovery, create, get,
//! list, watch with resourceVersion, merge patch (object and `/status`) and delete of
//! namespaced objects, with API errors as `metav1.Status`. Tests play the kubelet and the
//! Job controller by setting objects' status, and can deny a verb on a resource (403) to
//! check RBAC errors.
//!
//! # Layout
//! - `kinds`: the kinds served and the discovery documents.
//! - `api`: routing and the REST verbs over the in-memory objects.
//! - `apply`: field ownership and conflicts of server-side apply.
//! - `watch`: streaming watches.
//! - `logs`: pods' logs.

mod api;
mod apply;
mod kinds;
mod logs;
mod watch;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value as Json, json};

use api::{Key, State};

/// A running fake API server; stops when dropped.
pub struct FakeApiServer {
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn reply(code: StatusCode, body: Body) -> Response<Body> {
    let mut res = Response::new(body);
    *res.status_mut() = code;
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    res
}

/// Answers one request.
async fn answer(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let query = parts.uri.query().unwrap_or_default();
    let path = parts.uri.path();
    if parts.method == Method::GET
        && let Some(answer) = logs::answer(&mut lock(&state), path, query)
    {
        return match answer {
            Ok(text) => {
                let mut res = reply(StatusCode::OK, Full::new(Bytes::from(text)).boxed());
                res.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("text/plain"),
                );
                res
            }
            Err((code, json)) => reply(code, Full::new(Bytes::from(json.to_string())).boxed()),
        };
    }
    let watching = parts.method == Method::GET
        && matches!(api::param(query, "watch").as_deref(), Some("true" | "1"));
    if watching {
        let started = {
            let mut s = lock(&state);
            s.requests.push(format!("WATCH {path}"));
            api::route(path).and_then(|r| {
                s.authorize("watch", &r)?;
                Ok(watch::Watch::new(&r, query))
            })
        };
        return match started {
            Ok(w) => reply(StatusCode::OK, watch::stream(state, w)),
            Err((code, json)) => reply(code, Full::new(Bytes::from(json.to_string())).boxed()),
        };
    }
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let content_type = parts
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (code, json) = lock(&state).handle(&parts.method, path, query, content_type, &body);
    reply(code, Full::new(Bytes::from(json.to_string())).boxed())
}

fn key(api_version: &str, plural: &str, namespace: &str, name: &str) -> Key {
    (
        api_version.to_string(),
        plural.to_string(),
        namespace.to_string(),
        name.to_string(),
    )
}

impl FakeApiServer {
    /// Starts a server on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(state, req).await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Ok(FakeApiServer { url, state, task })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// A real `kube::Client` for this server, default namespace `namespace`.
    pub fn client(&self, namespace: &str) -> Result<kube::Client, String> {
        let uri: hyper::Uri = self.url.parse().map_err(|e| format!("{e}"))?;
        let mut config = kube::Config::new(uri);
        config.default_namespace = namespace.to_string();
        kube::Client::try_from(config).map_err(|e| e.to_string())
    }

    /// An object by API version (`batch/v1`), plural, namespace and name.
    pub fn object(
        &self,
        api_version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Json> {
        self.state()
            .objects
            .get(&key(api_version, plural, namespace, name))
            .cloned()
    }

    /// Every object of a plural in a namespace.
    pub fn objects(&self, api_version: &str, plural: &str, namespace: &str) -> Vec<Json> {
        self.state()
            .objects
            .iter()
            .filter(|((g, p, n, _), _)| g == api_version && p == plural && n == namespace)
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Sets an object's status, as the controller owning it would; false when it is gone.
    pub fn set_status(
        &self,
        api_version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
        status: Json,
    ) -> bool {
        self.state()
            .modify(&key(api_version, plural, namespace, name), |o| {
                o["status"] = status;
            })
            .is_some()
    }

    /// Merge-patches an object as another client would (`kubectl edit`); false when
    /// there is none.
    pub fn patch(
        &self,
        api_version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
        patch: &Json,
    ) -> bool {
        self.state()
            .modify(&key(api_version, plural, namespace, name), |o| {
                api::merge(o, patch)
            })
            .is_some()
    }

    /// Creates an object as another client would (a user's config map, a Job
    /// controller's pod); its `apiVersion`, `kind` and `metadata.name` are its own.
    pub fn create(&self, plural: &str, namespace: &str, object: Json) {
        let text = |p: &str| {
            object
                .pointer(p)
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let k = key(
            &text("/apiVersion"),
            plural,
            namespace,
            &text("/metadata/name"),
        );
        self.state().insert(k, object);
    }

    /// Adds a pod, as a Job controller would (with its status, as the kubelet reports it).
    pub fn create_pod(&self, namespace: &str, mut pod: Json) {
        pod["apiVersion"] = json!("v1");
        pod["kind"] = json!("Pod");
        self.create("pods", namespace, pod);
    }

    /// Sets what a pod's container has printed, as the kubelet keeps it: served at
    /// `pods/NAME/log`.
    pub fn set_log(&self, namespace: &str, pod: &str, container: &str, text: &str) {
        self.state().logs.insert(
            (namespace.into(), pod.into(), container.into()),
            text.into(),
        );
    }

    /// Deletes an object as another client would (a user's `kubectl delete`); false when
    /// there is none.
    pub fn delete(&self, api_version: &str, plural: &str, namespace: &str, name: &str) -> bool {
        self.state()
            .delete(&key(api_version, plural, namespace, name))
            .is_some()
    }

    /// Answers `verb` on `plural` with 403 Forbidden from now on, as RBAC would.
    pub fn deny(&self, verb: &str, plural: &str) {
        self.state()
            .denied
            .insert((verb.to_string(), plural.to_string()));
    }

    /// The requests served so far, `METHOD /path` (`WATCH /path` for watches).
    pub fn requests(&self) -> Vec<String> {
        self.state().requests.clone()
    }
}

#[cfg(test)]
mod tests;
