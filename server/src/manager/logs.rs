//! `GetTrialLog`: a trial's log file streamed to the client in chunks, from the last lines
//! asked for, then (with `follow`) as it grows until the trial ends. The file is never
//! read whole into memory: the tail is found by reading backwards in blocks.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kestrel_proto::manager as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::{Inner, until_true, valid_name};
use crate::katib::store_status;
use kestrel_suggestion::grpc::blocking;

/// Bytes per streamed chunk.
const CHUNK: usize = 64 << 10;
/// Most lines `tail_lines` may ask for.
pub const MAX_TAIL_LINES: u32 = 1_000_000;
/// How often a followed log is read again.
const POLL: Duration = Duration::from_millis(200);

/// The offset from which `file` holds its last `n` lines (0: all of it).
pub fn tail_offset(file: &mut std::fs::File, n: u32) -> std::io::Result<u64> {
    if n == 0 {
        return Ok(0);
    }
    let len = file.metadata()?.len();
    let mut end = len;
    let mut newlines = 0u32;
    let mut buf = vec![0u8; CHUNK];
    // A final newline ends the last line rather than starting another.
    let mut skip_last = true;
    while end > 0 {
        let start = end.saturating_sub(CHUNK as u64);
        let size = usize::try_from(end - start).unwrap_or(CHUNK);
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..size])?;
        for i in (0..size).rev() {
            if buf[i] != b'\n' {
                skip_last = false;
                continue;
            }
            if skip_last {
                skip_last = false;
                continue;
            }
            newlines += 1;
            if newlines == n {
                return Ok(start + i as u64 + 1);
            }
        }
        end = start;
    }
    Ok(0)
}

/// Reads from `offset` to the end of `path` in chunks sent to `tx`; the new offset, or
/// `None` when the client went away.
async fn send_from(
    path: &Path,
    mut offset: u64,
    tx: &mpsc::Sender<Result<pb::TrialLogChunk, Status>>,
) -> Result<Option<u64>, Status> {
    loop {
        let p = path.to_path_buf();
        let (from, chunk) = blocking(move || -> Result<(u64, Vec<u8>), Status> {
            let mut f = match std::fs::File::open(&p) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok((offset, Vec::new()));
                }
                Err(e) => return Err(Status::internal(format!("reading the log: {e}"))),
            };
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            // A log that shrank was replaced (the trial re-ran): start again.
            let from = if len < offset { 0 } else { offset };
            f.seek(SeekFrom::Start(from))
                .map_err(|e| Status::internal(format!("reading the log: {e}")))?;
            let mut buf = Vec::with_capacity(CHUNK);
            (&mut f)
                .take(CHUNK as u64)
                .read_to_end(&mut buf)
                .map_err(|e| Status::internal(format!("reading the log: {e}")))?;
            Ok((from, buf))
        })
        .await?;
        if chunk.is_empty() {
            return Ok(Some(from));
        }
        offset = from + chunk.len() as u64;
        if tx
            .send(Ok(pb::TrialLogChunk { data: chunk }))
            .await
            .is_err()
        {
            return Ok(None);
        }
    }
}

/// Starts streaming the log `req` asks for.
pub async fn stream(
    inner: Arc<Inner>,
    req: pb::TrialLogRequest,
) -> Result<ReceiverStream<Result<pb::TrialLogChunk, Status>>, Status> {
    valid_name(&req.experiment)?;
    if req.trial.is_empty() || req.trial.len() > 253 {
        return Err(Status::invalid_argument("trial: 1 to 253 characters"));
    }
    if req.tail_lines > MAX_TAIL_LINES {
        return Err(Status::invalid_argument(format!(
            "tail_lines {} (at most {MAX_TAIL_LINES})",
            req.tail_lines
        )));
    }
    let store = inner.store.clone();
    let (exp, name) = (req.experiment.clone(), req.trial.clone());
    let trial = blocking(move || store.trial(&name).map_err(|e| store_status(&e)))
        .await?
        .filter(|t| t.experiment == exp)
        .ok_or_else(|| {
            Status::not_found(format!(
                "experiment {} has no trial {}",
                req.experiment, req.trial
            ))
        })?;
    // The path comes from the stored trial, never from the request's text.
    let path: PathBuf =
        kestrel_controller::paths::experiment_dir(&inner.cfg.runs_dir, &trial.experiment)
            .ok_or_else(|| Status::invalid_argument("experiment: not a valid name"))?
            .join(&trial.name)
            .join("trial.log");
    if let Some(hint) = trial
        .run
        .as_ref()
        .and_then(|r| kestrel_controller::executor::cluster_log_hint(&trial.name, r))
        && !path.exists()
    {
        return Err(Status::failed_precondition(hint));
    }
    let p = path.clone();
    let tail = req.tail_lines;
    let start = blocking(move || -> Result<u64, Status> {
        match std::fs::File::open(&p) {
            Ok(mut f) => tail_offset(&mut f, tail)
                .map_err(|e| Status::internal(format!("reading the log: {e}"))),
            Err(_) => Ok(0),
        }
    })
    .await?;
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut halt = inner.halt.subscribe();
        let mut offset = start;
        loop {
            match send_from(&path, offset, &tx).await {
                Ok(Some(o)) => offset = o,
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
            if !req.follow {
                return;
            }
            let (store, name) = (inner.store.clone(), trial.name.clone());
            let ended = blocking(move || store.trial(&name).map_err(|e| store_status(&e)))
                .await
                .map(|t| t.is_none_or(|t| t.state.is_terminal()))
                .unwrap_or(true);
            if ended {
                // What it wrote before it ended, then the end of the stream.
                let _ = send_from(&path, offset, &tx).await;
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = tx.closed() => return,
                () = until_true(&mut halt) => return,
            }
        }
    });
    Ok(ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn offset_of(text: &str, n: u32) -> u64 {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        tail_offset(&mut f, n).unwrap()
    }

    #[test]
    fn the_tail_starts_after_the_right_newline() {
        assert_eq!(offset_of("a\nb\nc\n", 2), 2);
        assert_eq!(offset_of("a\nb\nc", 2), 2);
        assert_eq!(offset_of("a\nb\nc\n", 1), 4);
        assert_eq!(offset_of("a\nb\n", 5), 0);
        assert_eq!(offset_of("a\nb\n", 0), 0);
        assert_eq!(offset_of("", 3), 0);
        // Across block boundaries: 200,000 lines of 9 bytes.
        let big: String = (0..200_000).map(|i| format!("{i:08}\n")).collect();
        assert_eq!(offset_of(&big, 3), (big.len() - 27) as u64);
    }
}
