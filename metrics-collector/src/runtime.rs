//! The moving parts of collecting a running program's metrics, shared by the local
//! executor and `kestrel collect`: following a growing file, pumping a pipe (passing the
//! bytes through and splitting lines), batching reports so each reaches the sink within
//! one interval of being read, and stopping a process group with a grace period.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kestrel_core::MetricLog;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::lines::LineSplitter;
use crate::tail::FileTail;
use crate::{MetricsSink, SinkError};

/// Sends the lines appended to `tail`'s file every `every`, and everything left (with a
/// last line without newline) once `done` turns true.
pub fn spawn_follow(
    mut tail: FileTail,
    every: Duration,
    mut done: watch::Receiver<bool>,
    lines: mpsc::UnboundedSender<String>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let finished = *done.borrow_and_update();
            let batch = if finished {
                tail.finish()
            } else {
                tail.read_new()
            };
            for l in batch {
                let _ = lines.send(l);
            }
            if finished {
                return;
            }
            let _ = tokio::time::timeout(every, done.changed()).await;
        }
    })
}

/// Copies `r` to `w` (when given) and sends its complete lines to `lines` (when given),
/// the last one even without a newline, until end of file.
pub async fn pump(
    mut r: impl AsyncRead + Unpin,
    mut w: Option<impl AsyncWrite + Unpin>,
    lines: Option<mpsc::UnboundedSender<String>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut split = LineSplitter::new();
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(w) = w.as_mut() {
                    let _ = w.write_all(&buf[..n]).await;
                    let _ = w.flush().await;
                }
                if let Some(tx) = &lines {
                    for l in split.push(&buf[..n]) {
                        let _ = tx.send(l);
                    }
                }
            }
        }
    }
    if let (Some(tx), Some(last)) = (&lines, split.finish()) {
        let _ = tx.send(last);
    }
}

/// SIGTERM to process group `pgid`, then SIGKILL when `exited` has not completed within
/// `grace`; returns once `exited` completes.
pub async fn terminate_group(pgid: u32, grace: Duration, exited: impl Future<Output = ()>) {
    let Ok(raw) = i32::try_from(pgid) else {
        return exited.await;
    };
    if raw <= 0 {
        return exited.await;
    }
    let pgid = Pid::from_raw(raw);
    let _ = killpg(pgid, Signal::SIGTERM);
    let mut exited = std::pin::pin!(exited);
    if tokio::time::timeout(grace, &mut exited).await.is_err() {
        let _ = killpg(pgid, Signal::SIGKILL);
        exited.await;
    }
}

/// Reports of one trial waiting to be sent: each is sent within `interval` of being
/// pushed, together with whatever else came in meanwhile. A failed send keeps them for
/// the next attempt.
pub struct Batch {
    sink: Arc<dyn MetricsSink>,
    trial: String,
    interval: Duration,
    pending: Vec<MetricLog>,
    due: Option<Instant>,
}

impl Batch {
    /// An empty batch for `trial`.
    pub fn new(sink: Arc<dyn MetricsSink>, trial: &str, interval: Duration) -> Self {
        Batch {
            sink,
            trial: trial.to_string(),
            interval,
            pending: Vec::new(),
            due: None,
        }
    }

    /// Adds a report.
    pub fn push(&mut self, log: MetricLog) {
        self.due
            .get_or_insert_with(|| Instant::now() + self.interval);
        self.pending.push(log);
    }

    /// Reports waiting.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Completes when the oldest waiting report is due (never when none waits).
    pub async fn due(&self) {
        match self.due {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }

    /// Sends what waits; on failure it stays, to be retried one interval later.
    pub async fn flush(&mut self) -> Result<(), SinkError> {
        if self.pending.is_empty() {
            self.due = None;
            return Ok(());
        }
        match self.sink.report(&self.trial, &self.pending).await {
            Ok(()) => {
                tracing::debug!(trial = %self.trial, reports = self.pending.len(), "reported");
                self.pending.clear();
                self.due = None;
                Ok(())
            }
            Err(e) => {
                self.due = Some(Instant::now() + self.interval);
                Err(e)
            }
        }
    }

    /// The last flush: retried with backoff (6 attempts over about 8 s), then an error
    /// naming how much was lost.
    pub async fn finish(&mut self) -> Result<(), SinkError> {
        let mut delay = Duration::from_millis(250);
        let mut attempt = 1;
        loop {
            match self.flush().await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < 6 => {
                    tracing::warn!(error = %e, attempt, "report failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(SinkError {
                        trial: self.trial.clone(),
                        message: format!(
                            "{} reports not delivered: {}",
                            self.pending.len(),
                            e.message
                        ),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records each report call with the (paused) time it came; fails the first `fail`.
    struct Recorder {
        calls: Mutex<Vec<(Duration, usize)>>,
        start: Instant,
        fail: Mutex<usize>,
    }

    #[async_trait::async_trait]
    impl MetricsSink for Recorder {
        async fn report(&self, trial: &str, logs: &[MetricLog]) -> Result<(), SinkError> {
            let mut fail = self.fail.lock().unwrap_or_else(|p| p.into_inner());
            if *fail > 0 {
                *fail -= 1;
                return Err(SinkError {
                    trial: trial.into(),
                    message: "unavailable".into(),
                });
            }
            self.calls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((self.start.elapsed(), logs.len()));
            Ok(())
        }
        async fn count(&self, _: &str) -> Result<usize, SinkError> {
            Ok(0)
        }
    }

    fn log(v: &str) -> MetricLog {
        MetricLog {
            time: jiff::Timestamp::UNIX_EPOCH,
            name: "loss".into(),
            value: v.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn reports_go_out_within_one_interval_batched_and_retried() {
        let rec = Arc::new(Recorder {
            calls: Mutex::new(vec![]),
            start: Instant::now(),
            fail: Mutex::new(1),
        });
        let mut b = Batch::new(rec.clone(), "t", Duration::from_millis(100));
        b.push(log("1"));
        tokio::time::sleep(Duration::from_millis(60)).await;
        b.push(log("2"));
        b.due().await; // 100 ms after the first push
        assert!(b.flush().await.is_err()); // the sink is down once: kept
        assert_eq!(b.pending(), 2);
        b.due().await;
        b.flush().await.unwrap();
        b.push(log("3"));
        b.finish().await.unwrap();
        let calls = rec.calls.lock().unwrap().clone();
        assert_eq!(
            calls,
            [
                (Duration::from_millis(200), 2),
                (Duration::from_millis(200), 1)
            ]
        );
        assert_eq!(b.pending(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sink_that_stays_down_is_an_error_naming_the_loss() {
        let rec = Arc::new(Recorder {
            calls: Mutex::new(vec![]),
            start: Instant::now(),
            fail: Mutex::new(usize::MAX),
        });
        let mut b = Batch::new(rec, "t", Duration::from_millis(100));
        b.push(log("1"));
        let e = b.finish().await.unwrap_err();
        assert!(e.message.starts_with("1 reports not delivered"), "{e}");
    }

    #[tokio::test]
    async fn pump_passes_bytes_through_and_splits_lines() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut out = Vec::new();
        pump(&b"a=1\nb=2\nc"[..], Some(&mut out), Some(tx)).await;
        assert_eq!(out, b"a=1\nb=2\nc");
        let mut lines = vec![];
        while let Ok(l) = rx.try_recv() {
            lines.push(l);
        }
        assert_eq!(lines, ["a=1", "b=2", "c"]);
    }
}
