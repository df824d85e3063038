//! kestrel-metrics-collector: turns a trial's output into metric reports.
//!
//! # Layout
//! - [`parse`]: Katib's text format (default and custom `metricsFormat` regexes) and JSON
//!   lines format, as pure functions of one line.
//! - [`lines`]: splits a byte stream into lines without losing a partial last line.
//! - [`tail`]: follows a metrics file as a trial appends to it.
//! - [`rules`]: Katib's early-stopping rules, evaluated report by report.
//! - [`Collector`]: one trial's parser state, turning lines into [`MetricLog`]s.
//! - [`MetricsSink`]: where reports go (the store in local mode, DBManager for `kestrel collect`).

pub mod lines;
pub mod parse;
pub mod rules;
pub mod tail;

use jiff::Timestamp;
use kestrel_core::MetricLog;
use kestrel_core::experiment::{CollectorKind, FileFormat, MetricsCollector};

pub use parse::{ParseError, Parsed, TextParser};

/// Receives a trial's metric reports.
///
/// # Contract
/// A report that returns `Ok` is durable: it will be visible to readers of the trial's
/// observation log. Reports of one trial arrive in order.
pub trait MetricsSink: Send + Sync {
    /// Stores `logs` for `trial`.
    fn report(&self, trial: &str, logs: &[MetricLog]) -> Result<(), SinkError>;
    /// How many reports the sink holds for `trial`: where a collector that re-reads a
    /// trial's output from its start (after kestrel restarted) resumes, without
    /// reporting anything twice.
    fn count(&self, trial: &str) -> Result<usize, SinkError>;
}

/// A sink could not store a report.
#[derive(Debug, thiserror::Error)]
#[error("cannot store metrics of trial {trial}: {message}")]
pub struct SinkError {
    /// The trial.
    pub trial: String,
    /// Why.
    pub message: String,
}

/// Parses the lines of one trial's output into metric reports.
#[derive(Debug, Clone)]
pub struct Collector {
    text: Option<TextParser>,
    metrics: Vec<String>,
}

impl Collector {
    /// A collector for `spec` that keeps the listed metrics (objective first).
    pub fn new(spec: &MetricsCollector, metrics: Vec<String>) -> Result<Self, ParseError> {
        let json = matches!(
            spec.kind,
            CollectorKind::File {
                format: FileFormat::Json,
                ..
            }
        );
        let text = if json {
            None
        } else {
            Some(TextParser::new(&spec.filters)?)
        };
        Ok(Collector { text, metrics })
    }

    /// Reports found in `line`; reports without their own timestamp get `now`.
    pub fn feed(&self, line: &str, now: Timestamp) -> Vec<MetricLog> {
        let parsed = match &self.text {
            Some(p) => p.parse_line(line, &self.metrics),
            None => parse::json_line(line, &self.metrics),
        };
        parsed
            .into_iter()
            .map(|p| MetricLog {
                time: p.time.unwrap_or(now),
                name: p.name,
                value: p.value,
            })
            .collect()
    }
}
