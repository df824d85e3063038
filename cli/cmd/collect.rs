//! `kestrel collect -- COMMAND...`: the metrics-collector sidecar. It runs the training
//! command (its output passes through), collects the objective and additional metrics
//! from its stdout/stderr or from a file it writes (Katib's text or JSON formats), and
//! reports them to a DBManager (`kestrel serve`, or Katib's) with ReportObservationLog,
//! batched: a metric is sent within `--interval` (0.1 s) of being printed, and what is
//! left once more after the command exits (also on SIGTERM, after stopping it), so the
//! last lines are never lost. A metric the objective never got is reported as
//! `unavailable`, as Katib does. The moving parts (pipe pump, file follower, batching,
//! group stop, DBManager sink) are `kestrel-metrics-collector`'s, shared with the local
//! executor.
//!
//! Reports carry the trial's credential from `KESTREL_TRIAL_TOKEN` when kestrel started the
//! trial (a kestrel server accepts writes about its own trials only with it).
//!
//! With `--stop-rule name;value;comparison;start_step` (Katib's EarlyStoppingRule), the
//! command's process group is stopped once every rule is met; its metrics are reported
//! and the trial is marked EarlyStopped with SetTrialStatus. Exit status: the command's
//! (128 + signal when killed), 0 after an early stop.

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use jiff::Timestamp;
use kestrel_core::experiment::{CollectorKind, FileFormat, MetricsCollector};
use kestrel_core::metrics::UNAVAILABLE;
use kestrel_core::{MetricLog, ObjectiveType};
use kestrel_metrics_collector::dbmanager::{DbManagerSink, url, with_credential};
use kestrel_metrics_collector::rules::{RuleSet, StopRule};
use kestrel_metrics_collector::runtime::{Batch, pump, spawn_follow, terminate_group};
use kestrel_metrics_collector::tail::FileTail;
use kestrel_metrics_collector::{Collector, MetricsSink, MetricsSource};
use kestrel_proto::katib::SetTrialStatusRequest;
use kestrel_proto::katib::early_stopping_client::EarlyStoppingClient;
use tokio::sync::{mpsc, watch};
use tonic::transport::Endpoint;

use super::UsageError;

/// Where the metrics come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Source {
    /// The command's stdout and stderr.
    #[default]
    Stdout,
    /// A file the command writes (--path).
    File,
    /// The tfevents files under a directory (--path), read when the command ends
    /// (Katib's TensorFlowEvent collector).
    Tfevent,
}

/// Format of the metric lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    /// `name=value` lines, matched with Katib's default filter or --filter.
    #[default]
    Text,
    /// One JSON object per line (`{"loss": "0.3", "timestamp": ...}`).
    Json,
}

/// Objective direction (for rules on the objective's best-so-far).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Direction {
    /// Smaller is better.
    #[default]
    Minimize,
    /// Larger is better.
    Maximize,
}

/// Arguments of `kestrel collect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Trial name (default: $KATIB_TRIAL_NAME, else $KESTREL_TRIAL_NAME).
    #[arg(long)]
    trial: Option<String>,
    /// Metrics to collect, objective first (comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    metrics: Vec<String>,
    /// DBManager address (host:port or URL), e.g. 127.0.0.1:6789.
    #[arg(long, value_name = "ADDR")]
    db_manager: String,
    /// EarlyStopping address for SetTrialStatus (default: the DBManager address).
    #[arg(long, value_name = "ADDR")]
    early_stopping: Option<String>,
    /// Where metrics are read from.
    #[arg(long, value_enum, default_value_t)]
    source: Source,
    /// The metrics file (--source file) or directory (--source tfevent); relative to the
    /// working directory.
    #[arg(long)]
    path: Option<PathBuf>,
    /// Line format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// A regex with two groups (name, value) for text lines; repeatable.
    #[arg(long = "filter", value_name = "REGEX")]
    filters: Vec<String>,
    /// Early-stopping rule name;value;equal|less|greater;start_step; repeatable.
    #[arg(long = "stop-rule", value_name = "RULE")]
    stop_rules: Vec<StopRule>,
    /// Objective direction, for rules on the objective metric.
    #[arg(long, value_enum, default_value_t)]
    objective_type: Direction,
    /// Longest a metric waits before it is reported, in seconds (reports are batched).
    #[arg(long, default_value_t = 0.1, value_name = "SECONDS")]
    interval: f64,
    /// Seconds the command gets between SIGTERM and SIGKILL when stopped.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    grace: f64,
    /// The training command and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Runs the command under collection.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let trial = a
        .trial
        .clone()
        .or_else(|| std::env::var("KATIB_TRIAL_NAME").ok())
        .or_else(|| std::env::var("KESTREL_TRIAL_NAME").ok())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| UsageError("--trial: not given and KATIB_TRIAL_NAME is not set".into()))?;
    for (flag, v) in [("--interval", a.interval), ("--grace", a.grace)] {
        if !(v.is_finite() && v > 0.0) {
            return Err(UsageError(format!("{flag} {v}: must be a positive number")).into());
        }
    }
    // Bounded, so the durations made of them below are representable.
    super::seconds("--interval", a.interval)?;
    super::seconds("--grace", a.grace)?;
    if a.metrics.iter().any(|m| m.trim().is_empty()) {
        return Err(UsageError("--metrics: a metric name is empty".into()).into());
    }
    let kind = match (a.source, &a.path) {
        (Source::Stdout, None) => CollectorKind::StdOut,
        (Source::Stdout, Some(_)) => {
            return Err(UsageError("--path needs --source file".into()).into());
        }
        (Source::File, Some(p)) => CollectorKind::File {
            path: p.display().to_string(),
            format: match a.format {
                Format::Text => FileFormat::Text,
                Format::Json => FileFormat::Json,
            },
        },
        (Source::File, None) => return Err(UsageError("--source file needs --path".into()).into()),
        (Source::Tfevent, Some(p)) => CollectorKind::TensorFlowEvent {
            path: p.display().to_string(),
        },
        (Source::Tfevent, None) => {
            return Err(UsageError("--source tfevent needs --path (a directory)".into()).into());
        }
    };
    if a.format == Format::Json && !a.filters.is_empty() {
        return Err(UsageError("--filter applies to text lines, not --format json".into()).into());
    }
    if a.format == Format::Json && a.source == Source::Stdout {
        return Err(UsageError("--format json is for --source file (as in Katib)".into()).into());
    }
    let spec = MetricsCollector {
        kind,
        filters: a.filters.clone(),
    };
    let collector = Collector::new(&spec, a.metrics.clone())
        .map_err(|e| UsageError(format!("--filter: {e}")))?;
    let runtime = crate::remote::runtime()?;
    // Relative paths stay relative to the working directory the command shares.
    let source = MetricsSource::of(&spec, std::path::Path::new(""));
    runtime.block_on(collect(a, trial, collector, source))
}

async fn collect(
    a: Args,
    trial: String,
    collector: Collector,
    source: Option<MetricsSource>,
) -> anyhow::Result<ExitCode> {
    // The trial's own credential, when kestrel started it (see `kestrel serve`).
    let credential = std::env::var("KESTREL_TRIAL_TOKEN")
        .ok()
        .filter(|c| !c.is_empty());
    let sink: Arc<dyn MetricsSink> = Arc::new(
        DbManagerSink::new(&a.db_manager, credential.clone())
            .map_err(|e| UsageError(format!("--db-manager {:?}: {e}", a.db_manager)))?,
    );
    let mut batch = Batch::new(sink, &trial, Duration::from_secs_f64(a.interval));
    // Taken before the command starts: what the file holds now is not this trial's.
    let tail = match &source {
        Some(MetricsSource::File(path)) => Some(FileTail::new(path.clone())),
        _ => None,
    };
    let mut child = tokio::process::Command::new(&a.command[0])
        .args(&a.command[1..])
        .env("KATIB_TRIAL_NAME", &trial)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| UsageError(format!("cannot run {:?}: {e}", a.command[0])))?;
    let pgid = child.id().unwrap_or(0);
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let parse_output = source == Some(MetricsSource::Output);
    let out = child.stdout.take().map(|s| {
        tokio::spawn(pump(
            s,
            Some(tokio::io::stdout()),
            parse_output.then(|| tx.clone()),
        ))
    });
    let err = child.stderr.take().map(|s| {
        tokio::spawn(pump(
            s,
            Some(tokio::io::stderr()),
            parse_output.then(|| tx.clone()),
        ))
    });
    let (done_tx, done_rx) = watch::channel(false);
    let (exited_tx, exited_rx) = watch::channel(false);
    if let Some(tail) = tail {
        spawn_follow(tail, Duration::from_millis(100), done_rx, tx.clone());
    }
    drop(tx);
    let waiter = tokio::spawn(async move {
        let status = child.wait().await;
        exited_tx.send_replace(true);
        // Output pumps end at end-of-file; the file follower then reads to the end.
        if let Some(t) = out {
            let _ = t.await;
        }
        if let Some(t) = err {
            let _ = t.await;
        }
        done_tx.send_replace(true);
        status
    });
    let stop = move || {
        let mut exited = exited_rx.clone();
        let grace = Duration::from_secs_f64(a.grace);
        tokio::spawn(terminate_group(pgid, grace, async move {
            let _ = exited.wait_for(|e| *e).await;
        }));
    };

    let objective = a.metrics[0].clone();
    let kind = match a.objective_type {
        Direction::Minimize => ObjectiveType::Minimize,
        Direction::Maximize => ObjectiveType::Maximize,
    };
    let mut rules = RuleSet::new(a.stop_rules.clone(), &objective, kind);
    let mut seen_objective = false;
    let mut early_stopped = false;
    let mut interrupted = false;
    let mut shutdown = std::pin::pin!(super::run::shutdown_signal());
    loop {
        tokio::select! {
            line = rx.recv() => {
                let Some(line) = line else { break };
                for log in collector.feed(&line, Timestamp::now()) {
                    seen_objective |= log.name == objective;
                    if !early_stopped && rules.observe(&log) {
                        early_stopped = true;
                        tracing::warn!(trial = %trial, "early-stopping rules met; stopping the command");
                        stop();
                    }
                    batch.push(log);
                }
            }
            () = batch.due() => {
                if let Err(e) = batch.flush().await {
                    tracing::warn!(error = %e, "report failed; will retry");
                }
            }
            () = &mut shutdown, if !interrupted => {
                interrupted = true;
                tracing::warn!("interrupted; stopping the command");
                stop();
            }
        }
    }
    let status = waiter
        .await
        .context("waiting for the command")?
        .context("waiting for the command")?;
    if let Some(MetricsSource::Events(dir)) = &source {
        let (logs, warnings) = kestrel_metrics_collector::tfevent::read_dir(dir, &a.metrics);
        for w in warnings {
            tracing::warn!(warning = %w, "tfevents file not read to its end");
        }
        for log in logs {
            seen_objective |= log.name == objective;
            batch.push(log);
        }
    }
    if !seen_objective {
        batch.push(MetricLog {
            time: Timestamp::now(),
            name: objective.clone(),
            value: UNAVAILABLE.into(),
        });
    }
    batch.finish().await?;
    if early_stopped {
        let addr = a
            .early_stopping
            .as_deref()
            .map_or_else(|| url(&a.db_manager), url);
        mark_early_stopped(&addr, &trial, credential.as_deref()).await;
        return Ok(ExitCode::SUCCESS);
    }
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

async fn mark_early_stopped(addr: &str, trial: &str, credential: Option<&str>) {
    let result = async {
        let ch = Endpoint::from_shared(addr.to_string())?.connect().await?;
        EarlyStoppingClient::new(ch)
            .set_trial_status(with_credential(
                SetTrialStatusRequest {
                    trial_name: trial.to_string(),
                },
                credential,
            ))
            .await?;
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    }
    .await;
    match result {
        Ok(()) => tracing::info!(trial, "marked EarlyStopped"),
        Err(e) => tracing::warn!(trial, error = %e, "could not mark the trial EarlyStopped"),
    }
}
