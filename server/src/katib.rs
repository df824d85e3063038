//! Katib's `api.v1beta1.DBManager` and `EarlyStopping` services over the [`Store`].
//!
//! DBManager keeps observation logs of any trial name, as Katib's does; a kestrel trial's
//! logs reported here (by `kestrel collect`) are what the controller reads when the trial
//! ends. `GetEarlyStoppingRules` asks the experiment's early stopper for its Katib rule,
//! computed from the trials' logs: in the store when `db_manager_address` is empty or this
//! server, else read from that DBManager as Katib's medianstop does ([`remote_logs`]).
//! `SetTrialStatus` marks a running kestrel trial EarlyStopped, the call Katib's metrics
//! collector makes after it stopped the training process itself.

use std::net::SocketAddr;
use std::sync::Arc;

use kestrel_core::experiment::CollectorKind;

use jiff::Timestamp;
use kestrel_algorithms::Catalog;
use kestrel_algorithms::early_stopping::{self, Peers};
use kestrel_core::{MetricLog, ObjectiveType, TrialState};
use kestrel_proto::convert::{self, katib as conv};
use kestrel_proto::katib::{self as pb, db_manager_server, early_stopping_server};
use kestrel_store::{Store, StoreError};

use crate::access::{Access, Write, bearer};
use crate::remote_logs;
use kestrel_suggestion::grpc::{algo_status, blocking};
use tonic::{Request, Response, Status};

/// A status for a store failure.
pub fn store_status(e: &StoreError) -> Status {
    match e {
        StoreError::NotFound(m) => Status::not_found(m.clone()),
        StoreError::Conflict(m) => Status::failed_precondition(m.clone()),
        other => {
            tracing::error!(error = %other, "store failure");
            Status::internal(format!("store failure: {other}"))
        }
    }
}

/// A trial name a request gives: required, and at most a Kubernetes name long.
fn required(value: &str, field: &str) -> Result<(), Status> {
    if value.trim().is_empty() {
        Err(Status::invalid_argument(format!("{field}: is required")))
    } else if value.len() > conv::MAX_TRIAL_NAME {
        Err(Status::invalid_argument(format!(
            "{field}: {} bytes (at most {})",
            value.len(),
            conv::MAX_TRIAL_NAME
        )))
    } else {
        Ok(())
    }
}

/// Katib's DBManager over a store.
#[derive(Clone)]
pub struct DbManagerService {
    store: Arc<dyn Store>,
    access: Access,
}

impl DbManagerService {
    /// The service over `store`, with `access` deciding who may write.
    pub fn new(store: Arc<dyn Store>, access: Access) -> Self {
        DbManagerService { store, access }
    }
}

/// Refuses a write about trial `name` that `access` does not allow (see [`Access`]).
fn authorize(
    store: &dyn Store,
    access: &Access,
    given: Option<&str>,
    name: &str,
    what: Write,
) -> Result<(), Status> {
    let trial = store.trial(name).map_err(|e| store_status(&e))?;
    if given.is_none()
        && what == Write::Report
        && let Some(t) = &trial
        && t.state == TrialState::Running
    {
        let pushed = store
            .experiment(&t.experiment)
            .map_err(|e| store_status(&e))?
            .is_some_and(|e| matches!(e.spec.metrics_collector.kind, CollectorKind::Push));
        match (pushed, access.open_push()) {
            (true, true) => return Ok(()),
            (true, false) => {
                return Err(Status::unauthenticated(format!(
                    "kestrel trial {name:?}: writes need its credential (the {} it was started with); Katib's SDK sends none: start kestrel with --push-auth open to take Push reports without one",
                    kestrel_controller::credentials::ENV
                )));
            }
            _ => {}
        }
    }
    access.check(given, name, trial.as_ref(), what)
}

#[tonic::async_trait]
impl db_manager_server::DbManager for DbManagerService {
    async fn report_observation_log(
        &self,
        request: Request<pb::ReportObservationLogRequest>,
    ) -> Result<Response<pb::ReportObservationLogReply>, Status> {
        let given = bearer(request.metadata());
        let req = request.into_inner();
        required(&req.trial_name, "trial_name")?;
        let logs = conv::metric_logs(req.observation_log.as_ref(), Timestamp::now())?;
        if logs.is_empty() {
            return Err(Status::invalid_argument(
                "observation_log.metric_logs: is empty (nothing to report)",
            ));
        }
        let (store, access) = (self.store.clone(), self.access.clone());
        blocking(move || {
            authorize(
                &*store,
                &access,
                given.as_deref(),
                &req.trial_name,
                Write::Report,
            )?;
            store
                .append_metrics(&req.trial_name, &logs)
                .map_err(|e| store_status(&e))
        })
        .await?;
        Ok(Response::new(pb::ReportObservationLogReply {}))
    }

    async fn get_observation_log(
        &self,
        request: Request<pb::GetObservationLogRequest>,
    ) -> Result<Response<pb::GetObservationLogReply>, Status> {
        let req = request.into_inner();
        required(&req.trial_name, "trial_name")?;
        let start = convert::time(&req.start_time, "start_time")?;
        let end = convert::time(&req.end_time, "end_time")?;
        let store = self.store.clone();
        let mut logs = blocking(move || {
            let metric = Some(req.metric_name.as_str()).filter(|m| !m.is_empty());
            store
                .metrics(&req.trial_name, metric)
                .map_err(|e| store_status(&e))
        })
        .await?;
        logs.retain(|l| start.is_none_or(|s| l.time >= s) && end.is_none_or(|e| l.time <= e));
        // Katib orders by time; reports with equal times stay in arrival order.
        logs.sort_by_key(|l| l.time);
        Ok(Response::new(pb::GetObservationLogReply {
            observation_log: Some(conv::observation_log(&logs)),
        }))
    }

    async fn delete_observation_log(
        &self,
        request: Request<pb::DeleteObservationLogRequest>,
    ) -> Result<Response<pb::DeleteObservationLogReply>, Status> {
        let given = bearer(request.metadata());
        let req = request.into_inner();
        required(&req.trial_name, "trial_name")?;
        let (store, access) = (self.store.clone(), self.access.clone());
        blocking(move || {
            authorize(
                &*store,
                &access,
                given.as_deref(),
                &req.trial_name,
                Write::Delete,
            )?;
            store
                .delete_metrics(&req.trial_name)
                .map_err(|e| store_status(&e))
        })
        .await?;
        Ok(Response::new(pb::DeleteObservationLogReply {}))
    }
}

/// Katib's EarlyStopping service.
#[derive(Clone)]
pub struct EarlyStoppingService {
    store: Arc<dyn Store>,
    access: Access,
    own: Option<SocketAddr>,
}

impl EarlyStoppingService {
    /// The service; `SetTrialStatus` updates trials in `store` when `access` allows.
    pub fn new(store: Arc<dyn Store>, access: Access) -> Self {
        EarlyStoppingService {
            store,
            access,
            own: None,
        }
    }

    /// The service knowing that this server listens on `own`: a `db_manager_address` that
    /// names it is read from the store, any other is dialled (see [`remote_logs`]).
    pub fn listening_on(mut self, own: Option<SocketAddr>) -> Self {
        self.own = own;
        self
    }
}

#[tonic::async_trait]
impl early_stopping_server::EarlyStopping for EarlyStoppingService {
    async fn get_early_stopping_rules(
        &self,
        request: Request<pb::GetEarlyStoppingRulesRequest>,
    ) -> Result<Response<pb::GetEarlyStoppingRulesReply>, Status> {
        let given = bearer(request.metadata());
        let req = request.into_inner();
        let target = remote_logs::target(&req.db_manager_address, self.own)?;
        if matches!(target, remote_logs::Target::Remote(_)) {
            self.access.may_dial(given.as_deref())?;
        }
        let (experiment, trials) = (req.experiment, req.trials);
        let (problem, trials) = blocking(move || {
            let problem = conv::problem(experiment.as_ref(), &Catalog)?;
            let trials = conv::trials(&problem, &trials)?;
            Ok((problem, trials))
        })
        .await?;
        let Some(es) = problem.early_stopping.clone() else {
            return Ok(Response::new(pb::GetEarlyStoppingRulesReply::default()));
        };
        let metric = problem.objective.metric.clone();
        // A trial not started yet has no logs to read.
        let trials: Vec<_> = trials
            .into_iter()
            .filter(|t| t.state != TrialState::Created)
            .collect();
        let names: Vec<String> = trials.iter().map(|t| t.name.clone()).collect();
        let values = match target {
            remote_logs::Target::Remote(uri) => {
                remote_logs::objective_values(uri, names, metric.clone()).await?
            }
            remote_logs::Target::Own => {
                let (store, metric) = (self.store.clone(), metric.clone());
                blocking(move || {
                    names
                        .iter()
                        .map(|name| {
                            let logs = store
                                .metrics(name, Some(&metric))
                                .map_err(|e| store_status(&e))?;
                            Ok(logs.iter().filter_map(MetricLog::number).collect())
                        })
                        .collect::<Result<Vec<Vec<f64>>, Status>>()
                })
                .await?
            }
        };
        let reports: Vec<(TrialState, Vec<f64>)> =
            trials.iter().map(|t| t.state).zip(values).collect();
        rules(&es, &metric, problem.objective.kind, &reports).map(Response::new)
    }

    async fn set_trial_status(
        &self,
        request: Request<pb::SetTrialStatusRequest>,
    ) -> Result<Response<pb::SetTrialStatusReply>, Status> {
        let given = bearer(request.metadata());
        let req = request.into_inner();
        required(&req.trial_name, "trial_name")?;
        let (store, access) = (self.store.clone(), self.access.clone());
        blocking(move || {
            let mut t = store
                .trial(&req.trial_name)
                .map_err(|e| store_status(&e))?
                .ok_or_else(|| Status::not_found(format!("trial {:?}", req.trial_name)))?;
            let from = t.state;
            if from == TrialState::EarlyStopped {
                return Ok(pb::SetTrialStatusReply {});
            }
            access.check(
                given.as_deref(),
                &req.trial_name,
                Some(&t),
                Write::SetStatus,
            )?;
            if from.is_terminal() {
                return Err(Status::failed_precondition(format!(
                    "trial {:?} already finished ({from})",
                    req.trial_name
                )));
            }
            t.state = TrialState::EarlyStopped;
            t.reason = TrialState::EarlyStopped.reason().into();
            t.message = "Trial is early stopped".into();
            t.completed_at = Some(Timestamp::now());
            store.update_trial(&t, from).map_err(|e| store_status(&e))?;
            Ok(pb::SetTrialStatusReply {})
        })
        .await
        .map(Response::new)
    }

    async fn validate_early_stopping_settings(
        &self,
        request: Request<pb::ValidateEarlyStoppingSettingsRequest>,
    ) -> Result<Response<pb::ValidateEarlyStoppingSettingsReply>, Status> {
        let req = request.into_inner();
        conv::early_stopping(req.early_stopping.as_ref(), &Catalog)?;
        Ok(Response::new(pb::ValidateEarlyStoppingSettingsReply {}))
    }
}

/// Katib's rule for the trials' objective `reports` (state, values in order), if the
/// experiment's early stopper gives one.
fn rules(
    es: &kestrel_core::experiment::AlgorithmSpec,
    metric: &str,
    kind: ObjectiveType,
    reports: &[(TrialState, Vec<f64>)],
) -> Result<pb::GetEarlyStoppingRulesReply, Status> {
    let succeeded: Vec<&[f64]> = reports
        .iter()
        .filter(|(s, r)| !r.is_empty() && *s == TrialState::Succeeded)
        .map(|(_, r)| r.as_slice())
        .collect();
    let all: Vec<&[f64]> = reports
        .iter()
        .filter(|(_, r)| !r.is_empty())
        .map(|(_, r)| r.as_slice())
        .collect();
    let stopper = early_stopping::build(&es.name, &es.settings).map_err(|e| algo_status(&e))?;
    let peers = Peers {
        succeeded: &succeeded,
        all: &all,
    };
    let rule = stopper.katib_rule(peers, kind);
    Ok(pb::GetEarlyStoppingRulesReply {
        early_stopping_rules: rule
            .map(|r| pb::EarlyStoppingRule {
                name: metric.to_string(),
                value: r.value.to_string(),
                // Stop when the best so far is worse than the threshold.
                comparison: match kind {
                    ObjectiveType::Minimize => pb::ComparisonType::Greater,
                    ObjectiveType::Maximize => pb::ComparisonType::Less,
                }
                .into(),
                start_step: i32::try_from(r.start_step).unwrap_or(i32::MAX),
            })
            .into_iter()
            .collect(),
    })
}
