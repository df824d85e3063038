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
        serde_json::from_slice(&std::fs::read(dir.join(RUN_FILE)).ok()?).ok()?;
    if run.attempt != attempt || run.boot != procinfo::boot_id() {
        return None;
    }
    if run.pid != 0 {
        return Some(run);
    }
    for _ in 0..25 {
        let pid = std::fs::read_to_string(dir.join(PID_FILE))
            .ok()
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
