//! Tables and JSON for the CLI: the trials of an experiment sorted best first with the
//! best marked, and the list of experiments.

use comfy_table::{Cell, ContentArrangement, Table};
use kestrel_core::best_trial;
use kestrel_core::{Experiment, ExperimentRecord, TrialCounts, TrialRecord};

/// Writes one line to stdout. A closed pipe (`kestrel get x | head`) surfaces as an
/// error that `main` turns into a quiet exit instead of a panic.
pub fn emit(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")
}

/// Whether `e` is a write to a closed stdout.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Trials sorted best first: those with an objective by value, then the rest by index.
pub fn ranked<'a>(exp: &Experiment, trials: &'a [TrialRecord]) -> Vec<&'a TrialRecord> {
    let mut v: Vec<&TrialRecord> = trials.iter().collect();
    v.sort_by(|a, b| match (a.objective, b.objective) {
        (Some(x), Some(y)) => {
            let ord = x.total_cmp(&y);
            let ord = if exp.objective.kind == kestrel_core::ObjectiveType::Maximize {
                ord.reverse()
            } else {
                ord
            };
            ord.then(a.index.cmp(&b.index))
        }
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.index.cmp(&b.index),
    });
    v
}

fn fmt_num(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e6) {
        format!("{x:.4e}")
    } else {
        format!("{:.6}", x)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// A parameter value for display: doubles to 4 significant digits (JSON output is exact).
pub fn short(v: &kestrel_core::Value) -> String {
    match v {
        kestrel_core::Value::Double(x) if *x != 0.0 && x.is_finite() => {
            let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 12) as usize;
            let s = format!("{x:.digits$}");
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                s
            }
        }
        other => other.to_string(),
    }
}

/// A table styled for where it goes: borders on a terminal, plain aligned columns when
/// piped or redirected (for grep, cut and files).
pub fn table() -> Table {
    use std::io::IsTerminal;
    let mut t = Table::new();
    if std::io::stdout().is_terminal() {
        t.load_style(comfy_table::presets::UTF8_BORDERS_ONLY);
    } else {
        t.load_style(comfy_table::presets::NOTHING);
    }
    t.set_content_arrangement(ContentArrangement::Dynamic);
    t
}

/// A table of up to `limit` trials, best first, the best marked with `*`.
pub fn trials_table(exp: &Experiment, trials: &[TrialRecord], limit: Option<usize>) -> Table {
    let best = best_trial(exp, trials).map(|t| t.name.as_str());
    let mut t = table();
    let mut header = vec![
        String::new(),
        "TRIAL".into(),
        "STATUS".into(),
        format!(
            "{} ({})",
            exp.objective.metric,
            exp.objective.strategy(&exp.objective.metric).as_str()
        ),
    ];
    header.extend(exp.objective.additional_metrics.iter().cloned());
    header.extend(exp.space.params.iter().map(|p| p.name.clone()));
    t.set_header(header);
    for tr in ranked(exp, trials)
        .into_iter()
        .take(limit.unwrap_or(usize::MAX))
    {
        let mark = if Some(tr.name.as_str()) == best {
            "*"
        } else {
            ""
        };
        let mut row = vec![
            Cell::new(mark),
            Cell::new(&tr.name),
            Cell::new(tr.state.as_str()),
        ];
        row.push(Cell::new(objective_text(exp, tr, 40)));
        for m in &exp.objective.additional_metrics {
            let v = tr
                .observation
                .iter()
                .find(|o| &o.name == m)
                .and_then(|o| o.value(exp.objective.strategy(m)));
            row.push(Cell::new(v.map(fmt_num).unwrap_or_else(|| "-".into())));
        }
        for p in &exp.space.params {
            row.push(Cell::new(
                tr.assignments.get(&p.name).map(short).unwrap_or_default(),
            ));
        }
        t.add_row(row);
    }
    t
}

/// One line of counts: `12 trials: 9 succeeded, 2 failed, 1 running`.
/// Why trials failed, one line each (`name: message`, then the last line of its log when
/// `runs` has it), at most `limit`, then how many more: failures are never silent.
pub fn failures(
    trials: &[TrialRecord],
    limit: usize,
    runs: Option<&std::path::Path>,
) -> Vec<String> {
    let failed: Vec<&TrialRecord> = trials.iter().filter(|t| t.state.is_failure()).collect();
    let mut lines = Vec::new();
    for t in failed.iter().take(limit) {
        lines.push(format!("  {} {}: {}", t.name, t.state, t.message));
        let log = runs.map(|r| r.join(&t.experiment).join(&t.name).join("trial.log"));
        if let Some(last) = log.as_deref().and_then(last_line) {
            lines.push(format!("    > {last}"));
        }
    }
    if failed.len() > limit {
        lines.push(format!(
            "  ... and {} more (kestrel get --output json)",
            failed.len() - limit
        ));
    }
    lines
}

/// The last non-empty line of a log (read from its last 4 KiB), cut to 200 characters.
fn last_line(path: &std::path::Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut buf = Vec::new();
    f.take(4096).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?.trim();
    Some(line.chars().take(200).collect())
}

pub fn counts_line(c: &TrialCounts) -> String {
    let parts: Vec<String> = [
        (c.succeeded, "succeeded"),
        (c.failed, "failed"),
        (c.metrics_unavailable, "metrics unavailable"),
        (c.killed, "killed"),
        (c.early_stopped, "early stopped"),
        (c.running, "running"),
        (c.created, "pending"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    format!(
        "{} trials: {}",
        c.total(),
        if parts.is_empty() {
            "none yet".into()
        } else {
            parts.join(", ")
        }
    )
}

/// The trial's objective: the number, else the text it reported (at most `width`
/// characters, e.g. a DARTS genotype), else `-`.
pub fn objective_text(exp: &Experiment, t: &TrialRecord, width: usize) -> String {
    match (t.objective, t.reported(&exp.objective.metric)) {
        (Some(v), _) => fmt_num(v),
        (None, Some(text)) if text != kestrel_core::metrics::UNAVAILABLE => {
            if text.chars().count() > width {
                let cut: String = text.chars().take(width.saturating_sub(1)).collect();
                format!("{cut}…")
            } else {
                text.to_string()
            }
        }
        (None, _) => "-".into(),
    }
}

/// `metric=value (trial)` of the best trial, or `-`.
pub fn best_line(exp: &Experiment, trials: &[TrialRecord]) -> String {
    match best_trial(exp, trials) {
        Some(t) => format!(
            "{}={} ({})",
            exp.objective.metric,
            objective_text(exp, t, usize::MAX),
            t.name
        ),
        None => "-".into(),
    }
}

/// The experiment and its trials as one JSON document.
pub fn experiment_json(rec: &ExperimentRecord, trials: &[TrialRecord]) -> serde_json::Value {
    let best = best_trial(&rec.spec, trials).map(|t| t.name.clone());
    serde_json::json!({
        "name": rec.name(),
        "status": rec.status,
        "seed": rec.seed,
        "createdAt": rec.created_at,
        "objective": rec.spec.objective,
        "algorithm": rec.spec.algorithm,
        "bestTrial": best,
        "counts": TrialCounts::of(trials),
        "trials": trials,
    })
}
