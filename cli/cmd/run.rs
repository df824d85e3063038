//! `kestrel run FILE`: validate, store, and run an experiment on this machine with a
//! progress bar, then print the best trials. Running a file whose experiment is stored
//! but unfinished (kestrel was killed) resumes it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use jiff::Timestamp;
use kestrel_controller::executor::{DEFAULT_EXECUTOR, ExecutorConfig};
use kestrel_controller::sink::StoreSink;
use kestrel_controller::{ControllerError, Halt, Options, Progress, Reconciler};
use kestrel_core::experiment::CollectorKind;
use kestrel_core::status::reason;
use kestrel_core::{ExperimentRecord, ExperimentState};

use super::{Format, UsageError};
use crate::output;
use crate::store::StoreArgs;

/// Arguments of `kestrel run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Katib Experiment YAML file.
    pub file: PathBuf,
    /// Seed of the search (default: the algorithm's random_state, else random; the seed
    /// used is stored with the experiment).
    #[arg(long)]
    seed: Option<u64>,
    /// Store the experiment under this name instead of metadata.name.
    #[arg(long)]
    name: Option<String>,
    /// Learn from another stored experiment's finished trials (same objective and
    /// parameters; tpe, multivariate-tpe, bayesianoptimization or auto). They guide the
    /// search and do not count against maxTrialCount.
    #[arg(long, value_name = "EXPERIMENT")]
    warm_start: Option<String>,
    #[command(flatten)]
    opts: RunOptions,
}

/// How an experiment runs here (shared by `run` and `resume`).
#[derive(Debug, clap::Args)]
pub struct RunOptions {
    #[command(flatten)]
    store: StoreArgs,
    /// Output of the final result.
    #[arg(short, long, value_enum, default_value_t)]
    output: Format,
    /// Seconds a stopped trial gets between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    grace: f64,
    /// Where trials run (local: processes on this machine; kubernetes: objects in the
    /// cluster of the kubeconfig, KUBECONFIG or the pod's service account).
    #[arg(long, default_value = DEFAULT_EXECUTOR, value_name = "NAME")]
    executor: String,
    #[command(flatten)]
    kube: super::KubeArgs,
    /// With --executor kubernetes: where the DBManager the trials report to listens
    /// (default: every interface, the port of --db-manager-address).
    #[arg(long, value_name = "ADDR")]
    db_manager_listen: Option<String>,
    /// Reports of Push trials: credential (each trial's KESTREL_TRIAL_TOKEN) or open (none
    /// needed while the trial runs, as Katib's SDK `report_metrics` sends none).
    #[arg(long, value_enum, default_value_t)]
    push_auth: super::PushAuth,
}

impl RunOptions {
    /// The store these options name.
    pub fn store(&self) -> &StoreArgs {
        &self.store
    }
}

/// What to run: a validated experiment with its YAML, where its relative paths resolve,
/// and how messages name where it came from (a file, or a stored experiment).
#[derive(Debug)]
pub struct Plan {
    /// The experiment.
    pub exp: kestrel_core::Experiment,
    /// Its YAML, stored verbatim.
    pub source: String,
    /// The directory relative paths in its trial command resolve against.
    pub base_dir: PathBuf,
    /// Where it came from, for messages (`examples/x.yaml`, `experiment x`).
    pub origin: String,
    /// `--seed`, for a new experiment.
    pub seed: Option<u64>,
    /// `--warm-start`, for a new experiment.
    pub warm_start: Option<String>,
}

/// Runs the experiment.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let (mut exp, source) = super::load_experiment(&a.file)?;
    if let Some(n) = &a.name {
        kestrel_core::validate::experiment_name(n)
            .map_err(|m| UsageError(format!("--name: {m}")))?;
        exp.name = n.clone();
    }
    let base_dir = a
        .file
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let base_dir = base_dir
        .canonicalize()
        .with_context(|| format!("resolving {}", base_dir.display()))?;
    let plan = Plan {
        exp,
        source,
        base_dir,
        origin: a.file.display().to_string(),
        seed: a.seed,
        warm_start: a.warm_start.clone(),
    };
    execute(&a.opts, plan)
}

/// Runs `plan` to its end: a new experiment, an unfinished one resumed, or a finished one
/// continued with a larger budget.
pub fn execute(a: &RunOptions, plan: Plan) -> anyhow::Result<ExitCode> {
    let Plan {
        exp,
        source,
        base_dir,
        origin,
        seed,
        warm_start,
    } = plan;
    let grace = super::seconds("--grace", a.grace)?;
    super::check_executor(&a.executor)?;
    kestrel_controller::reconciler::preflight(&exp, &a.executor)
        .map_err(|e| UsageError(format!("{origin}: {e}")))?;
    let kubernetes = a.kube.options(&a.executor)?;
    let db_manager_listen = db_manager_listen(a)?;
    let (store, dir) = a.store.open()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    // Trials that report themselves (Push; all trials on a cluster) need a DBManager.
    let pushed = matches!(exp.metrics_collector.kind, CollectorKind::Push);
    let db_listen = match db_manager_listen {
        Some(addr) => Some(addr),
        None if pushed => Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        None => None,
    };
    let db_listener = match db_listen {
        Some(addr) => Some(runtime.block_on(bind_db_manager(addr))?),
        None => None,
    };
    let executor = kestrel_controller::executor::build(
        &a.executor,
        ExecutorConfig {
            sink: Arc::new(StoreSink(store.clone())),
            grace,
            runs_dir: dir.join("runs"),
            kubernetes,
            db_manager: db_listener.as_ref().map(|(_, addr)| addr.to_string()),
        },
    )
    .map_err(|e| UsageError(format!("--executor: {e}")))?;
    // Nothing is stored before the executor can run trials and their DBManager listens.
    runtime
        .block_on(executor.ready())
        .map_err(|e| UsageError(format!("--executor {}: {e}", a.executor)))?;
    // A template kept in the cluster (trialTemplate.configMap) is read once, now.
    let (exp, source) = runtime
        .block_on(kestrel_controller::executor::inline_template(
            executor.as_ref(),
            exp,
            source,
        ))
        .map_err(|e| UsageError(format!("{origin}: {e}")))?;
    let name = exp.name.clone();
    let existing = store.experiment(&name)?;
    let refuse = |msg: String| Err(UsageError(msg).into());
    // A stored experiment runs on: unfinished as it is, or with a larger budget (Katib's
    // way to continue one: raise maxTrialCount), keeping its trials.
    let mut continued = None;
    if let Some(old) = &existing {
        let counts = kestrel_core::TrialCounts::of(&store.trials(&name)?);
        match kestrel_controller::resume::continued(old, &exp, &source, &counts) {
            Ok(None) if old.status.state.is_terminal() => {
                return refuse(format!(
                    "experiment {name:?} already exists in {} ({}); continue it with `kestrel resume {name} --max-trials N` (or raise maxTrialCount in the file), run it under another name with --name, or remove it with `kestrel delete {name}`",
                    dir.display(),
                    old.status.state
                ));
            }
            Ok(next) => continued = next,
            Err(why) => {
                return refuse(format!(
                    "{why} (stored in {}; use --name for a new experiment)",
                    dir.display()
                ));
            }
        }
    }
    let warm_start = match warm_start {
        None => None,
        Some(_) if existing.is_some() => {
            return refuse(format!(
                "--warm-start is for a new experiment; {name:?} is already stored"
            ));
        }
        Some(other) => {
            let Some(from) = store.experiment(&other)? else {
                return refuse(format!(
                    "--warm-start {other}: no experiment of that name in {}",
                    dir.display()
                ));
            };
            let trials = store.trials(&other)?;
            let n =
                kestrel_suggestion::warm_start_check(&exp.problem(), &from.spec.problem(), &trials)
                    .map_err(|why| UsageError(format!("--warm-start {other}: {why}")))?;
            eprintln!("warm start: the algorithm learns from {n} trials of {other}");
            Some(other)
        }
    };
    // One process drives an experiment: a second run of a running one is refused.
    let lease = match kestrel_controller::lease::acquire(&store, &name, "kestrel run") {
        Err(e @ ControllerError::Held { .. }) => {
            return refuse(format!("{e}; wait for it to end or stop it first"));
        }
        other => other?,
    };
    // Nothing is stored before the trials' DBManager listens.
    let db_manager = db_listener.map(|(listener, _)| {
        let _guard = runtime.enter();
        start_db_manager(
            listener,
            store.clone(),
            a.push_auth == super::PushAuth::Open,
        )
    });
    match (existing, continued) {
        (Some(old), Some(rec)) => {
            store.replace_experiment(&rec)?;
            eprintln!(
                "continuing experiment {name} ({}): its trials are kept",
                old.status.state
            );
        }
        (Some(_), None) => eprintln!("resuming unfinished experiment {name}"),
        (None, _) => {
            let seed = seed
                .or_else(|| kestrel_algorithms::registry::random_state(&exp.algorithm))
                .unwrap_or_else(rand::random);
            let mut rec = ExperimentRecord::new(
                exp.clone(),
                source,
                seed,
                Some(base_dir.clone()),
                Timestamp::now(),
            );
            rec.warm_start = warm_start;
            store.create_experiment(&rec)?;
        }
    }
    let reconciler = Reconciler::new(
        store.clone(),
        executor,
        Options {
            tick: Duration::from_millis(200),
        },
    );
    let bar = progress_bar(exp.max_trial_count);
    let runs = dir.join("runs");
    let status = runtime.block_on(kestrel_controller::drive(
        &reconciler,
        &name,
        lease,
        async {
            shutdown_signal().await;
            Halt::Stop
        },
        |p: &Progress<'_>| {
            bar.set_position(u64::from(p.counts.completed()));
            // Until some trial has a result, show what a running one prints (a trainer
            // being built, a dataset downloading): a long first trial is never silent.
            let activity = if p.trials.iter().any(|t| t.objective.is_some()) {
                None
            } else {
                p.trials
                    .iter()
                    .filter(|t| t.state == kestrel_core::TrialState::Running)
                    .find_map(|t| {
                        let log = runs.join(&t.experiment).join(&t.name).join("trial.log");
                        output::last_line(&log).map(|l| format!(" | {}: {l}", t.name))
                    })
            };
            bar.set_message(format!(
                "running {} | failed {} | best {}{}",
                p.counts.running,
                p.counts.failures(),
                output::best_line(p.experiment, p.trials),
                activity.unwrap_or_default()
            ));
        },
    ))?;
    bar.finish_and_clear();
    if let Some((stop, task)) = db_manager {
        let _ = stop.send(());
        match runtime.block_on(task) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the DBManager failed"),
            Err(e) => tracing::warn!(error = %e, "the DBManager task failed"),
        }
    }

    let rec = store
        .experiment(&name)?
        .context("the experiment vanished from the store")?;
    let trials = store.trials(&name)?;
    match a.output {
        Format::Json | Format::Yaml => crate::formats::print_document(
            a.output,
            &crate::formats::experiment(&rec, &trials, None),
        )?,
        Format::Csv => out!("{}", crate::formats::trials_csv(&exp, &trials)?.trim_end()),
        Format::Name => {
            for t in output::ranked(&exp, &trials) {
                out!("{}", t.name);
            }
        }
        Format::Table | Format::Wide => {
            out!(
                "Experiment {name} {} ({}): {}",
                status.state,
                status.reason,
                status.message
            );
            out!(
                "{}; best {}",
                output::counts_line(&rec_counts(&trials)),
                output::best_line(&exp, &trials)
            );
            if let Some(missed) = goal_missed(&rec) {
                out!("{missed}");
            }
            let failed = output::failures(&trials, 5, Some(&dir.join("runs")));
            if !failed.is_empty() {
                out!("Failed trials:");
                for line in failed {
                    out!("{line}");
                }
            }
            if !trials.is_empty() {
                let view = output::TrialsView {
                    limit: Some(10),
                    wide: a.output == Format::Wide,
                    latest: None,
                };
                out!("{}", output::trials_table(&exp, &trials, &view));
                if let Some(more) =
                    output::more_note(trials.len(), 10, &format!("kestrel get {name}"))
                {
                    out!("{more}");
                }
            }
            out!(
                "store: {}   (kestrel get {name} --store {})",
                dir.display(),
                dir.display()
            );
        }
    }
    Ok(exit_code(&rec))
}

/// Where `run`'s DBManager listens: only with the Kubernetes executor, whose trials report
/// over the network.
fn db_manager_listen(a: &RunOptions) -> anyhow::Result<Option<SocketAddr>> {
    if a.executor != "kubernetes" {
        if a.db_manager_listen.is_some() {
            return Err(
                UsageError("--db-manager-listen is for --executor kubernetes".into()).into(),
            );
        }
        return Ok(None);
    }
    let text = match &a.db_manager_listen {
        Some(t) => t.clone(),
        None => format!("0.0.0.0:{}", a.kube.db_manager_port().unwrap_or(6789)),
    };
    text.parse()
        .map(Some)
        .map_err(|e| UsageError(format!("--db-manager-listen {text:?}: {e}")).into())
}

/// A stop switch and the task of a running DBManager.
type DbManager = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), kestrel_server::ServeError>>,
);

/// Binds the DBManager's listener (before anything is stored); returns it with its
/// address.
async fn bind_db_manager(
    addr: SocketAddr,
) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| UsageError(format!("--db-manager-listen {addr}: cannot listen: {e}")))?;
    let local = listener.local_addr().context("reading the bound address")?;
    Ok((listener, local))
}

/// Serves the DBManager trials report their metrics to (in the runtime entered).
fn start_db_manager(
    listener: tokio::net::TcpListener,
    store: Arc<dyn kestrel_store::Store>,
    open_push: bool,
) -> DbManager {
    if let Ok(local) = listener.local_addr() {
        eprintln!("DBManager for the trials' metrics listening on {local}");
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(kestrel_server::serve_db_manager(
        listener,
        store,
        open_push,
        async {
            let _ = stopped.await;
        },
    ));
    (stop, task)
}

fn rec_counts(trials: &[kestrel_core::TrialRecord]) -> kestrel_core::TrialCounts {
    kestrel_core::TrialCounts::of(trials)
}

/// 0 when the experiment succeeded, as Katib marks it (also when its budget ran out
/// before the goal); 1 when it failed or was stopped.
fn exit_code(rec: &ExperimentRecord) -> ExitCode {
    if rec.status.state == ExperimentState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// "goal 0.9 not reached" when the experiment has a goal it ended without reaching.
fn goal_missed(rec: &ExperimentRecord) -> Option<String> {
    let goal = rec.spec.objective.goal?;
    (rec.status.state.is_terminal() && rec.status.reason != reason::GOAL_REACHED)
        .then(|| format!("goal {goal} not reached"))
}

fn progress_bar(max: Option<u32>) -> ProgressBar {
    let bar = match max {
        Some(m) => ProgressBar::new(u64::from(m)),
        None => ProgressBar::new_spinner(),
    };
    let template = if max.is_some() {
        "{spinner} [{elapsed_precise}] {bar:20} {pos}/{len} {wide_msg}"
    } else {
        "{spinner} [{elapsed_precise}] {pos} trials {wide_msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
