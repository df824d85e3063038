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

fn answer(req: pb::GetSuggestionsRequest) -> Result<pb::GetSuggestionsReply, Status> {
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
    let problem = conv::problem(req.experiment.as_ref(), &Catalog)?;
    let trials = conv::trials(&problem, &req.trials)?;
    // Katib counts requests, not trials: trial k of the experiment is request k.
    let earlier = i64::from(req.total_request_number) - i64::from(req.current_request_number);
    let first_index = u64::try_from(earlier).unwrap_or(0).max(trials.len() as u64);
    let batch = get_suggestions(&GetSuggestions {
        problem: &problem,
        trials: &trials,
        count,
        seed: seed_of(&problem),
        first_index: Some(first_index),
    })
    .map_err(|e| algo_status(&e))?;
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
        let req = request.into_inner();
        blocking(move || answer(req)).await.map(Response::new)
    }

    async fn validate_algorithm_settings(
        &self,
        request: Request<pb::ValidateAlgorithmSettingsRequest>,
    ) -> Result<Response<pb::ValidateAlgorithmSettingsReply>, Status> {
        let req = request.into_inner();
        blocking(move || {
            let problem = conv::problem(req.experiment.as_ref(), &Catalog)?;
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
}
