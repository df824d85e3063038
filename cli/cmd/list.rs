//! `kestrel list`: the stored experiments with their status and best objective.

use std::process::ExitCode;

use kestrel_core::TrialCounts;

use super::Format;
use crate::remote::ServerArgs;
use crate::store::StoreArgs;
use crate::{formats, output};

/// Arguments of `kestrel list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    server: ServerArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    output: Format,
}

/// Prints the experiments, oldest first.
pub fn run(mut a: Args) -> anyhow::Result<ExitCode> {
    crate::source::settle(&a.store, &mut a.server)?;
    let (exps, from) = crate::source::experiments(&a.store, &a.server)?;
    match a.output {
        Format::Json | Format::Yaml => {
            let v: Vec<serde_json::Value> = exps
                .iter()
                .map(|(e, t)| formats::experiment(e, t, None))
                .collect();
            formats::print_document(a.output, &serde_json::Value::Array(v))?;
            return Ok(ExitCode::SUCCESS);
        }
        Format::Csv => {
            out!("{}", formats::experiments_csv(&exps)?.trim_end());
            return Ok(ExitCode::SUCCESS);
        }
        Format::Name => {
            for (e, _) in &exps {
                out!("{}", e.name());
            }
            return Ok(ExitCode::SUCCESS);
        }
        Format::Table | Format::Wide => {}
    }
    if exps.is_empty() {
        out!("no experiments in {from}");
        return Ok(ExitCode::SUCCESS);
    }
    let wide = a.output == Format::Wide;
    let mut t = output::table();
    if wide {
        t.set_content_arrangement(comfy_table::ContentArrangement::Disabled);
    }
    let mut header = vec!["NAME", "STATUS", "ALGORITHM", "TRIALS", "BEST", "CREATED"];
    if wide {
        header.splice(2..2, ["REASON"]);
    }
    t.set_header(output::row(header));
    let mut rows = Vec::new();
    for (e, trials) in &exps {
        let c = TrialCounts::of(trials);
        let best = kestrel_core::best_trial(&e.spec, trials);
        let mut cells = vec![
            e.name().to_string(),
            e.status.state.to_string(),
            e.spec.algorithm.name.clone(),
            format!(
                "{}/{}",
                c.succeeded,
                e.spec
                    .max_trial_count
                    .map_or(c.total().to_string(), |m| m.to_string())
            ),
            if wide {
                output::best_line(&e.spec, trials)
            } else {
                best.map_or("-".into(), |t| output::objective_text(&e.spec, t, 20))
            },
            if wide {
                e.created_at.strftime("%Y-%m-%d %H:%M:%S").to_string()
            } else {
                e.created_at.strftime("%m-%d %H:%M").to_string()
            },
        ];
        if wide {
            cells.insert(2, e.status.reason.clone());
        }
        rows.push(cells);
    }
    // Names, states, counts and values keep their width; the algorithm gives way.
    let keep: Vec<(usize, usize)> = output::widths(&rows, 0..rows.first().map_or(0, Vec::len))
        .into_iter()
        .filter(|(i, _)| {
            if wide {
                [0, 1, 4, 5].contains(i)
            } else {
                [0, 1, 3, 4].contains(i)
            }
        })
        .collect();
    for r in rows {
        t.add_row(output::row(r));
    }
    output::keep_width(&mut t, keep);
    out!("{t}");
    Ok(ExitCode::SUCCESS)
}
