//! Runs trials as host processes.
//!
//! Each trial's program runs in its own process group (so stopping it also stops whatever
//! it started), with stdout and stderr captured to `<trial dir>/trial.log` and, for the
//! StdOut collector, parsed line by line as they arrive. A File collector's file is tailed
//! while the program runs and read to its end after it exits. A trial is reported as
//! exited only after both streams reached end-of-file and the last partial line was
//! parsed, so the last metric a program prints is never lost.
//!
//! Environment: the parent's, plus the container's `env`, plus `KATIB_TRIAL_NAME`,
//! `KESTREL_TRIAL_NAME`, `KESTREL_EXPERIMENT`, `KESTREL_TRIAL_DIR`, `KESTREL_EXPERIMENT_DIR`, and
//! `PYTHONUNBUFFERED=1` (unless set) so Python trials report metrics as they go.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use kestrel_metrics_collector::lines::LineSplitter;
use kestrel_metrics_collector::tail::FileTail;
use kestrel_metrics_collector::{Collector, MetricsSink};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;

use super::{ExecError, MetricsSource, RunPhase, StopReason, TrialExecutor, TrialRun};

/// Name of the combined stdout/stderr log in each trial directory.
pub const LOG_FILE: &str = "trial.log";

/// How long to wait for output pipes to close after the program exits (a background
/// grandchild may hold them open; it is then killed).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
const FILE_POLL: Duration = Duration::from_millis(200);

/// Executes trials as local processes.
pub struct ProcessExecutor {
    sink: Arc<dyn MetricsSink>,
    grace: Duration,
}

impl ProcessExecutor {
    /// An executor reporting metrics to `sink`; `grace` is how long a stopped program
    /// gets between SIGTERM and SIGKILL.
    pub fn new(sink: Arc<dyn MetricsSink>, grace: Duration) -> Self {
        ProcessExecutor { sink, grace }
    }
}

/// A running local trial.
#[derive(Debug)]
pub struct ProcessHandle {
    pgid: Pid,
    phase: watch::Receiver<RunPhase>,
    stopped: Arc<Mutex<Option<StopReason>>>,
}

struct Pump {
    trial: String,
    collector: Collector,
    sink: Arc<dyn MetricsSink>,
    log: Mutex<std::fs::File>,
    parse_output: bool,
}

impl Pump {
    fn log(&self, bytes: &[u8]) {
        let mut f = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = f.write_all(bytes) {
            tracing::warn!(trial = %self.trial, error = %e, "cannot write trial log");
        }
    }

    async fn feed(&self, lines: Vec<String>) {
        let now = Timestamp::now();
        let logs: Vec<_> = lines
            .iter()
            .flat_map(|l| self.collector.feed(l, now))
            .collect();
        if logs.is_empty() {
            return;
        }
        let (sink, trial) = (self.sink.clone(), self.trial.clone());
        let n = logs.len();
        match tokio::task::spawn_blocking(move || sink.report(&trial, &logs)).await {
            Ok(Ok(())) => tracing::debug!(trial = %self.trial, reports = n, "metrics stored"),
            Ok(Err(e)) => tracing::error!(trial = %self.trial, error = %e, "metrics lost"),
            Err(e) => tracing::error!(trial = %self.trial, error = %e, "metrics writer panicked"),
        }
    }

    async fn stream<R: AsyncRead + Unpin>(&self, mut r: R) {
        let mut buf = vec![0u8; 16 * 1024];
        let mut split = LineSplitter::new();
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    self.log(&buf[..n]);
                    if self.parse_output {
                        let lines = split.push(&buf[..n]);
                        self.feed(lines).await;
                    }
                }
            }
        }
        if let Some(last) = split.finish().filter(|_| self.parse_output) {
            self.feed(vec![last]).await;
        }
    }
}

fn prepare_dir(dir: &Path) -> Result<(), ExecError> {
    std::fs::create_dir_all(dir).map_err(|source| ExecError::Prepare {
        path: dir.display().to_string(),
        source,
    })
}

impl TrialExecutor for ProcessExecutor {
    type Handle = ProcessHandle;

    async fn launch(&self, run: TrialRun) -> Result<ProcessHandle, ExecError> {
        prepare_dir(&run.trial_dir)?;
        if !run.working_dir.is_dir() {
            return Err(ExecError::Prepare {
                path: run.working_dir.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "working directory does not exist",
                ),
            });
        }
        let log_path = run.trial_dir.join(LOG_FILE);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| ExecError::Prepare {
                path: log_path.display().to_string(),
                source,
            })?;
        // The file offset is taken before the program starts, so nothing it writes is skipped.
        let file = match &run.source {
            MetricsSource::File(p) => Some(FileTail::new(p.clone())),
            MetricsSource::Output => None,
        };
        let program = run.argv.first().cloned().unwrap_or_default();
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(&run.argv[1..])
            .current_dir(&run.working_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if std::env::var_os("PYTHONUNBUFFERED").is_none() {
            cmd.env("PYTHONUNBUFFERED", "1");
        }
        cmd.envs(run.env.iter().map(|(k, v)| (k, v)))
            .env("KATIB_TRIAL_NAME", &run.trial)
            .env("KESTREL_TRIAL_NAME", &run.trial)
            .env("KESTREL_EXPERIMENT", &run.experiment)
            .env("KESTREL_TRIAL_DIR", &run.trial_dir)
            .env("KESTREL_EXPERIMENT_DIR", &run.experiment_dir);
        let mut child = cmd.spawn().map_err(|source| ExecError::Spawn {
            program: program.clone(),
            source,
        })?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        let pgid = Pid::from_raw(pid);
        tracing::info!(trial = %run.trial, pid, ?run.argv, "trial started");

        let (tx, rx) = watch::channel(RunPhase::Running);
        let stopped = Arc::new(Mutex::new(None));
        let pump = Arc::new(Pump {
            trial: run.trial.clone(),
            collector: run.collector,
            sink: self.sink.clone(),
            log: Mutex::new(log),
            parse_output: run.source == MetricsSource::Output,
        });
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let stopped_flag = stopped.clone();
        tokio::spawn(async move {
            let out = {
                let pump = pump.clone();
                tokio::spawn(async move {
                    if let Some(s) = stdout {
                        pump.stream(s).await
                    }
                })
            };
            let err = {
                let pump = pump.clone();
                tokio::spawn(async move {
                    if let Some(s) = stderr {
                        pump.stream(s).await
                    }
                })
            };
            let (done_tx, mut done_rx) = watch::channel(false);
            let tail = file.map(|mut f| {
                let pump = pump.clone();
                tokio::spawn(async move {
                    loop {
                        let finished = *done_rx.borrow();
                        let lines = if finished { f.finish() } else { f.read_new() };
                        pump.feed(lines).await;
                        if finished {
                            break;
                        }
                        let _ = tokio::time::timeout(FILE_POLL, done_rx.changed()).await;
                    }
                })
            });
            let status = child.wait().await;
            let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
                let _ = out.await;
                let _ = err.await;
            })
            .await;
            if drained.is_err() {
                tracing::warn!(trial = %pump.trial, "output still open after exit; killing the process group");
                let _ = killpg(pgid, Signal::SIGKILL);
            }
            let _ = done_tx.send(true);
            if let Some(t) = tail {
                let _ = t.await;
            }
            let code = status.ok().and_then(|s| s.code());
            let stopped = *stopped_flag.lock().unwrap_or_else(|p| p.into_inner());
            tracing::info!(trial = %pump.trial, ?code, ?stopped, "trial exited");
            let _ = tx.send(RunPhase::Exited { code, stopped });
        });
        Ok(ProcessHandle {
            pgid,
            phase: rx,
            stopped,
        })
    }

    fn status(&self, h: &ProcessHandle) -> RunPhase {
        h.phase.borrow().clone()
    }

    async fn stop(&self, h: &ProcessHandle, why: StopReason) {
        if matches!(*h.phase.borrow(), RunPhase::Exited { .. }) {
            return;
        }
        *h.stopped.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
        let _ = killpg(h.pgid, Signal::SIGTERM);
        let mut rx = h.phase.clone();
        let exited = |p: &RunPhase| matches!(p, RunPhase::Exited { .. });
        if tokio::time::timeout(self.grace, rx.wait_for(exited))
            .await
            .is_err()
        {
            let _ = killpg(h.pgid, Signal::SIGKILL);
            let _ = rx.wait_for(exited).await;
        }
    }
}

#[cfg(test)]
mod tests;
