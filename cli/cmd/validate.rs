//! `kestrel validate FILE`: parse and check an experiment without running anything.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `kestrel validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Katib Experiment YAML file.
    pub file: PathBuf,
    /// Check that this executor can run it (local, kubernetes); without one, the file is
    /// valid when some executor can run it, and the others say why they cannot.
    #[arg(long, value_name = "NAME")]
    executor: Option<String>,
}

/// Prints a one-line summary of a valid file (errors are returned).
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let (exp, _) = super::load_experiment(&a.file)?;
    let usage = |e: String| super::UsageError(format!("{}: {e}", a.file.display()));
    let mut notes = Vec::new();
    match &a.executor {
        Some(name) => {
            super::check_executor(name)?;
            kestrel_controller::reconciler::preflight(&exp, name)
                .map_err(|e| usage(e.to_string()))?;
        }
        None => {
            let all: Vec<&str> = kestrel_controller::executor::executors().collect();
            for name in &all {
                if let Err(e) = kestrel_controller::reconciler::preflight(&exp, name) {
                    notes.push(format!("not with --executor {name}: {e}"));
                }
            }
            if notes.len() == all.len() {
                return Err(usage(notes.join("; ")).into());
            }
        }
    }
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
    for n in notes {
        out!("  note: {n}");
    }
    Ok(ExitCode::SUCCESS)
}
