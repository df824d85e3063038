//! Katib's `api.v1.beta1.Suggestion` and `grpc.health.v1.Health` over tonic.
//!
//! One service answers for every experiment and every algorithm: the request carries the
//! experiment and all its trials, and nothing is kept between requests, so a restarted
//! server continues where the last one stopped. Algorithm work runs on the blocking pool
//! (never on the async runtime), and a panic inside an algorithm becomes an `INTERNAL`
//! status for that request only.
//!
//! Katib semantics kept: the reply has exactly `current_request_number` assignments,
//! each with its `trial_name`; invalid settings are `INVALID_ARGUMENT`. Seeds: the
//! algorithm's `random_state` setting, else a hash of the experiment name, so repeated
//! requests with the same history get the same proposals.

use kestrel_algorithms::{AlgoError, Catalog};
use kestrel_proto::convert::katib as conv;
use kestrel_proto::health::health_check_response::ServingStatus;
use kestrel_proto::health::{HealthCheckRequest, HealthCheckResponse, health_server};
use kestrel_proto::katib::{self as pb, suggestion_server};
use kestrel_proto::raw::RawSuggestionsRequest;
use tonic::{Request, Response, Status};

use crate::{GetSuggestions, get_suggestions};

/// The service name Katib's controller probes on a suggestion server.
pub const KATIB_SUGGESTION_HEALTH_NAME: &str = "manager.v1beta1.Suggestion";

/// Katib's Suggestion service for every algorithm kestrel has.
#[derive(Debug, Clone, Default)]
pub struct SuggestionService;

/// A status for an algorithm error: the caller's fault or ours.
pub fn algo_status(e: &AlgoError) -> Status {
    match e {
        AlgoError::Internal(m) => Status::internal(m.clone()),
        other => Status::invalid_argument(other.to_string()),
    }
}

/// The seed of an experiment served over gRPC: `random_state`, else a hash of its name.
pub fn seed_of(problem: &kestrel_core::Problem) -> u64 {
    kestrel_algorithms::registry::random_state(&problem.algorithm)
        .unwrap_or_else(|| crate::name_hash(&problem.name))
}

/// Answers one GetSuggestions request (its trials still encoded).
pub fn answer(req: RawSuggestionsRequest) -> Result<pb::GetSuggestionsReply, Status> {
    let count = usize::try_from(req.current_request_number).map_err(|_| {
        Status::invalid_argument(format!(
            "current_request_number: {} is negative",
            req.current_request_number
        ))
    })?;
    if count > crate::MAX_REQUEST {
        return Err(Status::invalid_argument(format!(
            "current_request_number: {count} trials asked for at once (at most {})",
            crate::MAX_REQUEST
        )));
    }
    let call = conv::Call::Suggest {
        with_trials: !req.trials.is_empty(),
    };
    let problem = conv::problem_for(req.experiment.as_ref(), &Catalog, call)?;
    let history = match &req.experiment {
        Some(e) => crate::history::convert(&problem, e, req.trials)?,
        None => return Err(Status::invalid_argument("experiment: is required")),
    };
    let trials = &history.records;
    // Katib counts requests, not trials: trial k of the experiment is request k.
    let earlier = i64::from(req.total_request_number) - i64::from(req.current_request_number);
    let first_index = u64::try_from(earlier).unwrap_or(0).max(trials.len() as u64);
    let batch = get_suggestions(&GetSuggestions {
        problem: &problem,
        trials,
        count,
        seed: seed_of(&problem),
        first_index: Some(first_index),
        prior: &[],
        encoded: Some(&history.encoded),
    })
    .map_err(|e| algo_status(&e))?;
    history.keep();
    let named = batch.trials;
    if named.len() != count && batch.waiting {
        // Katib's controller retries a failed request; by then the rung may have finished.
        return Err(Status::unavailable(format!(
            "{} can propose {} of the {count} trials requested until running trials finish; retry later",
            problem.algorithm.name,
            named.len()
        )));
    }
    if named.len() != count {
        return Err(Status::out_of_range(format!(
            "{} can propose only {} of the {count} trials requested: the search space is exhausted",
            problem.algorithm.name,
            named.len()
        )));
    }
    Ok(pb::GetSuggestionsReply {
        parameter_assignments: named
            .into_iter()
            .map(|n| pb::get_suggestions_reply::ParameterAssignments {
                assignments: conv::assignments(&problem, &n.proposal.assignments),
                trial_name: n.name,
                labels: n.proposal.labels.into_iter().collect(),
            })
            .collect(),
        // The settings in force go back so Katib persists them (its only state channel);
        // kestrel's algorithms rebuild their state from the trials.
        algorithm: Some(conv::algorithm_spec(&problem.algorithm)),
        early_stopping_rules: vec![],
    })
}

/// How many GetSuggestions run their algorithm at once: two per core. Each holds its
/// working memory while it runs (a GP over 1,000 trials: its Gram matrix, factor and
/// inverses, about 75 MiB), so peak memory grows with the cores, not with the clients.
/// Measured with 16 clients of `bayesianoptimization` over 1,000 trials on 2 cores
/// (`kestrel-bench load --clients 16 --requests 2 --methods bayesianoptimization`):
/// one per core 5.8 requests/s and a 207 MiB peak, two per core 7.2 and 311 MiB,
/// unbounded 7.7 and 902 MiB (bench/README.md).
pub fn algorithm_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(2 * cores)
    })
}

/// Answers `req` once one of the [`algorithm_slots`] is free. Queued requests wait holding
/// only their message; at most two per core compute (and hold an algorithm's working
/// memory) at a time.
pub async fn answer_queued(req: RawSuggestionsRequest) -> Result<pb::GetSuggestionsReply, Status> {
    let _slot = algorithm_slots()
        .acquire()
        .await
        .map_err(|_| Status::unavailable("the server is shutting down"))?;
    blocking(move || answer(req)).await
}

/// Runs `f` on the blocking pool; a panic becomes `INTERNAL` for this request only.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => {
            tracing::error!("request handler panicked: {e}");
            Err(Status::internal(
                "the algorithm failed unexpectedly (panic); see the server log",
            ))
        }
        Err(e) => Err(Status::unavailable(format!("server is shutting down: {e}"))),
    }
}

#[tonic::async_trait]
impl suggestion_server::Suggestion for SuggestionService {
    async fn get_suggestions(
        &self,
        request: Request<pb::GetSuggestionsRequest>,
    ) -> Result<Response<pb::GetSuggestionsReply>, Status> {
        // Servers route GetSuggestions through `crate::route`, whose requests arrive with
        // their trials encoded; a decoded request (a caller of this trait) is encoded back.
        let req = RawSuggestionsRequest::from_decoded(request.into_inner());
        answer_queued(req).await.map(Response::new)
    }

    async fn validate_algorithm_settings(
        &self,
        request: Request<pb::ValidateAlgorithmSettingsRequest>,
    ) -> Result<Response<pb::ValidateAlgorithmSettingsReply>, Status> {
        let req = request.into_inner();
        blocking(move || {
            let call = conv::Call::ValidateSettings;
            let problem = conv::problem_for(req.experiment.as_ref(), &Catalog, call)?;
            crate::validate(&problem).map_err(|e| algo_status(&e))?;
            Ok(pb::ValidateAlgorithmSettingsReply {})
        })
        .await
        .map(Response::new)
    }
}

/// `grpc.health.v1.Health`: SERVING for the whole server ("") and for the names in
/// `services`; NOT_FOUND for any other name, as the standard protocol says.
#[derive(Debug, Clone)]
pub struct HealthService {
    services: Vec<String>,
}

impl HealthService {
    /// Health for a server serving `services` (besides "").
    pub fn new(services: impl IntoIterator<Item = impl Into<String>>) -> Self {
        HealthService {
            services: services.into_iter().map(Into::into).collect(),
        }
    }
}

#[tonic::async_trait]
impl health_server::Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let name = request.into_inner().service;
        if name.is_empty() || self.services.contains(&name) {
            Ok(Response::new(HealthCheckResponse {
                status: ServingStatus::Serving.into(),
            }))
        } else {
            Err(Status::not_found(format!("unknown service {name:?}")))
        }
    }
}

#[cfg(test)]
mod hostile_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_request_becomes_internal_and_the_next_one_is_served() {
        let e = blocking::<()>(|| panic!("boom"))
            .await
            .expect_err("panicked");
        assert_eq!(e.code(), tonic::Code::Internal);
        assert_eq!(blocking(|| Ok(7)).await.expect("served"), 7);
    }

    fn spec(algorithm: &str, settings: &[(&str, &str)], params: usize) -> pb::ExperimentSpec {
        let parameters = (0..params)
            .map(|i| pb::ParameterSpec {
                name: format!("x{i}"),
                parameter_type: pb::ParameterType::Double.into(),
                feasible_space: Some(pb::FeasibleSpace {
                    min: "0".into(),
                    max: "1".into(),
                    ..Default::default()
                }),
            })
            .collect();
        pb::ExperimentSpec {
            algorithm: Some(pb::AlgorithmSpec {
                algorithm_name: algorithm.into(),
                algorithm_settings: settings
                    .iter()
                    .map(|(n, v)| pb::AlgorithmSetting {
                        name: (*n).into(),
                        value: (*v).into(),
                    })
                    .collect(),
            }),
            parameter_specs: Some(pb::experiment_spec::ParameterSpecs { parameters }),
            ..Default::default()
        }
    }

    async fn validate_settings(spec: pb::ExperimentSpec) -> Result<(), tonic::Status> {
        let req = pb::ValidateAlgorithmSettingsRequest {
            experiment: Some(pb::Experiment {
                name: String::new(),
                spec: Some(spec),
            }),
        };
        use suggestion_server::Suggestion;
        SuggestionService
            .validate_algorithm_settings(Request::new(req))
            .await
            .map(|_| ())
    }

    /// Katib's services check only what a call uses: settings validate without a name,
    /// an objective or (for most algorithms) parameters; CMA-ES still needs two numeric
    /// parameters (goptuna's rule); a bad setting is refused either way.
    #[tokio::test]
    async fn validate_algorithm_settings_needs_only_the_algorithm() {
        for algorithm in [
            "random",
            "tpe",
            "bayesianoptimization",
            "multivariate-tpe",
            "sobol",
        ] {
            let r = validate_settings(spec(algorithm, &[("random_state", "10")], 0)).await;
            assert!(r.is_ok(), "{algorithm}: {r:?}");
        }
        let bad = validate_settings(spec("tpe", &[("gamma", "x")], 0))
            .await
            .unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        assert!(bad.message().contains("gamma"), "{}", bad.message());
        let cmaes = validate_settings(spec("cmaes", &[], 1)).await.unwrap_err();
        assert_eq!(cmaes.code(), tonic::Code::InvalidArgument, "{cmaes:?}");
        assert!(validate_settings(spec("cmaes", &[], 2)).await.is_ok());
    }

    /// GetSuggestions needs parameters and an algorithm; the objective only when trials
    /// come with it (their results are read by it).
    #[tokio::test]
    async fn get_suggestions_needs_the_objective_only_with_trials() {
        use suggestion_server::Suggestion;
        let ask = |trials: Vec<pb::Trial>| pb::GetSuggestionsRequest {
            experiment: Some(pb::Experiment {
                name: String::new(),
                spec: Some(spec("random", &[], 2)),
            }),
            trials,
            current_request_number: 2,
            total_request_number: 2,
        };
        let reply = SuggestionService
            .get_suggestions(Request::new(ask(vec![])))
            .await
            .expect("suggested")
            .into_inner();
        assert_eq!(reply.parameter_assignments.len(), 2);
        let trial = pb::Trial {
            name: "t-1".into(),
            ..Default::default()
        };
        let e = SuggestionService
            .get_suggestions(Request::new(ask(vec![trial])))
            .await
            .expect_err("trials without an objective");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("objective"), "{}", e.message());
    }
}
