//! kestrel's management service (`kestrel.v1.Manager`): one server process runs every
//! submitted experiment with its own reconciler task, and clients create, inspect, stop,
//! delete and watch them.
//!
//! Watching reads the store, woken by the reconcilers' progress (and at least every
//! second), and sends only what changed, so a watcher sees the same history whoever
//! writes the store.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kestrel_core::{ExperimentRecord, TrialCounts, TrialRecord};
use kestrel_proto::convert::manager as conv;
use kestrel_proto::manager::{self as pb, manager_server};
use kestrel_store::Store;
use kestrel_suggestion::grpc::blocking;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::katib::store_status;
use kestrel_controller::executor::{ExecutorConfig, UnknownExecutor};
use kestrel_controller::reconciler::{ControllerError, Halt, Options, Reconciler, drive};
use kestrel_controller::sink::StoreSink;
use kestrel_core::best_trial;

mod logs;
mod ops;

/// How the server runs experiments.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Where trial directories go (`<runs_dir>/<experiment>/<trial>`).
    pub runs_dir: PathBuf,
    /// Time a stopped trial gets between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Reconcile interval.
    pub tick: Duration,
    /// The executor trials run on (a name of `kestrel_controller::executor::executors`).
    pub executor: String,
    /// Options of the Kubernetes executor.
    pub kubernetes: kestrel_controller::executor::KubeOptions,
    /// This server's DBManager as local trials reach it, for those that report their
    /// metrics themselves (Push).
    pub db_manager: Option<String>,
}

/// The management service.
#[derive(Clone)]
pub struct ManagerService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    cfg: RunConfig,
    reconciler: Arc<Reconciler>,
    running: Mutex<HashMap<String, Running>>,
    changed: watch::Sender<u64>,
    halt: watch::Sender<bool>,
}

struct Running {
    stop: Option<oneshot::Sender<()>>,
    done: watch::Receiver<bool>,
}

impl ManagerService {
    /// The service; call [`ManagerService::resume_unfinished`] once at start-up.
    pub fn new(store: Arc<dyn Store>, cfg: RunConfig) -> Result<Self, UnknownExecutor> {
        let executor = kestrel_controller::executor::build(
            &cfg.executor,
            ExecutorConfig {
                sink: Arc::new(StoreSink(store.clone())),
                grace: cfg.grace,
                runs_dir: cfg.runs_dir.clone(),
                kubernetes: cfg.kubernetes.clone(),
                db_manager: cfg.db_manager.clone(),
            },
        )?;
        Ok(Self::with_executor(store, cfg, executor))
    }

    /// The service running trials on `executor` (one built by the caller, e.g. the
    /// operator's, whose trial objects are owned by Trial resources).
    pub fn with_executor(
        store: Arc<dyn Store>,
        cfg: RunConfig,
        executor: Arc<dyn kestrel_controller::executor::TrialExecutor>,
    ) -> Self {
        let reconciler = Arc::new(Reconciler::new(
            store.clone(),
            executor,
            Options { tick: cfg.tick },
        ));
        ManagerService {
            inner: Arc::new(Inner {
                store,
                cfg,
                reconciler,
                running: Mutex::new(HashMap::new()),
                changed: watch::channel(0).0,
                halt: watch::channel(false).0,
            }),
        }
    }

    /// Checks that the executor can launch trials (see `TrialExecutor::ready`).
    pub async fn executor_ready(&self) -> Result<(), kestrel_controller::executor::ExecError> {
        self.inner.reconciler.executor().ready().await
    }

    /// Restarts every stored experiment that has not finished (a previous server died or
    /// shut down while it ran). Returns their names.
    pub fn resume_unfinished(&self) -> Result<Vec<String>, Status> {
        let recs = self
            .inner
            .store
            .experiments()
            .map_err(|e| store_status(&e))?;
        let mut names = Vec::new();
        for rec in recs.iter().filter(|r| !r.status.state.is_terminal()) {
            match self.inner.start(rec) {
                Ok(()) => {
                    tracing::info!(experiment = %rec.name(), "resuming");
                    names.push(rec.name().to_string());
                }
                Err(e) => tracing::warn!(experiment = %rec.name(), error = %e, "not resuming"),
            }
        }
        Ok(names)
    }

    /// Kills every running trial and waits for the reconcilers to return; experiments stay
    /// unfinished and resume when a server starts on this store again.
    pub async fn shutdown(&self) {
        self.inner.halt.send_replace(true);
        let waits: Vec<watch::Receiver<bool>> =
            self.inner.lock().values().map(|r| r.done.clone()).collect();
        for mut d in waits {
            until_true(&mut d).await;
        }
    }
}

/// Waits until the flag is set (or its sender is gone).
async fn until_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts driving `rec` in a task, once its lease is taken.
    fn start(self: &Arc<Self>, rec: &ExperimentRecord) -> Result<(), ControllerError> {
        let name = rec.name().to_string();
        let lease = kestrel_controller::lease::acquire(&self.store, &name, "kestrel serve")?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (done_tx, done_rx) = watch::channel(false);
        self.lock().insert(
            name.clone(),
            Running {
                stop: Some(stop_tx),
                done: done_rx,
            },
        );
        let inner = self.clone();
        tokio::spawn(async move {
            let mut halt = inner.halt.subscribe();
            let stop = async move {
                tokio::select! {
                    r = stop_rx => if r.is_ok() { Halt::Stop } else { std::future::pending().await },
                    () = until_true(&mut halt) => Halt::Suspend,
                }
            };
            let changed = inner.changed.clone();
            let result = drive(&inner.reconciler, &name, lease, stop, |_| {
                changed.send_modify(|n| *n = n.wrapping_add(1));
            })
            .await;
            if let Err(e) = result {
                tracing::error!(experiment = %name, error = %e, "experiment ended with an error");
            }
            inner.lock().remove(&name);
            inner.changed.send_modify(|n| *n = n.wrapping_add(1));
            done_tx.send_replace(true);
        });
        Ok(())
    }

    async fn snapshot(
        self: &Arc<Self>,
        name: String,
    ) -> Result<(ExperimentRecord, Vec<TrialRecord>), Status> {
        let store = self.store.clone();
        blocking(move || {
            let rec = store
                .experiment(&name)
                .map_err(|e| store_status(&e))?
                .ok_or_else(|| Status::not_found(format!("no experiment named {name:?}")))?;
            let trials = store.trials(&name).map_err(|e| store_status(&e))?;
            Ok((rec, trials))
        })
        .await
    }
}

/// Refuses a name that is not a valid experiment name (it would become a path).
fn valid_name(name: &str) -> Result<(), Status> {
    kestrel_core::validate::experiment_name(name)
        .map_err(|m| Status::invalid_argument(format!("name: {m}")))
}

/// The summary message of an experiment and its trials.
pub fn info_of(rec: &ExperimentRecord, trials: &[TrialRecord]) -> pb::ExperimentInfo {
    conv::info(rec, &TrialCounts::of(trials), best_trial(&rec.spec, trials))
}

fn detail_of(
    rec: &ExperimentRecord,
    trials: &[TrialRecord],
    info: pb::ExperimentInfo,
) -> pb::ExperimentDetail {
    pb::ExperimentDetail {
        info: Some(info),
        trials: trials.iter().map(conv::trial).collect(),
        source: rec.source.clone(),
    }
}

#[tonic::async_trait]
impl manager_server::Manager for ManagerService {
    async fn create_experiment(
        &self,
        request: Request<pb::CreateExperimentRequest>,
    ) -> Result<Response<pb::ExperimentInfo>, Status> {
        let req = request.into_inner();
        let name = (!req.name.is_empty()).then_some(req.name);
        // Submitting an experiment that exists applies its changed budget, as `kubectl
        // apply` does for Katib: only the counts may change, and a finished experiment
        // runs again with its trials.
        let target = name.clone().or_else(|| {
            kestrel_core::parse_experiment(&req.yaml, &kestrel_algorithms::Catalog)
                .ok()
                .map(|e| e.name)
        });
        if let Some(target) = target
            && valid_name(&target).is_ok()
            && self.snapshot(&target).await.is_ok()
        {
            return match self.update(req.yaml, &target).await? {
                Some(rec) => {
                    let (_, trials) = self.snapshot(&target).await?;
                    Ok(Response::new(info_of(&rec, &trials)))
                }
                None => Err(Status::already_exists(format!(
                    "experiment {target:?} already exists with this spec; raise its maxTrialCount to continue it, or choose another name or delete it"
                ))),
            };
        }
        let rec = self.submit(req.yaml, name, req.seed, &req.base_dir).await?;
        Ok(Response::new(info_of(&rec, &[])))
    }

    async fn get_experiment(
        &self,
        request: Request<pb::ExperimentRef>,
    ) -> Result<Response<pb::ExperimentDetail>, Status> {
        let name = request.into_inner().name;
        valid_name(&name)?;
        let (rec, trials) = self.inner.snapshot(name).await?;
        let info = info_of(&rec, &trials);
        Ok(Response::new(detail_of(&rec, &trials, info)))
    }

    async fn list_experiments(
        &self,
        request: Request<pb::ListExperimentsRequest>,
    ) -> Result<Response<pb::ListExperimentsReply>, Status> {
        let want_details = request.into_inner().details;
        let store = self.inner.store.clone();
        let reply = blocking(move || {
            let mut reply = pb::ListExperimentsReply::default();
            for r in store.experiments().map_err(|e| store_status(&e))? {
                let trials = store.trials(r.name()).map_err(|e| store_status(&e))?;
                let info = info_of(&r, &trials);
                if want_details {
                    reply.details.push(detail_of(&r, &trials, info.clone()));
                }
                reply.experiments.push(info);
            }
            Ok(reply)
        })
        .await?;
        Ok(Response::new(reply))
    }

    async fn stop_experiment(
        &self,
        request: Request<pb::ExperimentRef>,
    ) -> Result<Response<pb::ExperimentInfo>, Status> {
        let name = request.into_inner().name;
        self.stop(&name).await?;
        let (rec, trials) = self.inner.snapshot(name).await?;
        Ok(Response::new(info_of(&rec, &trials)))
    }

    async fn delete_experiment(
        &self,
        request: Request<pb::ExperimentRef>,
    ) -> Result<Response<pb::DeleteExperimentReply>, Status> {
        let name = request.into_inner().name;
        self.delete(&name).await?;
        Ok(Response::new(pb::DeleteExperimentReply {}))
    }

    type GetTrialLogStream = ReceiverStream<Result<pb::TrialLogChunk, Status>>;

    async fn get_trial_log(
        &self,
        request: Request<pb::TrialLogRequest>,
    ) -> Result<Response<Self::GetTrialLogStream>, Status> {
        logs::stream(self.inner.clone(), request.into_inner())
            .await
            .map(Response::new)
    }

    type WatchExperimentStream = ReceiverStream<Result<pb::Event, Status>>;

    async fn watch_experiment(
        &self,
        request: Request<pb::ExperimentRef>,
    ) -> Result<Response<Self::WatchExperimentStream>, Status> {
        let name = request.into_inner().name;
        valid_name(&name)?;
        // Fail fast on an unknown name, before the stream starts.
        self.inner.snapshot(name.clone()).await?;
        let (tx, rx) = mpsc::channel(256);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let mut changed = inner.changed.subscribe();
            let mut halt = inner.halt.subscribe();
            let mut last_info: Option<pb::ExperimentInfo> = None;
            let mut seen: HashMap<String, TrialRecord> = HashMap::new();
            loop {
                let (rec, trials) = match inner.snapshot(name.clone()).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let mut events = Vec::new();
                for t in &trials {
                    if seen.get(&t.name) != Some(t) {
                        seen.insert(t.name.clone(), t.clone());
                        events.push(pb::event::Kind::Trial(conv::trial(t)));
                    }
                }
                let info = info_of(&rec, &trials);
                if last_info.as_ref() != Some(&info) {
                    // The experiment comes first in the first round, last afterwards.
                    let at = if last_info.is_none() { 0 } else { events.len() };
                    last_info = Some(info.clone());
                    events.insert(at, pb::event::Kind::Experiment(info));
                }
                for kind in events {
                    if tx.send(Ok(pb::Event { kind: Some(kind) })).await.is_err() {
                        return; // the client went away
                    }
                }
                if rec.status.state.is_terminal() {
                    return;
                }
                tokio::select! {
                    _ = changed.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = tx.closed() => return,
                    () = until_true(&mut halt) => {
                        let _ = tx.send(Err(Status::unavailable("the server is shutting down"))).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
