//! kestrel-dashboard: the web dashboard, served by kestrel itself (`kestrel serve
//! --dashboard ADDR`, `kestrel dashboard --store DIR`).
//!
//! - [`api`]: the JSON API the page reads (experiments, trials, reports, importance, logs,
//!   exports) and the two actions (stop, delete).
//! - [`events`]: server-sent events: the experiments list and an experiment's changed
//!   trials, pushed once a second when something changed (the page never polls).
//! - [`access`]: who may use it: loopback clients, or anyone with the token (as the
//!   management API); actions refuse cross-site requests.
//! - `assets/`: the page itself (HTML, CSS and JavaScript written here, plots drawn on
//!   canvas), compiled into the binary: nothing is fetched from elsewhere, it works offline.
//!
//! The dashboard reads the store directly (SQLite allows readers beside the writer, so a
//! `kestrel run` writing to it is fine) and acts through an [`Actions`] implementation
//! given by whoever serves it (the server's manager, or the local store's lease holder).

pub mod access;
pub mod api;
pub mod events;
pub mod feed;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kestrel_store::Store;

pub use access::Access;

/// A boxed future, for the [`Actions`] trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the dashboard's buttons do. `Ok` carries a line to show the user; `Err` the reason
/// the action was refused.
pub trait Actions: Send + Sync + 'static {
    /// Stops a running experiment (its trials are stopped; it ends Stopped).
    fn stop<'a>(&'a self, experiment: &'a str) -> BoxFuture<'a, Result<String, String>>;
    /// Deletes an experiment that is not running, with its trials and reports.
    fn delete<'a>(&'a self, experiment: &'a str) -> BoxFuture<'a, Result<String, String>>;
}

/// Everything a dashboard serves from.
#[derive(Clone)]
pub struct Dashboard {
    /// The store it reads.
    pub store: Arc<dyn Store>,
    /// What its buttons do.
    pub actions: Arc<dyn Actions>,
    /// Who may use it.
    pub access: Access,
    /// Where trials' directories are (`<runs>/<experiment>/<trial>/trial.log`), when known.
    pub runs_dir: Option<PathBuf>,
    /// Set when the server shuts down, which ends the event streams.
    closing: Arc<tokio::sync::watch::Sender<bool>>,
    /// Event streams open at once, at most [`events::MAX_STREAMS`].
    streams: Arc<tokio::sync::Semaphore>,
    /// The store reads the experiment pages' streams share, by experiment.
    experiment_feeds: Arc<
        feed::Feeds<(
            kestrel_core::ExperimentRecord,
            Vec<kestrel_core::TrialRecord>,
        )>,
    >,
    /// The store read the list pages' streams share.
    list_feed: Arc<feed::Feeds<Vec<serde_json::Value>>>,
}

impl Dashboard {
    /// A dashboard over `store`.
    pub fn new(
        store: Arc<dyn Store>,
        actions: Arc<dyn Actions>,
        access: Access,
        runs_dir: Option<PathBuf>,
    ) -> Self {
        Dashboard {
            store,
            actions,
            access,
            runs_dir,
            closing: Arc::new(tokio::sync::watch::Sender::new(false)),
            streams: Arc::new(tokio::sync::Semaphore::new(events::MAX_STREAMS)),
            experiment_feeds: Arc::default(),
            list_feed: Arc::default(),
        }
    }

    /// Ends the event streams (they would keep a graceful shutdown waiting).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Runs `f` on the store on the blocking pool.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, kestrel_store::StoreError> + Send + 'static,
    ) -> Result<T, api::ApiError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| api::ApiError::Internal(e.to_string()))?
            .map_err(|e| api::ApiError::Internal(e.to_string()))
    }
}

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const PLOTS_JS: &str = include_str!("../assets/plots.js");
const EXPERIMENT_JS: &str = include_str!("../assets/experiment.js");
const STYLE: &str = include_str!("../assets/style.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The dashboard's routes: the page, its assets, the API and the event streams, behind
/// the access check.
pub fn router(d: Dashboard) -> Router {
    let pages = Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/experiment.js",
            get(|| async { asset("text/javascript; charset=utf-8", EXPERIMENT_JS) }),
        )
        .route(
            "/plots.js",
            get(|| async { asset("text/javascript; charset=utf-8", PLOTS_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        );
    let access = d.access.clone();
    pages
        .merge(api::routes())
        .merge(events::routes())
        .with_state(d)
        .layer(axum::middleware::from_fn_with_state(access, access::check))
        .layer(axum::middleware::map_response(access::headers))
}

/// Serves `d` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    d: Dashboard,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let closer = d.clone();
    let app = router(d).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            closer.close();
        })
        .await
}
