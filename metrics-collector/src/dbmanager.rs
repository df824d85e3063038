//! A [`MetricsSink`] that reports to a DBManager (`kestrel serve`, or Katib's) over Katib's
//! gRPC contract: `ReportObservationLog`, and `GetObservationLog` to count what is stored.

use std::time::Duration;

use kestrel_core::MetricLog;
use kestrel_proto::convert::katib::observation_log;
use kestrel_proto::katib::db_manager_client::DbManagerClient;
use kestrel_proto::katib::{GetObservationLogRequest, ReportObservationLogRequest};
use tonic::transport::{Channel, Endpoint};

use crate::{MetricsSink, SinkError};

/// Reports to the DBManager at an address.
#[derive(Debug, Clone)]
pub struct DbManagerSink {
    client: DbManagerClient<Channel>,
    credential: Option<String>,
}

/// `message` as a request carrying `credential` as its bearer token.
pub fn with_credential<T>(message: T, credential: Option<&str>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Some(v) = credential.and_then(|c| format!("Bearer {c}").parse().ok()) {
        req.metadata_mut().insert("authorization", v);
    }
    req
}

/// `host:port` or a URL; a bare address gets `http://`.
pub fn url(address: &str) -> String {
    if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    }
}

impl DbManagerSink {
    /// A sink for `address` (connected on first use), sending `credential` (the trial's
    /// secret, or a server token) with each request.
    pub fn new(address: &str, credential: Option<String>) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(url(address))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .connect_lazy();
        Ok(DbManagerSink {
            client: DbManagerClient::new(channel),
            credential,
        })
    }
}

fn sink_error(trial: &str, s: &tonic::Status) -> SinkError {
    SinkError {
        trial: trial.to_string(),
        message: format!("{} ({:?})", s.message(), s.code()),
    }
}

#[async_trait::async_trait]
impl MetricsSink for DbManagerSink {
    async fn report(&self, trial: &str, logs: &[MetricLog]) -> Result<(), SinkError> {
        let req = ReportObservationLogRequest {
            trial_name: trial.to_string(),
            observation_log: Some(observation_log(logs)),
        };
        self.client
            .clone()
            .report_observation_log(with_credential(req, self.credential.as_deref()))
            .await
            .map(|_| ())
            .map_err(|s| sink_error(trial, &s))
    }

    async fn count(&self, trial: &str) -> Result<usize, SinkError> {
        let req = GetObservationLogRequest {
            trial_name: trial.to_string(),
            ..Default::default()
        };
        let reply = self
            .client
            .clone()
            .get_observation_log(with_credential(req, self.credential.as_deref()))
            .await
            .map_err(|s| sink_error(trial, &s))?;
        Ok(reply
            .into_inner()
            .observation_log
            .map_or(0, |o| o.metric_logs.len()))
    }
}
