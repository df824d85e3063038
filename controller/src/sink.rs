//! The in-process metrics sink: reports go straight to the store's observation logs (on
//! a blocking thread, as SQLite calls block).

use std::sync::Arc;

use kestrel_core::MetricLog;
use kestrel_metrics_collector::{MetricsSink, SinkError};
use kestrel_store::Store;

/// Writes reports to a [`Store`].
pub struct StoreSink(pub Arc<dyn Store>);

fn sink_error(trial: &str, message: String) -> SinkError {
    SinkError {
        trial: trial.to_string(),
        message,
    }
}

#[async_trait::async_trait]
impl MetricsSink for StoreSink {
    async fn report(&self, trial: &str, logs: &[MetricLog]) -> Result<(), SinkError> {
        let (store, t, logs) = (self.0.clone(), trial.to_string(), logs.to_vec());
        tokio::task::spawn_blocking(move || store.append_metrics(&t, &logs))
            .await
            .map_err(|e| sink_error(trial, format!("writer panicked: {e}")))?
            .map_err(|e| sink_error(trial, format!("{e:#}")))
    }

    async fn count(&self, trial: &str) -> Result<usize, SinkError> {
        let (store, t) = (self.0.clone(), trial.to_string());
        tokio::task::spawn_blocking(move || store.metrics(&t, None).map(|m| m.len()))
            .await
            .map_err(|e| sink_error(trial, format!("reader panicked: {e}")))?
            .map_err(|e| sink_error(trial, format!("{e:#}")))
    }
}
