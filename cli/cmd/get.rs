//! `kestrel get NAME`: one experiment, its status and every trial sorted best first.

use std::process::ExitCode;

use super::Format;
use crate::output;
use crate::remote::ServerArgs;
use crate::store::StoreArgs;

/// Arguments of `kestrel get`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Experiment name.
    pub name: String,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    server: ServerArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: Format,
    /// Show at most this many trials.
    #[arg(long)]
    limit: Option<usize>,
}

/// Prints the experiment.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let (rec, trials) = crate::source::experiment(&a.store, &a.server, &a.name)?;
    if a.output == Format::Json {
        out!(
            "{}",
            serde_json::to_string_pretty(&output::experiment_json(&rec, &trials))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let s = &rec.status;
    let exp = &rec.spec;
    out!("Experiment: {}", rec.name());
    out!("Status:     {} ({}) {}", s.state, s.reason, s.message);
    out!(
        "Objective:  {} {}{}",
        exp.objective.kind.as_str(),
        exp.objective.metric,
        exp.objective
            .goal
            .map(|g| format!(", goal {g}"))
            .unwrap_or_default()
    );
    out!("Algorithm:  {} (seed {})", exp.algorithm.name, rec.seed);
    out!(
        "Trials:     {}",
        output::counts_line(&kestrel_core::TrialCounts::of(&trials))
    );
    out!("Best:       {}", output::best_line(exp, &trials));
    // The trials' logs are readable when the store is local.
    let runs = match &a.server.server {
        Some(_) => None,
        None => a.store.dir().ok().map(|d| d.join("runs")),
    };
    let failed = output::failures(&trials, 5, runs.as_deref());
    if !failed.is_empty() {
        out!("Failed:");
        for line in failed {
            out!("{line}");
        }
    }
    if !trials.is_empty() {
        out!("{}", output::trials_table(exp, &trials, a.limit));
    }
    Ok(ExitCode::SUCCESS)
}
