//! Watching one local trial: a task per trial follows its metrics (the log or the File
//! collector's file, incrementally), reports them to the sink, notices the end of the
//! process (its own child's exit, or an adopted process disappearing), reads the rest of
//! the output, and publishes the phase.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use kestrel_core::outcome::{RunEnd, StopReason};
use kestrel_metrics_collector::tail::FileTail;
use kestrel_metrics_collector::{Collector, MetricsSink};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::watch;

use super::{LOG_FILE, STATUS_FILE};
use crate::executor::RunPhase;
use crate::procinfo;

/// How often output is read and an adopted process is checked.
const POLL: Duration = Duration::from_millis(100);

/// A local trial's process as the executor sees it.
#[derive(Debug)]
pub(super) struct Proc {
    /// Process id of the wrapper, also the process group id.
    pub pid: u32,
    phase: watch::Sender<RunPhase>,
    stopped: Mutex<Option<StopReason>>,
    /// The watching task, ended when the executor is dropped (the process lives on).
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Proc {
    pub fn new(pid: u32) -> Arc<Self> {
        Arc::new(Proc {
            pid,
            phase: watch::channel(RunPhase::Running).0,
            stopped: Mutex::new(None),
            task: Mutex::new(None),
        })
    }

    pub fn lost(why: &str) -> Arc<Self> {
        Arc::new(Proc {
            pid: 0,
            phase: watch::channel(RunPhase::Lost(why.to_string())).0,
            stopped: Mutex::new(None),
            task: Mutex::new(None),
        })
    }

    /// Stops watching (the process is left alone).
    pub fn detach(&self) {
        if let Some(t) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            t.abort();
        }
    }

    pub fn phase(&self) -> RunPhase {
        self.phase.borrow().clone()
    }

    fn stopped(&self) -> Option<StopReason> {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records why kestrel stops the trial; false when it has already ended.
    pub fn mark_stopped(&self, why: StopReason) -> bool {
        if !matches!(*self.phase.borrow(), RunPhase::Running) {
            return false;
        }
        let mut s = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        s.get_or_insert(why);
        true
    }

    /// Waits up to `timeout` for the trial to end; true when it did.
    pub async fn wait_exit(&self, timeout: Duration) -> bool {
        let mut rx = self.phase.subscribe();
        let ended = |p: &RunPhase| !matches!(p, RunPhase::Running);
        match tokio::time::timeout(timeout, rx.wait_for(ended)).await {
            Ok(r) => r.is_ok(),
            Err(_) => false,
        }
    }
}

/// Where a trial's metrics are read.
pub(super) struct Source {
    /// The log (StdOut collector) or the File collector's file.
    pub file: PathBuf,
    /// Where this run's output begins in it.
    pub offset: u64,
    /// The trial's parser.
    pub collector: Collector,
}

struct Feeder {
    trial: String,
    collector: Collector,
    sink: Arc<dyn MetricsSink>,
    /// Reports the sink already holds (an adopted trial's output is read again from the
    /// start of its run, and these are not reported twice).
    skip: usize,
}

impl Feeder {
    async fn feed(&mut self, lines: Vec<String>) {
        if lines.is_empty() {
            return;
        }
        let now = Timestamp::now();
        let mut logs: Vec<_> = lines
            .iter()
            .flat_map(|l| self.collector.feed(l, now))
            .collect();
        let skipped = self.skip.min(logs.len());
        logs.drain(..skipped);
        self.skip -= skipped;
        if logs.is_empty() {
            return;
        }
        match self.sink.report(&self.trial, &logs).await {
            Ok(()) => tracing::debug!(trial = %self.trial, reports = logs.len(), "metrics stored"),
            Err(e) => tracing::error!(trial = %self.trial, error = %e, "metrics lost"),
        }
    }
}

/// The exit status the wrapper recorded: `Some(None)` for a program killed by a signal.
fn recorded_status(dir: &std::path::Path) -> Option<Option<i32>> {
    let s: i32 = std::fs::read_to_string(dir.join(STATUS_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // The shell reports death by signal N as 128 + N.
    Some(if (129..=128 + 64).contains(&s) {
        None
    } else {
        Some(s)
    })
}

/// Starts the task watching `proc`: `child` when this process started it, otherwise an
/// adopted process recognised by its `start` time.
pub(super) fn spawn(
    proc: Arc<Proc>,
    trial: String,
    source: Source,
    sink: Arc<dyn MetricsSink>,
    dir: PathBuf,
    mut child: Option<tokio::process::Child>,
    start: u64,
) {
    let watched = proc.clone();
    let task = tokio::spawn(async move {
        let proc = watched;
        let skip = if child.is_some() {
            0
        } else {
            match sink.count(&trial).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(trial = %trial, error = %e, "cannot count stored metrics; reports may repeat");
                    0
                }
            }
        };
        let mut feeder = Feeder {
            trial: trial.clone(),
            collector: source.collector,
            sink,
            skip,
        };
        let mut tail = FileTail::from_offset(source.file, source.offset);
        let waited = loop {
            let exited = match child.as_mut() {
                Some(c) => tokio::select! {
                    r = c.wait() => Some(r.ok()),
                    _ = tokio::time::sleep(POLL) => None,
                },
                None => {
                    if procinfo::alive(proc.pid, start) {
                        tokio::time::sleep(POLL).await;
                        None
                    } else {
                        Some(None)
                    }
                }
            };
            feeder.feed(tail.read_new()).await;
            if let Some(w) = exited {
                break w;
            }
        };
        // Whatever the program left running in its group ends with it.
        if let Ok(pgid) = i32::try_from(proc.pid) {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
        feeder.feed(tail.finish()).await;
        let stopped = proc.stopped();
        let code = match (recorded_status(&dir), waited) {
            (Some(code), _) => Some(code),
            (None, Some(status)) => Some(status.code()),
            (None, None) if stopped.is_some() => Some(None),
            (None, None) => None,
        };
        let phase = match code {
            Some(code) => RunPhase::Exited(RunEnd {
                code,
                stopped,
                log: Some(dir.join(LOG_FILE).display().to_string()),
            }),
            None => RunPhase::Lost(
                "its process ended without recording an exit status while kestrel was away".into(),
            ),
        };
        tracing::info!(trial = %trial, ?phase, "trial ended");
        proc.phase.send_replace(phase);
    });
    *proc.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
}
