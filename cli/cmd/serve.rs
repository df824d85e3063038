//! `kestrel serve`: one long-lived process serving Katib's Suggestion, EarlyStopping and
//! DBManager services, gRPC health, and kestrel's management API (submit, get, list,
//! stop, watch), running every submitted experiment. Unfinished experiments in the store
//! are resumed at start-up; SIGTERM or Ctrl-C stops the running trials and leaves their
//! experiments to resume on the next start.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use kestrel_server::access::KatibAccess;
use kestrel_server::{ManagerService, RunConfig, Security, serve_manager};

use super::UsageError;
use crate::store::StoreArgs;

/// Who may write results of trials kestrel does not run through Katib's services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum KatibAuth {
    /// Anyone, as with Katib (its collectors send no credentials).
    #[default]
    Open,
    /// Only clients with the server's token.
    Token,
}

/// Arguments of `kestrel serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:6789", value_name = "ADDR")]
    listen: String,
    #[command(flatten)]
    store: StoreArgs,
    /// File holding the token management clients must send (default: $KESTREL_TOKEN);
    /// without one, management is loopback-only. There is no flag for the token itself:
    /// command lines are visible to every local user (`ps`).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// TLS certificate chain (PEM); serves TLS together with --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Seconds a stopped trial gets between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    grace: f64,
    /// Writes through Katib's services about trials kestrel does not run: open (as Katib)
    /// or token. kestrel's own trials always need their credential or the token.
    #[arg(long, value_enum, default_value_t)]
    katib_auth: KatibAuth,
    /// Reports of Push trials (which report their metrics themselves): credential (each
    /// trial's KESTREL_TRIAL_TOKEN, as kestrel's trials send it) or open (none needed
    /// while the trial runs, as Katib's SDK `report_metrics` sends none).
    #[arg(long, value_enum, default_value_t)]
    push_auth: super::PushAuth,
    /// Where trials run (local: processes on this machine; kubernetes: objects in the
    /// cluster of the kubeconfig, KUBECONFIG or the pod's service account).
    #[arg(long, default_value = kestrel_controller::executor::DEFAULT_EXECUTOR, value_name = "NAME")]
    executor: String,
    #[command(flatten)]
    kube: super::KubeArgs,
    /// Also reconcile Katib's Experiment resources in the cluster (`kubectl apply -f`),
    /// as katib-controller does, with Trial resources and Katib's status; needs
    /// --executor kubernetes.
    #[arg(long)]
    operator: bool,
    /// With --operator: seconds the leader's Lease stays valid without renewal (replicas
    /// wait to lead; a leader that loses it shuts down).
    #[arg(long, default_value_t = 15, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(2..=3600))]
    lease_seconds: u64,
    /// Also serve the web dashboard on this address (e.g. 127.0.0.1:8686); the same
    /// token as the management API protects it.
    #[arg(long, value_name = "ADDR")]
    dashboard: Option<String>,
}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let addr: SocketAddr = a
        .listen
        .parse()
        .map_err(|e| UsageError(format!("--listen {:?}: {e}", a.listen)))?;
    let grace = super::seconds("--grace", a.grace)?;
    super::check_executor(&a.executor)?;
    let kubernetes = a.kube.options(&a.executor)?;
    if a.operator && a.executor != "kubernetes" {
        return Err(UsageError("--operator needs --executor kubernetes".into()).into());
    }

    let token = crate::remote::read_token(a.token_file.as_deref())?;
    if a.katib_auth == KatibAuth::Token && token.is_none() {
        return Err(UsageError(
            "--katib-auth token needs a token (--token-file or KESTREL_TOKEN)".into(),
        )
        .into());
    }
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some((
            std::fs::read(c).map_err(|e| UsageError(format!("--tls-cert {}: {e}", c.display())))?,
            std::fs::read(k).map_err(|e| UsageError(format!("--tls-key {}: {e}", k.display())))?,
        )),
        _ => None,
    };
    if let Some((cert, key)) = &tls {
        kestrel_server::check_tls(cert, key).map_err(|e| {
            UsageError(format!(
                "--tls-cert/--tls-key: not a usable certificate and key ({:#})",
                anyhow::Error::from(e)
            ))
        })?;
    }
    let (store, dir) = a.store.open()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        // An operator replica leads before it opens anything.
        let leader = if a.operator {
            let client = kestrel_operator::serve::client().await?;
            let election = kestrel_operator::leader::election(
                client.default_namespace(),
                Duration::from_secs(a.lease_seconds),
            );
            let leadership = kestrel_operator::leader::lead(client.clone(), &election).await?;
            Some((client, leadership))
        } else {
            None
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| UsageError(format!("cannot listen on {addr}: {e}")))?;
        let local = listener.local_addr().context("reading the bound address")?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        out!(
            "kestrel serving on {scheme}://{local} (store {})",
            dir.display()
        );
        std::io::stdout().flush().ok();
        if token.is_none() && !local.ip().is_loopback() {
            tracing::warn!("no token: the management API answers loopback clients only");
        }
        let cfg = RunConfig {
            runs_dir: dir.join("runs"),
            grace,
            tick: Duration::from_millis(200),
            executor: a.executor.clone(),
            kubernetes,
            // Local trials reach this server on its own address (loopback for 0.0.0.0).
            db_manager: Some(reachable(local).to_string()),
        };
        let security = Security {
            token,
            tls,
            katib: match a.katib_auth {
                KatibAuth::Open => KatibAccess::Open,
                KatibAuth::Token => KatibAccess::Token,
            },
            open_push: a.push_auth == super::PushAuth::Open,
        };
        let board = match &a.dashboard {
            Some(addr) => {
                let l = super::dashboard::bind(addr, "--dashboard").await?;
                out!("kestrel dashboard on {}", super::dashboard::url(l.local_addr()?));
                std::io::stdout().flush().ok();
                Some(l)
            }
            None => None,
        };
        let start_board = super::dashboard::start_served(
            board,
            store.clone(),
            super::dashboard::access(security.token.as_deref()),
            cfg.runs_dir.clone(),
        );
        match leader {
            Some((client, mut leadership)) => {
                let shutdown = async {
                    tokio::select! {
                        () = super::run::shutdown_signal() => {}
                        () = leadership.lost() => tracing::error!("lost the leader's Lease; shutting down"),
                    }
                };
                let served = kestrel_operator::serve::serve(
                    listener,
                    store,
                    cfg,
                    security,
                    Some(client),
                    start_board,
                    shutdown,
                )
                .await;
                // Released only now: the next leader starts once this one has stopped.
                leadership.release().await;
                served
            }
            None => {
                let manager = ManagerService::new(store.clone(), cfg)?;
                start_board(&manager);
                serve_manager(listener, store, manager, security, super::run::shutdown_signal())
                    .await
            }
        }
        .context("serving")?;
        eprintln!("kestrel server stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// The address local processes reach a listener bound to `addr` on.
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}
