//! `kestrel serve --operator`: kestrel's server (Katib's services, the management API,
//! experiments run with the Kubernetes executor) and the Experiment controller in one
//! process, sharing one manager. Trial objects are owned by Trial resources, which are
//! owned by their Experiment.

use std::sync::Arc;

use kestrel_controller::executor::kubernetes::{KubeExecutor, KubeSettings};
use kestrel_server::{ManagerService, RunConfig, Security, ServeError};
use kestrel_store::Store;
use kube::runtime::events::{Recorder, Reporter};
use tokio::net::TcpListener;

use crate::controller::{Context, run};
use crate::resources::TrialResources;

/// The API client of the environment (kubeconfig, `KUBECONFIG` or the pod's service
/// account).
pub async fn client() -> Result<kube::Client, ServeError> {
    kube::Client::try_default().await.map_err(|e| {
        ServeError::NotReady(format!(
            "cannot reach a Kubernetes cluster (kubeconfig, KUBECONFIG or in-cluster service account): {e}"
        ))
    })
}

/// Serves and reconciles until `shutdown` completes, with `client` (inferred from the
/// environment when `None`). Running trials are left running:
/// the next operator re-attaches to them. `with_manager` gets the management service once
/// it exists (the dashboard acts through it).
pub async fn serve(
    listener: TcpListener,
    store: Arc<dyn Store>,
    cfg: RunConfig,
    security: Security,
    client: Option<kube::Client>,
    with_manager: impl FnOnce(&ManagerService),
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let client = match client {
        Some(c) => c,
        None => self::client().await?,
    };
    let executor = KubeExecutor::new(KubeSettings {
        client: Some(client.clone()),
        image: cfg.kubernetes.image.clone(),
        db_manager: cfg.kubernetes.db_manager.clone(),
        owner: Some(Arc::new(TrialResources::new(client.clone(), store.clone()))),
        runs_dir: Some(cfg.runs_dir.clone()),
    });
    let manager = ManagerService::with_executor(store.clone(), cfg, Arc::new(executor));
    with_manager(&manager);
    let reporter = Reporter {
        controller: "kestrel-operator".into(),
        instance: std::env::var("HOSTNAME").ok(),
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        manager: manager.clone(),
        applied: Default::default(),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(run(ctx, async move {
        let _ = stopped.await;
    }));
    let served = kestrel_server::serve_manager(listener, store, manager, security, async move {
        shutdown.await;
        let _ = stop.send(());
    })
    .await;
    if let Err(e) = controller.await {
        tracing::warn!(error = %e, "the Experiment controller failed");
    }
    served
}
