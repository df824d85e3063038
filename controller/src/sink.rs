//! The in-process metrics sink: reports go straight to the store's observation logs.

use std::sync::Arc;

use kestrel_core::MetricLog;
use kestrel_metrics_collector::{MetricsSink, SinkError};
use kestrel_store::Store;

/// Writes reports to a [`Store`].
pub struct StoreSink(pub Arc<dyn Store>);

impl MetricsSink for StoreSink {
    fn report(&self, trial: &str, logs: &[MetricLog]) -> Result<(), SinkError> {
        self.0.append_metrics(trial, logs).map_err(|e| SinkError {
            trial: trial.to_string(),
            message: format!("{e:#}"),
        })
    }

    fn count(&self, trial: &str) -> Result<usize, SinkError> {
        self.0
            .metrics(trial, None)
            .map(|m| m.len())
            .map_err(|e| SinkError {
                trial: trial.to_string(),
                message: format!("{e:#}"),
            })
    }
}
