//! `kestrel logs EXP [TRIAL]`: a trial's output (its `trial.log`: stdout and stderr), or
//! every trial's under a header; `--follow` prints a running trial's output as it comes
//! until the trial ends. From the local store, or with `--server` from that server.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use kestrel_core::TrialRecord;

use kestrel_proto::manager as pb;

use super::UsageError;
use crate::remote::{self, ServerArgs};
use crate::store::StoreArgs;

/// Arguments of `kestrel logs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Experiment name.
    pub name: String,
    /// Trial name (default: every trial, one after the other).
    pub trial: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    server: ServerArgs,
    /// Keep printing the trial's output until it ends.
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines of each log.
    #[arg(long, value_name = "N")]
    tail: Option<usize>,
}

/// The last `n` lines of `text` (all of it without `n`).
fn last_lines(text: &str, n: Option<usize>) -> &str {
    match n {
        Some(n) => kestrel_core::text::last_lines(text, n),
        None => text,
    }
}

fn write(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

/// Prints a log (its last `tail` lines); returns how many bytes it had.
fn print(path: &Path, tail: Option<usize>) -> anyhow::Result<u64> {
    let mut text = Vec::new();
    match std::fs::File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut text)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    }
    let s = String::from_utf8_lossy(&text);
    write(last_lines(&s, tail).as_bytes())?;
    Ok(text.len() as u64)
}

/// Where to read the output of `t` when kestrel has no log of it yet: a trial running on a
/// cluster, whose log is saved when it ends.
fn cluster_hint(t: &TrialRecord) -> Option<String> {
    if t.state.is_terminal() {
        return None;
    }
    kestrel_controller::executor::cluster_log_hint(&t.name, t.run.as_ref()?)
}

/// Prints the logs `a` asks for from its server.
fn remote_logs(a: &Args) -> anyhow::Result<ExitCode> {
    if a.trial.is_none() && a.follow {
        return Err(UsageError("--follow needs a TRIAL".into()).into());
    }
    let tail = match a.tail {
        Some(0) => return Ok(ExitCode::SUCCESS),
        Some(n) => u32::try_from(n).unwrap_or(u32::MAX),
        None => 0,
    };
    let rt = remote::runtime()?;
    rt.block_on(async {
        let mut c = remote::connect(&a.server).await?;
        let trials: Vec<(String, String)> = match &a.trial {
            Some(t) => vec![(t.clone(), String::new())],
            None => remote::get(&mut c, &a.name)
                .await?
                .1
                .into_iter()
                .map(|t| (t.name, t.state.to_string()))
                .collect(),
        };
        for (trial, state) in trials {
            if a.trial.is_none() {
                out!("==> {trial} ({state}) <==");
            }
            let mut stream = c
                .get_trial_log(pb::TrialLogRequest {
                    experiment: a.name.clone(),
                    trial,
                    tail_lines: tail,
                    follow: a.follow,
                })
                .await
                .map_err(remote::status_error)?
                .into_inner();
            while let Some(chunk) = stream.message().await.map_err(remote::status_error)? {
                write(&chunk.data)?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs the command.
pub fn run(mut a: Args) -> anyhow::Result<ExitCode> {
    crate::source::settle(&a.store, &mut a.server)?;
    if a.server.server.is_some() {
        return remote_logs(&a);
    }
    let (store, dir) = a.store.open_read_only()?;
    let store = super::require(store, &a.name, &dir)?;
    super::require(store.experiment(&a.name)?, &a.name, &dir)?;
    let trials = store.trials(&a.name)?;
    let runs = kestrel_controller::paths::experiment_dir(&dir.join("runs"), &a.name)
        .ok_or_else(|| UsageError(format!("{:?} is not an experiment name", a.name)))?;
    let log = |t: &TrialRecord| -> PathBuf { runs.join(&t.name).join("trial.log") };
    let Some(name) = &a.trial else {
        if a.follow {
            return Err(UsageError("--follow needs a TRIAL".into()).into());
        }
        for t in &trials {
            out!("==> {} ({}) <==", t.name, t.state);
            print(&log(t), a.tail)?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    let Some(t) = trials.iter().find(|t| &t.name == name) else {
        let known: Vec<&str> = trials.iter().map(|t| t.name.as_str()).take(10).collect();
        return Err(UsageError(format!(
            "experiment {:?} has no trial {name:?} (trials: {})",
            a.name,
            known.join(", ")
        ))
        .into());
    };
    let path = log(t);
    let mut offset = print(&path, a.tail)?;
    if offset == 0
        && let Some(hint) = cluster_hint(t)
    {
        eprintln!("{hint}");
    }
    if !a.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        let ended = store.trial(name)?.is_none_or(|t| t.state.is_terminal());
        if let Ok(mut f) = std::fs::File::open(&path) {
            let len = f.metadata()?.len();
            if len < offset {
                offset = 0; // the log was trimmed
            }
            f.seek(SeekFrom::Start(offset))?;
            let mut new = Vec::new();
            f.read_to_end(&mut new)?;
            offset += new.len() as u64;
            write(&new)?;
        }
        if ended {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::{cluster_hint, last_lines};
    use kestrel_core::{RunRecord, TrialRecord, TrialState};

    #[test]
    fn a_running_cluster_trial_without_a_log_points_to_kubectl() {
        let mut t = TrialRecord::created(
            "e",
            "e-1".into(),
            0,
            Default::default(),
            jiff::Timestamp::now(),
        );
        assert_eq!(cluster_hint(&t), None, "not started");
        t.state = TrialState::Running;
        t.run = Some(RunRecord {
            executor: "local".into(),
            data: serde_json::json!({"pid": 7}),
        });
        assert_eq!(
            cluster_hint(&t),
            None,
            "a local trial writes its log as it runs"
        );
        t.run = Some(RunRecord {
            executor: "kubernetes".into(),
            data: serde_json::json!({"namespace": "ns1", "name": "e-1"}),
        });
        let hint = cluster_hint(&t).unwrap_or_default();
        assert!(
            hint.contains("kubectl logs -n ns1 -l katib.kubeflow.org/trial=e-1"),
            "{hint}"
        );
        t.state = TrialState::Succeeded;
        assert_eq!(cluster_hint(&t), None, "its log was saved when it ended");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(last_lines("a\nb\nc\n", Some(2)), "b\nc\n");
        assert_eq!(last_lines("a\nb\nc", Some(2)), "b\nc");
        assert_eq!(last_lines("a\nb\n", Some(5)), "a\nb\n");
        assert_eq!(last_lines("a\nb\n", Some(0)), "");
        assert_eq!(last_lines("a\nb\n", None), "a\nb\n");
    }
}
