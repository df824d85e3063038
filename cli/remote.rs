//! Talking to a `kestrel serve` server: the `--server` flags and a blocking client of the
//! management API that returns the same records a local store holds, so every command
//! prints a server's experiments with the same code.

use std::path::PathBuf;

use anyhow::Context;
use kestrel_core::{ExperimentRecord, TrialRecord};
use kestrel_proto::convert::manager as conv;
use kestrel_proto::manager::manager_client::ManagerClient;
use kestrel_proto::manager::{self as pb};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};

use crate::cmd::UsageError;

/// Flags that select a server instead of the local store.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerArgs {
    /// Use the kestrel server at this URL (e.g. http://127.0.0.1:6789) instead of the local
    /// store.
    #[arg(long, env = "KESTREL_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// File holding the token the server requires (default: $KESTREL_TOKEN). There is no
    /// flag for the token itself: command lines are visible to every local user (`ps`).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// CA certificate (PEM) to trust for an https:// server.
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
}

/// The token from `file` (first line, trimmed) or else `$KESTREL_TOKEN`; an empty one is
/// a usage error.
pub fn read_token(file: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    let (token, from) = match file {
        Some(f) => {
            let text = crate::cmd::read_bounded(f, 4096)
                .map_err(|e| UsageError(format!("--token-file {}: {e}", f.display())))?;
            let first = text.lines().next().unwrap_or_default().trim().to_string();
            (Some(first), format!("--token-file {}", f.display()))
        }
        None => (
            std::env::var("KESTREL_TOKEN").ok(),
            "KESTREL_TOKEN".to_string(),
        ),
    };
    match token {
        Some(t) if t.trim().is_empty() => {
            Err(UsageError(format!("{from}: the token is empty")).into())
        }
        other => Ok(other.map(|t| t.trim().to_string())),
    }
}

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// The management client type.
pub type Client = ManagerClient<InterceptedService<Channel, Bearer>>;

/// Connects to the server named by `args` (which must have `server` set).
pub async fn connect(args: &ServerArgs) -> anyhow::Result<Client> {
    let (channel, bearer) = channel(args).await?;
    Ok(
        ManagerClient::with_interceptor(channel, bearer)
            .max_decoding_message_size(64 * 1024 * 1024),
    )
}

/// A client of the server's DBManager (Katib's service, beside the management API).
pub type LogClient =
    kestrel_proto::katib::db_manager_client::DbManagerClient<InterceptedService<Channel, Bearer>>;

/// Connects to the server's DBManager.
pub async fn log_client(args: &ServerArgs) -> anyhow::Result<LogClient> {
    let (channel, bearer) = channel(args).await?;
    Ok(
        kestrel_proto::katib::db_manager_client::DbManagerClient::with_interceptor(channel, bearer)
            .max_decoding_message_size(256 * 1024 * 1024),
    )
}

/// The server's observation logs of `trials`, by trial name.
pub async fn observation_logs(
    args: &ServerArgs,
    trials: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, Vec<kestrel_core::MetricLog>>> {
    read_logs(&mut log_client(args).await?, trials).await
}

/// The observation logs of `trials` through `c`, by trial name.
pub async fn read_logs(
    c: &mut LogClient,
    trials: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, Vec<kestrel_core::MetricLog>>> {
    use kestrel_proto::katib::GetObservationLogRequest;
    let mut all = std::collections::BTreeMap::new();
    for name in trials {
        let reply = c
            .get_observation_log(GetObservationLogRequest {
                trial_name: name.clone(),
                ..Default::default()
            })
            .await
            .map_err(status_error)?
            .into_inner();
        let logs = reply
            .observation_log
            .map(|l| l.metric_logs)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|l| {
                let m = l.metric?;
                Some(kestrel_core::MetricLog {
                    time: l.time_stamp.parse().ok()?,
                    name: m.name,
                    value: m.value,
                })
            })
            .collect();
        all.insert(name.clone(), logs);
    }
    Ok(all)
}

/// A channel to the server and the interceptor that sends its token.
async fn channel(args: &ServerArgs) -> anyhow::Result<(Channel, Bearer)> {
    let url = args.server.clone().unwrap_or_default();
    let channel = match (&args.tls_ca, url.starts_with("https://")) {
        (Some(ca), true) => crate::tls::connect(&url, ca).await?,
        _ => plain(&url).await?,
    };
    let token = match read_token(args.token_file.as_deref())? {
        Some(t) => Some(
            format!("Bearer {t}")
                .parse()
                .map_err(|_| UsageError("the token must be printable ASCII".into()))?,
        ),
        None => None,
    };
    Ok((channel, Bearer(token)))
}

/// A channel to `url` without `--tls-ca` (an https URL then trusts nothing extra).
async fn plain(url: &str) -> anyhow::Result<Channel> {
    let mut ep = Endpoint::from_shared(url.to_string())
        .map_err(|e| UsageError(format!("--server {url:?}: not a URL ({e})")))?
        .connect_timeout(std::time::Duration::from_secs(5));
    if url.starts_with("https://") {
        ep = ep
            .tls_config(ClientTlsConfig::new())
            .context("configuring TLS")?;
    }
    ep.connect().await.with_context(|| {
        let hint = if url.starts_with("http://") {
            "; if it serves TLS, use an https:// URL"
        } else {
            ""
        };
        format!("cannot reach the kestrel server at {url}{hint}")
    })
}

/// A server error for the user: bad input and unknown names are usage errors (exit 2).
pub fn status_error(s: Status) -> anyhow::Error {
    match s.code() {
        Code::InvalidArgument | Code::NotFound | Code::AlreadyExists | Code::FailedPrecondition => {
            UsageError(s.message().to_string()).into()
        }
        Code::Unauthenticated | Code::PermissionDenied => {
            UsageError(format!("the server refused: {}", s.message())).into()
        }
        // A TLS server spoken to in plain http (or a proxy in the way) breaks the
        // connection without a gRPC status.
        Code::Unknown | Code::Cancelled | Code::Internal
            if ["transport error", "canceled", "h2 protocol error"]
                .iter()
                .any(|m| s.message().contains(m)) =>
        {
            anyhow::anyhow!(
                "the connection to the server failed ({}); if it serves TLS, use an https:// URL",
                s.message()
            )
        }
        _ => anyhow::anyhow!("server error ({:?}): {}", s.code(), s.message()),
    }
}

/// One experiment with its trials, as records.
pub async fn get(
    c: &mut Client,
    name: &str,
) -> anyhow::Result<(ExperimentRecord, Vec<TrialRecord>)> {
    let d = c
        .get_experiment(pb::ExperimentRef { name: name.into() })
        .await
        .map_err(status_error)?
        .into_inner();
    conv::detail_records(&d, &kestrel_algorithms::Catalog)
        .map_err(|e| anyhow::anyhow!("the server sent an unreadable experiment: {e}"))
}

/// Every experiment with its trials, oldest first.
pub async fn list(c: &mut Client) -> anyhow::Result<Vec<(ExperimentRecord, Vec<TrialRecord>)>> {
    let reply = c
        .list_experiments(pb::ListExperimentsRequest { details: true })
        .await
        .map_err(status_error)?
        .into_inner();
    reply
        .details
        .iter()
        .map(|d| {
            conv::detail_records(d, &kestrel_algorithms::Catalog)
                .map_err(|e| anyhow::anyhow!("the server sent an unreadable experiment: {e}"))
        })
        .collect()
}

/// A runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}
