//! Runs trials as host processes that outlive kestrel.
//!
//! Each trial's program runs in its own process group (stopping it also stops whatever it
//! started) under a small `sh` wrapper that records the program's exit status in the trial
//! directory. stdout and stderr go straight to `<trial dir>/trial.log`, not through
//! kestrel, so a trial keeps running when kestrel dies (kill -9, a crash): the next
//! kestrel adopts it by the process id and start time stored at launch, goes on reading
//! its metrics (from the log, or the File collector's file) where the store's count of
//! its reports says, and takes its exit status from the recorded file. A trial whose
//! process vanished without a status (the machine restarted) is Lost and re-run.
//!
//! Environment: the parent's, plus the container's `env`, plus `KATIB_TRIAL_NAME`,
//! `KESTREL_TRIAL_NAME`, `KESTREL_EXPERIMENT`, `KESTREL_TRIAL_DIR`, `KESTREL_EXPERIMENT_DIR`,
//! `KESTREL_TRIAL_TOKEN` (the run's secret, for reporting about itself),
//! `KESTREL_DB_MANAGER` (where to report, when kestrel has a DBManager: Push trials), and
//! `PYTHONUNBUFFERED=1` (unless set) so Python trials report metrics as they go.

mod record;
mod supervise;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kestrel_core::experiment::TemplateSource;
use kestrel_core::outcome::StopReason;
use kestrel_core::template::{expand_env_refs, primary_container};
use kestrel_core::{Experiment, RunRecord};
use kestrel_metrics_collector::runtime::terminate_group;
use kestrel_metrics_collector::{Collector, MetricsSink, MetricsSource};

use super::{ExecError, ExecutorConfig, RenderedTrial, RunPhase, TrialExecutor};
use crate::procinfo;
use record::{LocalRun, PID_FILE, RUN_FILE};
use supervise::{Proc, Source};

/// Name of the combined stdout/stderr log in each trial directory.
pub const LOG_FILE: &str = "trial.log";
/// The file the wrapper writes the program's exit status to.
const STATUS_FILE: &str = "exit-status";
/// Notes its process id, runs the program, then records its status. The wrapper outlives
/// a SIGTERM sent to the group (`trap :`), so a program that exits gracefully still has
/// its status recorded.
const WRAPPER: &str = r#"echo $$ > "$KESTREL_TRIAL_DIR/pid"; trap : TERM INT; "$@"; s=$?; echo "$s" > "$KESTREL_TRIAL_DIR/exit-status"; exit "$s""#;

/// What local trials cannot do: come from a ConfigMap (which lives in Kubernetes).
pub fn accepts(exp: &Experiment) -> Result<(), String> {
    if matches!(exp.trial_template.source, TemplateSource::ConfigMap { .. }) {
        return Err("spec.trialTemplate.configMap: local runs need an inline trialSpec (ConfigMaps live in Kubernetes)".into());
    }
    Ok(())
}

/// Executes trials as local processes.
pub struct ProcessExecutor {
    sink: Arc<dyn MetricsSink>,
    grace: Duration,
    runs_dir: PathBuf,
    db_manager: Option<String>,
    procs: Mutex<HashMap<String, Arc<Proc>>>,
}

/// The command line and files of a trial.
struct Command {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    working_dir: PathBuf,
    trial_dir: PathBuf,
    collector: Collector,
    /// The File collector's file; `None` for StdOut (the log is parsed).
    metrics_file: Option<PathBuf>,
    /// The TensorFlowEvent collector's directory and metrics.
    events: Option<(PathBuf, Vec<String>)>,
}

impl ProcessExecutor {
    /// An executor reporting metrics to `cfg.sink`, with trial directories under
    /// `cfg.runs_dir`.
    pub fn new(cfg: ExecutorConfig) -> Self {
        ProcessExecutor {
            sink: cfg.sink,
            grace: cfg.grace,
            runs_dir: cfg.runs_dir,
            db_manager: cfg.db_manager,
            procs: Mutex::new(HashMap::new()),
        }
    }

    fn procs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Proc>>> {
        self.procs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn proc(&self, trial: &str) -> Option<Arc<Proc>> {
        self.procs().get(trial).cloned()
    }

    /// Derives the command line from the primary container.
    fn command(&self, t: &RenderedTrial) -> Result<Command, ExecError> {
        let exp = &t.experiment;
        let trial_dir = self.runs_dir.join(&exp.name).join(&t.trial);
        let c = primary_container(&t.spec, &exp.trial_template.primary_container_name)
            .map_err(|e| ExecError::Invalid(e.to_string()))?;
        let working_dir = c
            .working_dir
            .map(|w| t.base_dir.join(w))
            .unwrap_or_else(|| trial_dir.clone());
        // Kubernetes expands $(VAR) in command and args from the container's env; local
        // trials can also refer to the experiment file's directory and their own.
        let mut vars: BTreeMap<String, String> = c.env.iter().cloned().collect();
        vars.insert(
            "KESTREL_EXPERIMENT_DIR".into(),
            t.base_dir.display().to_string(),
        );
        vars.insert("KESTREL_TRIAL_DIR".into(), trial_dir.display().to_string());
        vars.insert("KESTREL_TRIAL_NAME".into(), t.trial.clone());
        let argv = c
            .argv
            .iter()
            .map(|a| expand_env_refs(a, &|k| vars.get(k).cloned()))
            .collect();
        let mut metrics: Vec<String> = exp.objective.all_metrics().map(str::to_string).collect();
        let mut events = None;
        let metrics_file = match MetricsSource::of(&exp.metrics_collector, &working_dir) {
            Some(MetricsSource::File(f)) => Some(f),
            Some(MetricsSource::Output) => None,
            // Read when the trial ends; its output is only its log.
            Some(MetricsSource::Events(dir)) => {
                events = Some((dir, std::mem::take(&mut metrics)));
                None
            }
            // The trial reports to the DBManager itself: its output is only its log.
            Some(MetricsSource::Pushed) if self.db_manager.is_some() => {
                metrics.clear();
                None
            }
            Some(MetricsSource::Pushed) => {
                return Err(ExecError::Invalid(
                    "spec.metricsCollectorSpec.collector.kind: Push needs a DBManager for the trial to report to, and this kestrel has none".into(),
                ));
            }
            None => {
                return Err(ExecError::Invalid(
                    "spec.metricsCollectorSpec: the local executor collects StdOut, File and Push metrics only".into(),
                ));
            }
        };
        let collector = Collector::new(&exp.metrics_collector, metrics)
            .map_err(|e| ExecError::Invalid(e.to_string()))?;
        Ok(Command {
            argv,
            env: c.env,
            working_dir,
            trial_dir,
            collector,
            metrics_file,
            events,
        })
    }

    fn attach(
        &self,
        trial: &str,
        cmd: Command,
        run: &LocalRun,
        child: Option<tokio::process::Child>,
    ) {
        let proc = Proc::new(run.pid);
        let source = Source {
            file: run.metrics_file.clone(),
            offset: run.offset,
            collector: cmd.collector,
            events: cmd.events,
        };
        supervise::spawn(
            proc.clone(),
            trial.to_string(),
            source,
            self.sink.clone(),
            run.dir.clone(),
            child,
            run.start,
        );
        self.procs().insert(trial.to_string(), proc);
    }
}

impl Drop for ProcessExecutor {
    /// Stops watching; the trials themselves keep running, for a later executor to adopt.
    fn drop(&mut self) {
        for p in self.procs().values() {
            p.detach();
        }
    }
}

fn record(run: &LocalRun) -> RunRecord {
    RunRecord {
        executor: "local".into(),
        data: serde_json::to_value(run).unwrap_or_default(),
    }
}

fn prepare(path: &Path) -> impl Fn(std::io::Error) -> ExecError + '_ {
    move |source| ExecError::Prepare {
        path: path.display().to_string(),
        source,
    }
}

/// Finds `program` as `execvp` would (relative paths against `dir`), so a missing program
/// is a clear launch error rather than the wrapper's exit status 127.
fn resolve(program: &str, dir: &Path, path_var: Option<&str>) -> Result<(), ExecError> {
    let spawn = |kind, msg: &str| ExecError::Spawn {
        program: program.to_string(),
        source: std::io::Error::new(kind, msg.to_string()),
    };
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.is_empty() {
        return Err(spawn(
            std::io::ErrorKind::InvalidInput,
            "empty program name",
        ));
    }
    if program.contains('/') {
        return if executable(&dir.join(program)) {
            Ok(())
        } else {
            Err(spawn(
                std::io::ErrorKind::NotFound,
                "no such executable file",
            ))
        };
    }
    let path = path_var.map_or_else(|| std::env::var("PATH").unwrap_or_default(), str::to_string);
    if path
        .split(':')
        .filter(|d| !d.is_empty())
        .any(|d| executable(&dir.join(d).join(program)))
    {
        Ok(())
    } else {
        Err(spawn(std::io::ErrorKind::NotFound, "not found in PATH"))
    }
}

#[async_trait::async_trait]
impl TrialExecutor for ProcessExecutor {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn launch(&self, t: &RenderedTrial) -> Result<RunRecord, ExecError> {
        let cmd = self.command(t)?;
        let dir = cmd.trial_dir.clone();
        std::fs::create_dir_all(&dir).map_err(prepare(&dir))?;
        // This attempt was started before, but the store never recorded it (kestrel died
        // in between): re-attach to it, whether it still runs or has ended meanwhile.
        if let Some(prev) = record::previous(&dir, t.attempt).await {
            tracing::warn!(trial = %t.trial, pid = prev.pid, "trial was already started; re-attaching");
            self.attach(&t.trial, cmd, &prev, None);
            return Ok(record(&prev));
        }
        if !cmd.working_dir.is_dir() {
            return Err(ExecError::Prepare {
                path: cmd.working_dir.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "working directory does not exist",
                ),
            });
        }
        let program = cmd.argv.first().cloned().unwrap_or_default();
        let path_var = cmd
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str());
        resolve(&program, &cmd.working_dir, path_var)?;
        // A re-run keeps the previous attempt's log beside the new one.
        let log_path = dir.join(LOG_FILE);
        if log_path.exists() {
            let _ = std::fs::rename(&log_path, dir.join(format!("{LOG_FILE}.previous")));
        }
        for stale in [STATUS_FILE, RUN_FILE, PID_FILE] {
            let _ = std::fs::remove_file(dir.join(stale));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(prepare(&log_path))?;
        let err = log.try_clone().map_err(prepare(&log_path))?;
        // The offset is taken before the program starts, so nothing it writes is skipped.
        let (metrics_file, offset) = match &cmd.metrics_file {
            Some(f) => (
                f.clone(),
                std::fs::metadata(f).map(|m| m.len()).unwrap_or(0),
            ),
            None => (log_path.clone(), 0),
        };
        // Recorded before the process starts: a kestrel that dies before the second write
        // still finds this attempt (through the wrapper's pid file).
        let mut run = LocalRun {
            pid: 0,
            start: 0,
            boot: procinfo::boot_id(),
            dir: dir.clone(),
            metrics_file,
            offset,
            attempt: t.attempt,
        };
        record::write(&run).map_err(prepare(&dir))?;
        let mut c = tokio::process::Command::new("/bin/sh");
        c.arg("-c")
            .arg(WRAPPER)
            .arg("kestrel-trial")
            .args(&cmd.argv)
            .current_dir(&cmd.working_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .process_group(0);
        if std::env::var_os("PYTHONUNBUFFERED").is_none() {
            c.env("PYTHONUNBUFFERED", "1");
        }
        c.envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .env("KATIB_TRIAL_NAME", &t.trial)
            .env("KESTREL_TRIAL_NAME", &t.trial)
            .env("KESTREL_EXPERIMENT", &t.experiment.name)
            .env("KESTREL_TRIAL_DIR", &dir)
            .env("KESTREL_EXPERIMENT_DIR", &t.base_dir);
        if let Some(secret) = &t.secret {
            c.env(crate::credentials::ENV, secret);
        }
        if let Some(db) = &self.db_manager {
            c.env("KESTREL_DB_MANAGER", db);
        }
        let child = c.spawn().map_err(|source| ExecError::Spawn {
            program: program.clone(),
            source,
        })?;
        let pid = child.id().unwrap_or(0);
        run.pid = pid;
        run.start = procinfo::start_ticks(pid).unwrap_or(0);
        if let Err(e) = record::write(&run) {
            tracing::warn!(trial = %t.trial, error = %e, "cannot write the run record");
        }
        tracing::info!(trial = %t.trial, pid, argv = ?cmd.argv, "trial started");
        self.attach(&t.trial, cmd, &run, Some(child));
        Ok(record(&run))
    }

    async fn adopt(&self, t: &RenderedTrial, rec: &RunRecord) -> Result<(), ExecError> {
        if rec.executor != self.kind() {
            return Err(ExecError::Record(format!(
                "trial {} was launched by the {} executor, not local",
                t.trial, rec.executor
            )));
        }
        let run: LocalRun = serde_json::from_value(rec.data.clone())
            .map_err(|e| ExecError::Record(format!("trial {}: {e}", t.trial)))?;
        if run.boot != procinfo::boot_id() {
            self.procs().insert(
                t.trial.clone(),
                Proc::lost("the machine restarted while the trial ran"),
            );
            return Ok(());
        }
        let cmd = self.command(t)?;
        tracing::info!(trial = %t.trial, pid = run.pid, alive = procinfo::alive(run.pid, run.start), "re-attaching trial");
        self.attach(&t.trial, cmd, &run, None);
        Ok(())
    }

    async fn status(&self, trial: &str) -> Result<Option<RunPhase>, ExecError> {
        Ok(self.proc(trial).map(|p| p.phase()))
    }

    async fn stop(&self, trial: &str, why: StopReason) -> Result<(), ExecError> {
        let Some(p) = self.proc(trial) else {
            return Ok(());
        };
        if !p.mark_stopped(why) {
            return Ok(()); // already exited
        }
        terminate_group(p.pid, self.grace, async {
            p.wait_exit(Duration::MAX).await;
        })
        .await;
        Ok(())
    }

    fn forget(&self, trial: &str) {
        if let Some(p) = self.procs().remove(trial) {
            p.detach();
        }
    }
}

#[cfg(test)]
mod tests;
