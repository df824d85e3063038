//! `kestrel get NAME`: one experiment, its status and every trial sorted best first.

use std::process::ExitCode;

use super::{Format, UsageError};
use crate::remote::ServerArgs;
use crate::store::StoreArgs;
use crate::{formats, output};

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
    #[arg(short, long, value_enum, default_value_t)]
    output: Format,
    /// Show at most this many trials.
    #[arg(long)]
    limit: Option<usize>,
    /// With -o json or yaml: every trial's observation log (each report, oldest first).
    #[arg(long)]
    observation_log: bool,
}

/// Prints the experiment.
pub fn run(mut a: Args) -> anyhow::Result<ExitCode> {
    crate::source::settle(&a.store, &mut a.server)?;
    if a.observation_log && !a.output.is_document() {
        return Err(UsageError("--observation-log is for -o json or -o yaml".into()).into());
    }
    let (rec, trials) = crate::source::experiment(&a.store, &a.server, &a.name)?;
    match a.output {
        Format::Json | Format::Yaml => {
            let logs = if a.observation_log {
                Some(crate::source::observation_logs(
                    &a.store, &a.server, &trials,
                )?)
            } else {
                None
            };
            let doc = formats::experiment(&rec, &trials, logs.as_ref());
            formats::print_document(a.output, &doc)?;
            return Ok(ExitCode::SUCCESS);
        }
        Format::Csv => {
            out!("{}", formats::trials_csv(&rec.spec, &trials)?.trim_end());
            return Ok(ExitCode::SUCCESS);
        }
        Format::Name => {
            for t in output::ranked(&rec.spec, &trials) {
                out!("{}", t.name);
            }
            return Ok(ExitCode::SUCCESS);
        }
        Format::Table | Format::Wide => {}
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
        let latest = crate::source::running_latest(&a.store, &a.server, exp, &trials);
        let view = output::TrialsView {
            limit: a.limit,
            wide: a.output == Format::Wide,
            latest: Some(&latest),
        };
        out!("{}", output::trials_table(exp, &trials, &view));
        if let Some(more) =
            output::more_note(trials.len(), a.limit.unwrap_or(usize::MAX), "--limit N")
        {
            out!("{more}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
