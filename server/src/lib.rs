//! kestrel-server: the `kestrel serve` server: Katib's Suggestion, EarlyStopping and
//! DBManager services, gRPC health, and kestrel's management API, on one listener. It runs
//! experiments with `kestrel-controller`'s reconciler, one task per experiment.
//!
//! # Layout
//! - [`katib`]: Katib's DBManager and EarlyStopping services over the store.
//! - [`access`]: who may write trial results through them (per-trial credentials).
//! - [`manager`]: kestrel's management service (create, get, list, stop, delete, watch).
//!
//! Security: experiments run commands, so the management API accepts only loopback
//! clients unless the server has a token, which clients then send as
//! `authorization: Bearer <token>`. Katib's services stay open, as Katib's controller
//! calls them without credentials. TLS (rustls) is used when a certificate is given.

pub mod access;
pub mod katib;
pub mod manager;
pub mod remote_logs;

use std::sync::Arc;

use kestrel_proto::health::health_server::HealthServer;
use kestrel_proto::katib::db_manager_server::DbManagerServer;
use kestrel_proto::katib::early_stopping_server::EarlyStoppingServer;
use kestrel_proto::manager::manager_server::ManagerServer;
use kestrel_store::Store;
use kestrel_suggestion::grpc::{HealthService, KATIB_SUGGESTION_HEALTH_NAME};
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Interceptor;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Status};

pub use manager::{ManagerService, RunConfig};

/// Largest request accepted (a Katib request carries the whole trial history).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Who may use the management API, and how the connection is protected.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// Required bearer token for management calls; without one they are loopback-only.
    pub token: Option<String>,
    /// PEM certificate chain and private key; serves TLS when set.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    /// Who may write results of trials kestrel does not run through Katib's services.
    pub katib: access::KatibAccess,
    /// Take Push trials' reports without their credential (Katib's SDK sends none).
    pub open_push: bool,
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The transport failed (bad TLS material, listener error).
    #[error("gRPC server failed")]
    Transport(#[from] tonic::transport::Error),
    /// The configured executor does not exist.
    #[error(transparent)]
    Executor(#[from] kestrel_controller::executor::UnknownExecutor),
    /// Stored experiments could not be read at start-up.
    #[error("cannot resume stored experiments: {0}")]
    Resume(String),
    /// The reflection service could not be built from kestrel's descriptors.
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The executor cannot launch trials (no cluster answers).
    #[error("executor not ready: {0}")]
    NotReady(String),
}

/// The management API's gate (see the module documentation).
#[derive(Clone)]
pub struct Gate {
    token: Option<Arc<str>>,
}

impl Gate {
    /// A gate requiring `token`, or loopback clients when `None`.
    pub fn new(token: Option<&str>) -> Self {
        Gate {
            token: token.map(Arc::from),
        }
    }
}

impl Interceptor for Gate {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        match &self.token {
            Some(token) => match access::bearer(req.metadata()) {
                Some(g) if access::same(g.as_bytes(), token.as_bytes()) => Ok(req),
                Some(_) => Err(Status::unauthenticated("wrong token")),
                None => Err(Status::unauthenticated(
                    "this server requires a token (kestrel --token or KESTREL_TOKEN)",
                )),
            },
            None => match req.remote_addr() {
                Some(a) if a.ip().is_loopback() => Ok(req),
                _ => Err(Status::permission_denied(
                    "the management API is loopback-only; start the server with --token to allow remote clients",
                )),
            },
        }
    }
}

/// A request body that does not decode is the client's fault: tonic answers it INTERNAL;
/// it becomes INVALID_ARGUMENT (the message, which says what failed, is kept).
fn undecodable_is_invalid(
    mut res: tonic::codegen::http::Response<tonic::body::Body>,
) -> tonic::codegen::http::Response<tonic::body::Body> {
    let h = res.headers_mut();
    let decode = h.get("grpc-status").is_some_and(|v| v == "13")
        && h.get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| {
                m.starts_with("failed%20to%20decode") || m.starts_with("failed to decode")
            });
    if decode {
        h.insert(
            "grpc-status",
            tonic::codegen::http::HeaderValue::from_static("3"),
        );
    }
    res
}

/// HTTP/2 flow-control window per stream: a 1,000-trial request arrives in one go.
pub const STREAM_WINDOW: u32 = 4 << 20;
/// HTTP/2 flow-control window per connection.
pub const CONNECTION_WINDOW: u32 = 8 << 20;
/// Largest HTTP/2 frame a client may send: a 360 KB request in one frame instead of 22
/// of the protocol's default 16 KiB.
pub const MAX_FRAME: u32 = 1 << 20;

/// Checks a PEM certificate chain and key before anything is announced: a bad pair is
/// an error at once, not after "serving on" was printed.
pub fn check_tls(cert: &[u8], key: &[u8]) -> Result<(), ServeError> {
    Server::builder().tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))?;
    Ok(())
}

/// Serves every service on `listener` until `shutdown` completes, then kills running
/// trials (their experiments resume when a server starts on the same store again) and
/// returns after in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    store: Arc<dyn Store>,
    run: RunConfig,
    security: Security,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let manager = ManagerService::new(store.clone(), run)?;
    serve_manager(listener, store, manager, security, shutdown).await
}

/// [`serve`] with a management service built by the caller (the operator shares it with
/// its Kubernetes controller).
pub async fn serve_manager(
    listener: TcpListener,
    store: Arc<dyn Store>,
    manager: ManagerService,
    security: Security,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    manager
        .executor_ready()
        .await
        .map_err(|e| ServeError::NotReady(e.to_string()))?;
    let access = access::Access::new(security.token.as_deref(), security.katib)
        .with_open_push(security.open_push);
    manager
        .resume_unfinished()
        .map_err(|s| ServeError::Resume(s.message().to_string()))?;
    // A Katib request carries the whole history (360 KB for 1,000 trials): with HTTP/2's
    // default 64 KiB windows it would wait for several window updates on the way in.
    let mut builder = Server::builder()
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        .max_frame_size(Some(MAX_FRAME))
        .layer(tower::util::MapResponseLayer::new(undecodable_is_invalid));
    if let Some((cert, key)) = &security.tls {
        builder =
            builder.tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))?;
    }
    let health = HealthService::new([
        KATIB_SUGGESTION_HEALTH_NAME,
        "grpc.health.v1.Health",
        "api.v1.beta1.Suggestion",
        "api.v1.beta1.EarlyStopping",
        "api.v1.beta1.DBManager",
        "kestrel.v1.Manager",
    ]);
    let own = listener.local_addr().ok();
    let halt = manager.clone();
    // Server reflection: `grpcurl -plaintext HOST:6789 list` finds every service.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(kestrel_proto::FILE_DESCRIPTOR_SET)
    };
    // The Suggestion service's history cache gives back what idle experiments hold.
    let expiry = tokio::spawn(kestrel_suggestion::history::expire_idle());
    let served = builder
        .add_service(
            // GetSuggestions decodes only the trials it has not seen (suggestion::route).
            kestrel_suggestion::route::SuggestionRoutes::new(MAX_MESSAGE_BYTES),
        )
        .add_service(
            EarlyStoppingServer::new(
                katib::EarlyStoppingService::new(store.clone(), access.clone()).listening_on(own),
            )
            .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            DbManagerServer::new(katib::DbManagerService::new(store, access))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(HealthServer::new(health))
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .add_service(ManagerServer::with_interceptor(
            manager,
            Gate::new(security.token.as_deref()),
        ))
        .serve_with_incoming_shutdown(incoming(listener), async move {
            shutdown.await;
            tracing::info!("shutting down: stopping running trials");
            halt.shutdown().await;
        })
        .await;
    expiry.abort();
    served?;
    Ok(())
}

/// Serves Katib's DBManager service (and gRPC health) alone on `listener` until
/// `shutdown` completes: what `kestrel run` starts when its trials run elsewhere
/// (Kubernetes pods) and report over the network. Writes about a trial need that trial's
/// credential (or, with `open_push`, none for a running Push trial); no other trial's
/// results are accepted.
pub async fn serve_db_manager(
    listener: TcpListener,
    store: Arc<dyn Store>,
    open_push: bool,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let access = access::Access::new(None, access::KatibAccess::Token).with_open_push(open_push);
    let health = HealthService::new(["grpc.health.v1.Health", "api.v1.beta1.DBManager"]);
    Server::builder()
        .layer(tower::util::MapResponseLayer::new(undecodable_is_invalid))
        .add_service(
            DbManagerServer::new(katib::DbManagerService::new(store, access))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(HealthServer::new(health))
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await?;
    Ok(())
}

/// Connections of `listener`, with Nagle off: small replies must not wait for delayed
/// ACKs (~40 ms per call otherwise).
fn incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|s| {
            if let Err(e) = s.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_token_only_loopback_peers_pass() {
        let mut gate = Gate::new(None);
        // No peer address (not a TCP connection from loopback): refused.
        let e = gate.call(Request::new(())).expect_err("refused");
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(
            access::same(b"abc", b"abc")
                && !access::same(b"abc", b"abd")
                && !access::same(b"abc", b"ab")
        );
    }
}
