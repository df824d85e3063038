//! `kestrel list`: the stored experiments with their status and best objective.

use std::process::ExitCode;

use kestrel_core::TrialCounts;

use super::Format;
use crate::output;
use crate::remote::ServerArgs;
use crate::store::StoreArgs;

/// Arguments of `kestrel list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    server: ServerArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: Format,
}

/// Prints the experiments, oldest first.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let (exps, from) = crate::source::experiments(&a.store, &a.server)?;
    if a.output == Format::Json {
        let v: Vec<serde_json::Value> = exps
            .iter()
            .map(|(e, t)| output::experiment_json(e, t))
            .collect();
        out!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    if exps.is_empty() {
        out!("no experiments in {from}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = crate::output::table();
    t.set_header([
        "NAME",
        "STATUS",
        "REASON",
        "ALGORITHM",
        "TRIALS",
        "BEST",
        "CREATED",
    ]);
    for (e, trials) in &exps {
        let c = TrialCounts::of(trials);
        t.add_row([
            e.name().to_string(),
            e.status.state.to_string(),
            e.status.reason.clone(),
            e.spec.algorithm.name.clone(),
            format!(
                "{}/{}",
                c.succeeded,
                e.spec
                    .max_trial_count
                    .map_or(c.total().to_string(), |m| m.to_string())
            ),
            output::best_line(&e.spec, trials),
            e.created_at.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        ]);
    }
    out!("{t}");
    Ok(ExitCode::SUCCESS)
}
