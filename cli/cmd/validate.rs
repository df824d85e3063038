//! `kestrel validate FILE`: parse and check an experiment without running anything.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `kestrel validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Katib Experiment YAML file.
    pub file: PathBuf,
    /// Also check that this executor can run it (local, kubernetes).
    #[arg(long, default_value = kestrel_controller::executor::DEFAULT_EXECUTOR, value_name = "NAME")]
    executor: String,
}

/// Prints a one-line summary of a valid file (errors are returned).
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let (exp, _) = super::load_experiment(&a.file)?;
    super::check_executor(&a.executor)?;
    kestrel_controller::reconciler::preflight(&exp, &a.executor)
        .map_err(|e| super::UsageError(format!("{}: {e}", a.file.display())))?;
    out!(
        "{}: valid Experiment {:?}: {} {} ({}), {}, algorithm {}, maxTrialCount {}, parallelTrialCount {}",
        a.file.display(),
        exp.name,
        exp.objective.kind.as_str(),
        exp.objective.metric,
        exp.objective
            .goal
            .map_or("no goal".to_string(), |g| format!("goal {g}")),
        match &exp.nas_config {
            Some(nas) => format!(
                "architecture search over {} operation types",
                nas.operations.len()
            ),
            None => format!("{} parameters", exp.space.len()),
        },
        exp.algorithm.name,
        exp.max_trial_count
            .map_or("unbounded".to_string(), |m| m.to_string()),
        exp.parallel_trial_count,
    );
    Ok(ExitCode::SUCCESS)
}
