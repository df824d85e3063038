//! `kestrel get NAME [TRIAL]`: one experiment, its status and every trial sorted best
//! first; or one trial with its learning curve.

use std::io::IsTerminal;
use std::process::ExitCode;

use kestrel_core::{Experiment, TrialRecord};

use super::{Format, UsageError};
use crate::remote::ServerArgs;
use crate::store::StoreArgs;
use crate::{formats, output};

/// Arguments of `kestrel get`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Experiment name.
    pub name: String,
    /// One trial of it: its assignments, observation, learning curve and reason.
    pub trial: Option<String>,
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
    if let Some(name) = &a.trial {
        let Some(t) = trials.iter().find(|t| &t.name == name) else {
            return Err(UsageError(format!("experiment {} has no trial {name:?}", a.name)).into());
        };
        return show_trial(&a, &rec.spec, t);
    }
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

/// Prints one trial: where it stands, its values, and its objective's learning curve.
fn show_trial(a: &Args, exp: &Experiment, t: &TrialRecord) -> anyhow::Result<ExitCode> {
    let logs = crate::source::observation_logs(&a.store, &a.server, std::slice::from_ref(t))?
        .remove(&t.name)
        .unwrap_or_default();
    match a.output {
        Format::Json | Format::Yaml => {
            formats::print_document(a.output, &formats::trial(t, Some(&logs)))?;
            return Ok(ExitCode::SUCCESS);
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(["time", "metric", "value"])?;
            for l in &logs {
                w.write_record([l.time.to_string(), l.name.clone(), l.value.clone()])?;
            }
            out!("{}", String::from_utf8(w.into_inner()?)?.trim_end());
            return Ok(ExitCode::SUCCESS);
        }
        Format::Name => {
            out!("{}", t.name);
            return Ok(ExitCode::SUCCESS);
        }
        Format::Table | Format::Wide => {}
    }
    out!("Trial:       {} (experiment {})", t.name, t.experiment);
    out!("Status:      {} ({}) {}", t.state, t.reason, t.message);
    let when = |x: Option<jiff::Timestamp>| {
        x.map(|x| x.strftime("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| "-".into())
    };
    out!(
        "Started:     {}   Completed: {}",
        when(t.started_at),
        when(t.completed_at)
    );
    let values: Vec<String> = exp
        .space
        .params
        .iter()
        .filter_map(|p| {
            t.assignments
                .get(&p.name)
                .map(|v| format!("{}={v}", p.name))
        })
        .collect();
    out!("Assignments: {}", values.join(", "));
    for m in exp.objective.all_metrics() {
        let strategy = exp.objective.strategy(m);
        let obs = t.observation.iter().find(|o| o.name == m);
        let value = obs
            .and_then(|o| o.value(strategy))
            .map_or_else(|| "-".to_string(), |v| v.to_string());
        let reports = logs.iter().filter(|l| l.name == m).count();
        out!(
            "{:<12} {value} ({} of {reports} reports{})",
            format!("{m}:"),
            strategy.as_str(),
            obs.map(|o| format!(", latest {}", o.latest))
                .unwrap_or_default()
        );
    }
    let metric = &exp.objective.metric;
    let points = crate::curve::points(&logs, metric);
    if points.is_empty() {
        out!("(no numeric reports of {metric} to plot)");
    } else {
        let width = if std::io::stdout().is_terminal() {
            ratatui::crossterm::terminal::size().map_or(80, |(w, _)| w.min(120))
        } else {
            80
        };
        let title = format!("{metric} by report ({})", t.name);
        for line in crate::curve::text(crate::curve::chart(title, metric, &points), width, 14) {
            out!("{line}");
        }
    }
    if t.state.is_failure() {
        let runs = match &a.server.server {
            Some(_) => None,
            None => a.store.dir().ok().map(|d| d.join("runs")),
        };
        for line in output::failures(std::slice::from_ref(t), 1, runs.as_deref()) {
            out!("{line}");
        }
        out!(
            "(kestrel logs {} {} shows its output)",
            t.experiment,
            t.name
        );
    }
    Ok(ExitCode::SUCCESS)
}
