//! `kestrel watch NAME`: a live terminal view of an experiment (trials sorted by objective
//! with the best marked, status counts, best-so-far over time), updated as the server
//! streams events, or by polling the local store. `--once`, or output that is not a
//! terminal, prints the current table instead.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use kestrel_core::{ExperimentState, ObjectiveType, TrialCounts, TrialRecord};
use kestrel_proto::convert::manager as conv;
use kestrel_proto::manager::{self as pb, event::Kind};
use ratatui::Frame;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph, Row, Table};

use crate::output;
use crate::remote::{self, ServerArgs};
use crate::source::{self, Snapshot};
use crate::store::StoreArgs;

/// Arguments of `kestrel watch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Experiment name.
    pub name: String,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    server: ServerArgs,
    /// Print the current state once as a table and exit.
    #[arg(long)]
    once: bool,
}

/// Watches the experiment.
pub fn run(mut a: Args) -> anyhow::Result<ExitCode> {
    source::settle(&a.store, &mut a.server)?;
    if a.once || !std::io::stdout().is_terminal() {
        let (rec, trials) = source::experiment(&a.store, &a.server, &a.name)?;
        print_plain(&(rec, trials))?;
        return Ok(ExitCode::SUCCESS);
    }
    // Fail before taking over the terminal when the experiment does not exist.
    let first = source::experiment(&a.store, &a.server, &a.name)?;
    let (tx, rx) = std_mpsc::channel::<Result<Snapshot, String>>();
    let rt = remote::runtime()?;
    let producer = if a.server.server.is_some() {
        rt.spawn(stream_server(
            a.server.clone(),
            a.name.clone(),
            first.clone(),
            tx,
        ))
    } else {
        rt.spawn(poll_store(a.store.clone(), a.name.clone(), tx))
    };
    let result = ui(first, &rx);
    producer.abort();
    result?;
    Ok(ExitCode::SUCCESS)
}

fn print_plain((rec, trials): &Snapshot) -> anyhow::Result<()> {
    let exp = &rec.spec;
    out!(
        "Experiment {} {} ({}); {}",
        rec.name(),
        rec.status.state,
        rec.status.reason,
        output::counts_line(&TrialCounts::of(trials))
    );
    out!("Best: {}", output::best_line(exp, trials));
    if !trials.is_empty() {
        let view = output::TrialsView {
            limit: Some(20),
            ..Default::default()
        };
        out!("{}", output::trials_table(exp, trials, &view));
    }
    Ok(())
}

/// Reads the local store (opened once) every half second.
async fn poll_store(
    store: StoreArgs,
    name: String,
    tx: std_mpsc::Sender<Result<Snapshot, String>>,
) {
    let opened = match tokio::task::spawn_blocking(move || store.open_read_only()).await {
        Ok(Ok((Some(s), _))) => s,
        Ok(Ok((None, dir))) => {
            let _ = tx.send(Err(format!("no store in {}", dir.display())));
            return;
        }
        Ok(Err(e)) => {
            let _ = tx.send(Err(format!("{e:#}")));
            return;
        }
        Err(e) => {
            let _ = tx.send(Err(e.to_string()));
            return;
        }
    };
    loop {
        let (store, name) = (opened.clone(), name.clone());
        let snap = tokio::task::spawn_blocking(move || -> Result<Snapshot, String> {
            let rec = store
                .experiment(&name)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("experiment {name:?} is gone from the store"))?;
            let trials = store.trials(&name).map_err(|e| e.to_string())?;
            Ok((rec, trials))
        })
        .await;
        let msg = snap.unwrap_or_else(|e| Err(e.to_string()));
        if tx.send(msg).is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn stream_server(
    server: ServerArgs,
    name: String,
    mut snap: Snapshot,
    tx: std_mpsc::Sender<Result<Snapshot, String>>,
) {
    let result: anyhow::Result<()> = async {
        let mut c = remote::connect(&server).await?;
        let mut stream = c
            .watch_experiment(pb::ExperimentRef { name: name.clone() })
            .await
            .map_err(remote::status_error)?
            .into_inner();
        while let Some(ev) = stream.message().await.map_err(remote::status_error)? {
            match ev.kind {
                Some(Kind::Experiment(info)) => {
                    let rec = conv::experiment_record(
                        &info,
                        &snap.0.source,
                        &kestrel_algorithms::Catalog,
                    )
                    .map_err(|e| anyhow::anyhow!("unreadable event: {e}"))?;
                    snap.0.status = rec.status;
                }
                Some(Kind::Trial(t)) => {
                    let t = conv::trial_record(&t, &name, &snap.0.spec.space)
                        .map_err(|e| anyhow::anyhow!("unreadable event: {e}"))?;
                    match snap.1.iter_mut().find(|x| x.name == t.name) {
                        Some(x) => *x = t,
                        None => snap.1.push(t),
                    }
                }
                None => {}
            }
            if tx.send(Ok(snap.clone())).is_err() {
                return Ok(());
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        let _ = tx.send(Err(format!("{e:#}")));
    }
}

fn ui(mut snap: Snapshot, rx: &std_mpsc::Receiver<Result<Snapshot, String>>) -> anyhow::Result<()> {
    let mut terminal = ratatui::init();
    let mut note: Option<String> = None;
    let result = (|| -> anyhow::Result<()> {
        loop {
            while let Ok(msg) = rx.try_recv() {
                match msg {
                    Ok(s) => snap = s,
                    Err(e) => note = Some(e),
                }
            }
            terminal.draw(|f| draw(f, &snap, note.as_deref()))?;
            if event::poll(Duration::from_millis(250))?
                && let Event::Key(k) = event::read()?
            {
                let ctrl_c =
                    k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                if matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c {
                    return Ok(());
                }
            }
        }
    })();
    ratatui::restore();
    result
}

/// Best objective so far against seconds since the experiment started.
fn best_so_far(snap: &Snapshot) -> Vec<(f64, f64)> {
    let (rec, trials) = snap;
    let start = rec.status.started_at.unwrap_or(rec.created_at);
    let mut done: Vec<&TrialRecord> = trials
        .iter()
        .filter(|t| t.objective.is_some() && t.completed_at.is_some())
        .collect();
    done.sort_by_key(|t| t.completed_at);
    let maximize = rec.spec.objective.kind == ObjectiveType::Maximize;
    let mut best: Option<f64> = None;
    let mut points = Vec::new();
    for t in done {
        let (Some(v), Some(at)) = (t.objective, t.completed_at) else {
            continue;
        };
        let better = best.is_none_or(|b| if maximize { v > b } else { v < b });
        if better {
            best = Some(v);
        }
        let secs = at.duration_since(start).as_secs_f64().max(0.0);
        points.push((secs, best.unwrap_or(v)));
    }
    points
}

/// Renders the whole view (pure, so it is testable on a `TestBackend`).
pub fn draw(f: &mut Frame<'_>, snap: &Snapshot, note: Option<&str>) {
    let (rec, trials) = snap;
    let exp = &rec.spec;
    let [head, chart_area, table_area, foot] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Length(10),
        Constraint::Min(5),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let running = !rec.status.state.is_terminal() && rec.status.state != ExperimentState::Created;
    let header = vec![
        Line::from(format!(
            "{}  {}{}  ({})",
            rec.name(),
            rec.status.state,
            if running { "…" } else { "" },
            rec.status.reason
        ))
        .style(Style::default().add_modifier(Modifier::BOLD)),
        Line::from(format!(
            "{} {} · {} · seed {}",
            exp.objective.kind.as_str(),
            exp.objective.metric,
            exp.algorithm.name,
            rec.seed
        )),
        Line::from(output::counts_line(&TrialCounts::of(trials))),
        Line::from(format!("best: {}", output::best_line(exp, trials))),
    ];
    f.render_widget(Paragraph::new(header), head);

    let points = best_so_far(snap);
    let (xmax, (ymin, ymax)) = bounds(&points);
    let data = [Dataset::default()
        .name("best so far")
        .marker(Marker::Braille)
        .graph_type(GraphType::Line)
        .data(&points)];
    let chart = Chart::new(data.to_vec())
        .block(Block::bordered().title(format!("best {} over time (s)", exp.objective.metric)))
        .x_axis(
            Axis::default()
                .bounds([0.0, xmax])
                .labels(["0".to_string(), format!("{xmax:.0}")]),
        )
        .y_axis(
            Axis::default()
                .bounds([ymin, ymax])
                .labels([short(ymin), short(ymax)]),
        );
    f.render_widget(chart, chart_area);

    let best = kestrel_core::best_trial(exp, trials).map(|t| t.name.clone());
    let mut header_cells = vec![
        "".to_string(),
        "TRIAL".into(),
        "STATUS".into(),
        exp.objective.metric.clone(),
    ];
    header_cells.extend(exp.space.params.iter().map(|p| p.name.clone()));
    let rows: Vec<Row> = output::ranked(exp, trials)
        .into_iter()
        .map(|t| {
            let mark = if best.as_deref() == Some(t.name.as_str()) {
                "*"
            } else {
                ""
            };
            let mut cells = vec![
                mark.to_string(),
                t.name.clone(),
                t.state.as_str().to_string(),
                t.objective.map(short).unwrap_or_else(|| "-".into()),
            ];
            cells.extend(exp.space.params.iter().map(|p| {
                t.assignments
                    .get(&p.name)
                    .map(output::short)
                    .unwrap_or_default()
            }));
            let row = Row::new(cells);
            if mark == "*" {
                row.style(Style::default().add_modifier(Modifier::BOLD))
            } else {
                row
            }
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(1),
        Constraint::Length(24),
        Constraint::Length(18),
        Constraint::Length(12),
    ];
    widths.extend(exp.space.params.iter().map(|_| Constraint::Min(8)));
    let table = Table::new(rows, widths)
        .header(Row::new(header_cells).style(Style::default().add_modifier(Modifier::UNDERLINED)))
        .block(Block::bordered().title("trials, best first (* = best)"));
    f.render_widget(table, table_area);
    let footer = note.map_or_else(|| "q: quit".to_string(), |n| format!("q: quit · {n}"));
    f.render_widget(Paragraph::new(footer), foot);
}

fn bounds(points: &[(f64, f64)]) -> (f64, (f64, f64)) {
    let xmax = points.iter().map(|p| p.0).fold(1.0_f64, f64::max);
    let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return (xmax, (0.0, 1.0));
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    (xmax, (lo - pad, hi + pad))
}

fn short(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e5) {
        format!("{x:.3e}")
    } else {
        format!("{x:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_core::{ExperimentRecord, TrialState, Value};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    const YAML: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: demo}
spec:
  objective: {type: maximize, objectiveMetricName: accuracy}
  algorithm: {algorithmName: random}
  maxTrialCount: 3
  parameters:
    - {name: lr, parameterType: double, feasibleSpace: {min: "0.01", max: "0.1"}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{name: lr, reference: lr}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec: {template: {spec: {containers: [{name: main, command: [echo, "${trialParameters.lr}"]}]}}}
"#;

    fn trial(i: u64, acc: Option<f64>, state: TrialState) -> TrialRecord {
        let t0: kestrel_core::Timestamp = "2026-11-23T10:00:00Z".parse().expect("time");
        let mut t = TrialRecord::created(
            "demo",
            format!("demo-trial{i}"),
            i,
            [("lr".to_string(), Value::Double(0.01 * (i + 1) as f64))]
                .into_iter()
                .collect(),
            t0,
        );
        t.state = state;
        t.objective = acc;
        t.completed_at = acc.map(|_| t0 + jiff::SignedDuration::from_secs(10 * (i as i64 + 1)));
        t
    }

    #[test]
    fn the_view_marks_the_best_trial_and_counts_states() {
        let exp =
            kestrel_core::parse_experiment(YAML, &kestrel_algorithms::Catalog).expect("valid");
        let t0 = "2026-11-23T10:00:00Z".parse().expect("time");
        let mut rec = ExperimentRecord::new(exp, YAML.into(), 1, None, t0);
        rec.status.state = ExperimentState::Running;
        rec.status.started_at = Some(t0);
        let trials = vec![
            trial(0, Some(0.81), TrialState::Succeeded),
            trial(1, Some(0.93), TrialState::Succeeded),
            trial(2, None, TrialState::Running),
        ];
        let snap = (rec, trials);
        assert_eq!(best_so_far(&snap), vec![(10.0, 0.81), (20.0, 0.93)]);
        let mut term = Terminal::new(TestBackend::new(100, 30)).expect("terminal");
        term.draw(|f| draw(f, &snap, None)).expect("draw");
        let text: String = term
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect::<Vec<_>>()
            .chunks(100)
            .map(|row| row.concat() + "\n")
            .collect();
        assert!(text.contains("best: accuracy=0.93 (demo-trial1)"), "{text}");
        assert!(text.contains("3 trials: 2 succeeded, 1 running"), "{text}");
        let row = |n: &str| {
            text.lines()
                .find(|l| l.contains(n) && l.contains("Succeeded"))
                .expect("row")
        };
        let best_row = row("demo-trial1");
        assert!(best_row.contains('*'), "{best_row}");
        let other = row("demo-trial0");
        assert!(!other.contains('*'), "{other}");
        // Best first: trial1 is listed above trial0, the running trial last.
        let pos = |n: &str| text.find(n).expect("listed");
        assert!(
            pos("demo-trial1 ") < pos("demo-trial0 ") && pos("demo-trial0 ") < pos("demo-trial2 ")
        );
    }
}
