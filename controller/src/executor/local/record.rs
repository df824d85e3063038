//! What a local trial's launch leaves behind so that it is never started twice: the run
//! record (`run.json`, also stored with the trial), written once *before* the process
//! starts (without a process id) and again after; and the process id the wrapper notes
//! first thing (`pid`). A kestrel that died anywhere in between finds the attempt again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::procinfo;

/// The launch record in the trial directory.
pub(super) const RUN_FILE: &str = "run.json";
/// The file the wrapper writes its process id to before it runs the program.
pub(super) const PID_FILE: &str = "pid";

/// What the store keeps of a local trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct LocalRun {
    /// The wrapper's process id (also the process group id); 0 before it started.
    pub pid: u32,
    /// Start time of the process (clock ticks since boot).
    pub start: u64,
    pub boot: Option<String>,
    /// The trial directory.
    pub dir: PathBuf,
    /// Where metrics are read: the log, or the File collector's file.
    pub metrics_file: PathBuf,
    /// Offset in `metrics_file` where this run's output begins.
    pub offset: u64,
    /// The trial's attempt this run is.
    #[serde(default)]
    pub attempt: u32,
}

/// At most `limit` bytes of a small file in the trial directory: the trial can write
/// there, so nothing it leaves is read without a bound.
pub(super) fn read_small(path: &Path, limit: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(limit)
        .read_to_end(&mut buf)
        .ok()?;
    Some(buf)
}

/// Writes the record to the trial directory.
pub(super) fn write(run: &LocalRun) -> std::io::Result<()> {
    let tmp = run.dir.join(format!("{RUN_FILE}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec(run).unwrap_or_default())?;
    std::fs::rename(tmp, run.dir.join(RUN_FILE))
}

/// The run of `attempt` an earlier launch started in `dir` (this boot), if any. When the
/// earlier kestrel died before learning the process id, the wrapper's `pid` file tells
/// it (waited for briefly, as the wrapper may be just starting).
pub(super) async fn previous(dir: &Path, attempt: u32) -> Option<LocalRun> {
    let mut run: LocalRun =
        serde_json::from_slice(&read_small(&dir.join(RUN_FILE), 64 << 10)?).ok()?;
    if run.attempt != attempt || run.boot != procinfo::boot_id() {
        return None;
    }
    if run.pid != 0 {
        return Some(run);
    }
    for _ in 0..25 {
        let pid = read_small(&dir.join(PID_FILE), 64)
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.trim().parse::<u32>().ok());
        if let Some(pid) = pid {
            run.pid = pid;
            // 0 when it has ended already: it is then finished from its files.
            run.start = procinfo::start_ticks(pid).unwrap_or(0);
            return Some(run);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_a_trial_can_write_are_read_within_a_bound() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join(PID_FILE);
        std::fs::write(&big, vec![b'7'; 1 << 20]).unwrap();
        assert_eq!(read_small(&big, 64).unwrap().len(), 64);
        // A pid file that is no pid (the trial overwrote it) finds nothing.
        std::fs::write(dir.path().join(RUN_FILE), vec![b' '; 1 << 20]).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        assert_eq!(rt.block_on(previous(dir.path(), 0)), None);
    }
}
