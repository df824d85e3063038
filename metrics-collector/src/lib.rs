//! kestrel-metrics-collector: turns a trial's output into metric reports.
//!
//! # Layout
//! - [`parse`]: Katib's text format (default and custom `metricsFormat` regexes) and JSON
//!   lines format, as pure functions of one line.
//! - [`lines`]: splits a byte stream into lines without losing a partial last line.
//! - [`tail`]: follows a metrics file as a trial appends to it.
//! - [`rules`]: Katib's early-stopping rules, evaluated report by report.
//! - [`Collector`]: one trial's parser state, turning lines into [`MetricLog`]s.
//! - [`MetricsSource`]: the one mapping from a collector kind to where metrics are read.
//! - [`MetricsSink`]: where reports go (the store in local mode, a DBManager,
//!   [`dbmanager::DbManagerSink`], for `kestrel collect`).
//! - [`runtime`]: the moving parts both the local executor and `kestrel collect` run:
//!   following a file, pumping a pipe, batching reports, stopping a process group.

pub mod dbmanager;
pub mod lines;
pub mod parse;
pub mod rules;
pub mod runtime;
pub mod tail;
pub mod tfevent;

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use kestrel_core::MetricLog;
use kestrel_core::experiment::{CollectorKind, FileFormat, MetricsCollector};

pub use parse::{ParseError, Parsed, TextParser};

/// Receives a trial's metric reports.
///
/// # Contract
/// A report that returns `Ok` is durable: it will be visible to readers of the trial's
/// observation log. Reports of one trial arrive in order.
#[async_trait::async_trait]
pub trait MetricsSink: Send + Sync {
    /// Stores `logs` for `trial`.
    async fn report(&self, trial: &str, logs: &[MetricLog]) -> Result<(), SinkError>;
    /// How many reports the sink holds for `trial`: where a collector that re-reads a
    /// trial's output from its start (after kestrel restarted) resumes, without
    /// reporting anything twice.
    async fn count(&self, trial: &str) -> Result<usize, SinkError>;
}

/// Where a trial's metrics are read: the one mapping from `metricsCollectorSpec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsSource {
    /// The program's stdout and stderr (`StdOut`).
    Output,
    /// A file the program writes (`File`), resolved against the working directory.
    File(PathBuf),
    /// The program reports itself (`Push`); nothing is read.
    Pushed,
    /// tfevents files under a directory (`TensorFlowEvent`), read when the program ends.
    Events(PathBuf),
}

impl MetricsSource {
    /// The source of `spec` for a program running in `working_dir`; `None` for kinds
    /// kestrel cannot collect (PrometheusMetric, Custom).
    pub fn of(spec: &MetricsCollector, working_dir: &Path) -> Option<Self> {
        match &spec.kind {
            CollectorKind::StdOut => Some(MetricsSource::Output),
            CollectorKind::File { path, .. } => Some(MetricsSource::File(working_dir.join(path))),
            CollectorKind::Push => Some(MetricsSource::Pushed),
            CollectorKind::TensorFlowEvent { path } => {
                Some(MetricsSource::Events(working_dir.join(path)))
            }
            CollectorKind::Unsupported { .. } => None,
        }
    }
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
