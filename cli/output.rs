//! Tables and JSON for the CLI: the trials of an experiment sorted best first with the
//! best marked, and the list of experiments.

use comfy_table::{Cell, ColumnConstraint, ContentArrangement, Row, Table};
use kestrel_core::best_trial;
pub use kestrel_core::document::{metric_value, ranked};
use kestrel_core::{Experiment, TrialCounts, TrialRecord};

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

/// A table styled for where it goes. On a terminal: borders, and as wide as the
/// terminal, each row one line with cells cut short by `…` rather than wrapped. Piped or
/// redirected: plain aligned columns at full width (for grep, cut and files).
pub fn table() -> Table {
    use std::io::IsTerminal;
    let mut t = Table::new();
    if std::io::stdout().is_terminal() {
        t.load_style(comfy_table::presets::UTF8_BORDERS_ONLY);
        t.set_content_arrangement(ContentArrangement::Dynamic);
    } else {
        t.load_style(comfy_table::presets::NOTHING);
        t.set_content_arrangement(ContentArrangement::Disabled);
    }
    t.set_truncation_indicator("…");
    t
}

/// A table row that never wraps (see [`table`]).
pub fn row<T: Into<Cell>>(cells: impl IntoIterator<Item = T>) -> Row {
    let mut r = Row::from(cells.into_iter().map(Into::into).collect::<Vec<Cell>>());
    r.max_height(1);
    r
}

/// Keeps each column `(index, width)` at least `width` characters wide when the table must
/// shrink (the width of its values, not of its header: a header may be cut, a number or
/// a name never is); the other columns give way. Cells get one space of padding, on the
/// right, so that more columns fit.
pub fn keep_width(t: &mut Table, keep: impl IntoIterator<Item = (usize, usize)>) {
    for c in t.column_iter_mut() {
        c.set_padding((0, 1));
    }
    for (i, w) in keep {
        if let Some(c) = t.column_mut(i) {
            let w = u16::try_from(w + 1).unwrap_or(u16::MAX);
            c.set_constraint(ColumnConstraint::LowerBoundary(comfy_table::Width::Fixed(
                w,
            )));
        }
    }
}

/// The widths of the columns `cols` over `rows` (characters of the longest cell).
pub fn widths(rows: &[Vec<String>], cols: std::ops::Range<usize>) -> Vec<(usize, usize)> {
    cols.map(|i| {
        let w = rows
            .iter()
            .filter_map(|r| r.get(i))
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(1);
        (i, w.max(1))
    })
    .collect()
}

/// "... and N more (--limit to show them)" when `shown` of `total` rows were printed.
pub fn more_note(total: usize, shown: usize, hint: &str) -> Option<String> {
    (total > shown).then(|| format!("... and {} more trials ({hint})", total - shown))
}

/// What a trials table shows besides the trials.
#[derive(Debug, Default)]
pub struct TrialsView<'a> {
    /// At most this many rows.
    pub limit: Option<usize>,
    /// Every column: start time, duration, reason and message.
    pub wide: bool,
    /// The newest value of the objective metric of trials still running, by trial name
    /// (shown as `~value`).
    pub latest: Option<&'a std::collections::BTreeMap<String, f64>>,
}

/// A table of trials, best first, the best marked with `*`.
pub fn trials_table(exp: &Experiment, trials: &[TrialRecord], view: &TrialsView<'_>) -> Table {
    let best = best_trial(exp, trials).map(|t| t.name.as_str());
    let mut t = table();
    let metric = if view.wide {
        format!(
            "{} ({})",
            exp.objective.metric,
            exp.objective.strategy(&exp.objective.metric).as_str()
        )
    } else {
        exp.objective.metric.clone()
    };
    let mut header = vec![String::new(), "TRIAL".into(), "STATUS".into(), metric];
    header.extend(exp.objective.additional_metrics.iter().cloned());
    header.extend(exp.space.params.iter().map(|p| p.name.clone()));
    if view.wide {
        // Every column in full, as kubectl's -o wide: wider than the terminal if need be.
        t.set_content_arrangement(ContentArrangement::Disabled);
        header.extend(["STARTED", "DURATION", "REASON", "MESSAGE"].map(String::from));
    }
    t.set_header(row(header));
    let mut rows = Vec::new();
    for tr in ranked(exp, trials)
        .into_iter()
        .take(view.limit.unwrap_or(usize::MAX))
    {
        let mark = if Some(tr.name.as_str()) == best {
            "*"
        } else {
            ""
        };
        let mut cells = vec![
            mark.to_string(),
            tr.name.clone(),
            tr.state.as_str().to_string(),
        ];
        let provisional = view
            .latest
            .and_then(|l| l.get(&tr.name))
            .filter(|_| tr.objective.is_none());
        cells.push(match provisional {
            Some(v) => format!("~{}", fmt_num(*v)),
            None => objective_text(exp, tr, 40),
        });
        for m in &exp.objective.additional_metrics {
            let v = metric_value(exp, tr, m);
            cells.push(v.map(fmt_num).unwrap_or_else(|| "-".into()));
        }
        for p in &exp.space.params {
            cells.push(tr.assignments.get(&p.name).map(short).unwrap_or_default());
        }
        if view.wide {
            cells.push(
                tr.started_at
                    .map(|s| s.strftime("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_else(|| "-".into()),
            );
            cells.push(duration(tr));
            cells.push(tr.reason.clone());
            cells.push(tr.message.clone());
        }
        rows.push(cells);
    }
    // The mark, the name, the status and the metrics keep their width; parameters (and
    // the wide columns) give way.
    let metrics = 1 + exp.objective.additional_metrics.len();
    let keep = widths(&rows, 0..3 + metrics);
    for r in rows {
        t.add_row(row(r));
    }
    keep_width(&mut t, keep);
    t
}

/// How long a trial ran (until now while it runs), e.g. `1m05s`.
fn duration(t: &TrialRecord) -> String {
    let Some(start) = t.started_at else {
        return "-".into();
    };
    let end = t.completed_at.unwrap_or_else(jiff::Timestamp::now);
    let secs = end.as_second().saturating_sub(start.as_second()).max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

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
            "  ... and {} more (kestrel get -o wide shows every reason)",
            failed.len() - limit
        ));
    }
    lines
}

/// The last non-empty line of a log (read from its last 4 KiB), cut to 200 characters.
pub fn last_line(path: &std::path::Path) -> Option<String> {
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

/// One line of counts: `12 trials: 9 succeeded, 2 failed, 1 running`.
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
