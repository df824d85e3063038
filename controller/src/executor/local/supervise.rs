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

/// Size past which the start of a trial's log is released.
const LOG_CAP: u64 = 256 << 20;
/// How much of the end of a log over the cap is kept.
const LOG_KEEP: u64 = 64 << 20;

/// Keeps a trial's log from filling the disk: once it passes a cap, the part already read
/// (all but the last `keep` bytes) is released with a hole punch, so the file keeps its
/// size and offsets (readers and the trial's appends are unaffected) while the disk holds
/// only its end; the released start reads as zeros.
pub(super) struct LogBound {
    path: PathBuf,
    cap: u64,
    keep: u64,
    released: u64,
}

impl LogBound {
    pub fn new(path: PathBuf) -> Self {
        Self::with(path, LOG_CAP, LOG_KEEP)
    }

    fn with(path: PathBuf, cap: u64, keep: u64) -> Self {
        LogBound {
            path,
            cap,
            keep,
            released: 0,
        }
    }

    /// Releases the start of the log if it is over the cap; never past `read` (what the
    /// metrics reader has consumed, when the log is its source).
    pub fn trim(&mut self, read: Option<u64>) {
        let Ok(f) = std::fs::OpenOptions::new().write(true).open(&self.path) else {
            return;
        };
        let Ok(size) = f.metadata().map(|m| m.len()) else {
            return;
        };
        if size <= self.cap {
            return;
        }
        let upto = read.map_or(size - self.keep, |r| r.min(size - self.keep)) & !4095;
        if upto <= self.released {
            return;
        }
        use nix::fcntl::{FallocateFlags, fallocate};
        let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        let (from, len) = (self.released as i64, (upto - self.released) as i64);
        match fallocate(&f, flags, from, len) {
            Ok(()) => {
                if self.released == 0 {
                    tracing::warn!(log = %self.path.display(), "trial log over {} MiB: its start is released (reads as zeros)", self.cap >> 20);
                }
                self.released = upto;
            }
            Err(e) => {
                tracing::warn!(log = %self.path.display(), error = %e, "cannot release the start of the trial log");
                // Not supported here: stop trying.
                self.released = u64::MAX;
            }
        }
    }
}

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
    /// tfevents directory and metrics, read when the trial ends (TensorFlowEvent).
    pub events: Option<(PathBuf, Vec<String>)>,
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
        let logs: Vec<_> = lines
            .iter()
            .flat_map(|l| self.collector.feed(l, now))
            .collect();
        self.report(logs).await;
    }

    /// Stores `logs`, past those the sink already holds.
    async fn report(&mut self, mut logs: Vec<kestrel_core::MetricLog>) {
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
    let bytes = super::record::read_small(&dir.join(STATUS_FILE), 64)?;
    let s: i32 = String::from_utf8(bytes).ok()?.trim().parse().ok()?;
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
        let events = source.events;
        let mut feeder = Feeder {
            trial: trial.clone(),
            collector: source.collector,
            sink,
            skip,
        };
        let log = dir.join(LOG_FILE);
        let log_is_source = source.file == log;
        let mut bound = LogBound::new(log);
        let mut tail = FileTail::from_offset(source.file, source.offset);
        let mut polls = 0u32;
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
            polls = polls.wrapping_add(1);
            if polls.is_multiple_of(10) {
                bound.trim(log_is_source.then(|| tail.offset()));
            }
        };
        // Whatever the program left running in its group ends with it.
        if let Ok(pgid) = i32::try_from(proc.pid) {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
        feeder.feed(tail.finish()).await;
        if let Some((dir, metrics)) = &events {
            let (logs, warnings) = kestrel_metrics_collector::tfevent::read_dir(dir, metrics);
            for w in warnings {
                tracing::warn!(trial = %trial, warning = %w, "tfevents file not read to its end");
            }
            feeder.report(logs).await;
        }
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
                detail: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_log_over_its_cap_keeps_its_size_and_end_but_releases_what_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trial.log");
        let mut f = std::fs::File::create(&path).unwrap();
        let line = b"loss=0.5 and some progress output........................\n";
        for _ in 0..(256 * 1024 / line.len() + 1) {
            f.write_all(line).unwrap();
        }
        f.flush().unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        let mut bound = LogBound::with(path.clone(), 64 << 10, 16 << 10);
        // Only what the reader has consumed may go.
        bound.trim(Some(8192));
        if bound.released == u64::MAX {
            eprintln!("skipped: this file system cannot punch holes");
            return;
        }
        assert_eq!(bound.released, 8192);
        bound.trim(None);
        assert_eq!(bound.released, (size - (16 << 10)) & !4095);
        let text = std::fs::read(&path).unwrap();
        assert_eq!(
            text.len() as u64,
            size,
            "the size (and every offset) is kept"
        );
        assert!(text[..8192].iter().all(|b| *b == 0));
        assert!(text.ends_with(line));
        use std::os::unix::fs::MetadataExt;
        let on_disk = std::fs::metadata(&path).unwrap().blocks() * 512;
        assert!(
            on_disk < size / 2,
            "{on_disk} of {size} bytes still on disk"
        );
    }
}
