//! `kestrel dashboard`: the web dashboard over a local store (also while `kestrel run`
//! writes to it), and the dashboard's actions for `kestrel serve --dashboard`.
//!
//! Locally, Stop asks the process running the experiment to stop (as `kestrel stop`) and
//! Delete removes a stopped experiment (as `kestrel delete`); on a server both go through
//! its manager.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use kestrel_dashboard::{Access, Actions, BoxFuture, Dashboard};
use kestrel_server::manager::ManagerService;

use super::UsageError;
use crate::store::StoreArgs;

/// Arguments of `kestrel dashboard`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port; the URL is printed).
    #[arg(long, default_value = "127.0.0.1:8686", value_name = "ADDR")]
    listen: String,
    #[command(flatten)]
    store: StoreArgs,
    /// File holding a token browsers must present (default: $KESTREL_TOKEN); without
    /// one, only this machine's browsers are served.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

/// Who may use a dashboard with this token (none: loopback only).
pub fn access(token: Option<&str>) -> Access {
    token.map_or(Access::Loopback, |t| Access::Token(Arc::from(t)))
}

/// The URL to print for a dashboard listening on `local`.
pub fn url(local: SocketAddr) -> String {
    format!("http://{}/", super::serve::reachable(local))
}

/// Parses and binds a dashboard's `--listen` address.
pub async fn bind(listen: &str, flag: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| UsageError(format!("{flag} {listen:?}: {e}")))?;
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| UsageError(format!("cannot listen on {addr}: {e}")).into())
}

/// The actions on a local store.
struct Local {
    store: StoreArgs,
}

impl Actions for Local {
    fn stop<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let store = self.store.clone();
            let n = name.to_string();
            let deadline = Instant::now() + Duration::from_secs(30);
            let (rec, holder) = tokio::task::spawn_blocking(move || {
                let (store, _) = store.open()?;
                super::stop::ask_and_wait(&*store, &n, Some(deadline))
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("{e:#}"))?;
            Ok(match rec {
                Some(r) => format!("experiment {name} is {}", r.status.state),
                None => format!("asked {holder} to stop experiment {name}"),
            })
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let store = self.store.clone();
            let n = name.to_string();
            tokio::task::spawn_blocking(move || super::delete::delete_local(&store, &n))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("{e:#}"))?;
            Ok(format!("deleted experiment {name}"))
        })
    }
}

/// The actions of a server: its manager's.
pub struct Served(pub ManagerService);

impl Actions for Served {
    fn stop<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            self.0
                .stop(name)
                .await
                .map_err(|s| s.message().to_string())?;
            Ok(format!("stopped experiment {name}"))
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            self.0
                .delete(name)
                .await
                .map_err(|s| s.message().to_string())?;
            Ok(format!("deleted experiment {name}"))
        })
    }
}

/// What `kestrel serve --dashboard` does once its manager exists: serve the dashboard on
/// `listener` (when given) with the manager's actions, until the process ends (after the
/// server has stopped).
pub fn start_served(
    listener: Option<tokio::net::TcpListener>,
    store: Arc<dyn kestrel_store::Store>,
    access: Access,
    runs: PathBuf,
) -> impl FnOnce(&ManagerService) {
    move |manager| {
        if let Some(l) = listener {
            let d = Dashboard::new(store, Arc::new(Served(manager.clone())), access, Some(runs));
            tokio::spawn(kestrel_dashboard::serve(l, d, std::future::pending()));
        }
    }
}

/// Serves the dashboard over the local store until SIGTERM or Ctrl-C.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let token = crate::remote::read_token(a.token_file.as_deref())?;
    let (store, dir) = a.store.open()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = bind(&a.listen, "--listen").await?;
        let local = listener.local_addr().context("reading the bound address")?;
        if token.is_none() && !local.ip().is_loopback() {
            tracing::warn!("no token: the dashboard answers this machine's browsers only");
        }
        let d = Dashboard::new(
            store,
            Arc::new(Local { store: a.store }),
            access(token.as_deref()),
            Some(dir.join("runs")),
        );
        out!(
            "kestrel dashboard on {} (store {})",
            url(local),
            dir.display()
        );
        use std::io::Write;
        std::io::stdout().flush().ok();
        kestrel_dashboard::serve(listener, d, super::run::shutdown_signal())
            .await
            .context("serving the dashboard")?;
        Ok(ExitCode::SUCCESS)
    })
}
