//! The `watch` screen: its state (selected trial, sort order, a pending confirmation), what
//! each key does to it, and how it is drawn. Pure, so it is tested on ratatui's
//! `TestBackend` without a terminal.

use std::collections::BTreeMap;

use kestrel_core::{
    ExperimentState, MetricLog, ObjectiveType, TrialCounts, TrialRecord, TrialState,
};
use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{
    Axis, Block, Cell, Chart, Dataset, GraphType, Paragraph, Row, Table, TableState,
};

use crate::output;
use crate::source::Snapshot;

/// How the trials are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// Best objective first (running trials by their newest value), then the rest.
    Objective,
    /// Newest trial first.
    Newest,
    /// By status, then best first.
    Status,
    /// By name.
    Name,
}

impl SortKey {
    fn next(self) -> SortKey {
        match self {
            SortKey::Objective => SortKey::Newest,
            SortKey::Newest => SortKey::Status,
            SortKey::Status => SortKey::Name,
            SortKey::Name => SortKey::Objective,
        }
    }

    fn label(self) -> &'static str {
        match self {
            SortKey::Objective => "best first",
            SortKey::Newest => "newest first",
            SortKey::Status => "status",
            SortKey::Name => "name",
        }
    }
}

/// Something a key asks the caller to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing beyond redrawing.
    None,
    /// Leave the view.
    Quit,
    /// Stop the experiment (confirmed).
    Stop,
    /// Delete the experiment (confirmed).
    Delete,
}

/// What the screen shows besides the snapshot.
#[derive(Debug, Clone)]
pub struct View {
    /// Order of the table.
    pub sort: SortKey,
    /// Whether the order is reversed.
    pub reversed: bool,
    /// Name of the selected trial (kept across updates and re-sorting).
    pub selected: Option<String>,
    /// An action waiting for `y`.
    pub confirm: Option<Action>,
    /// A message in the footer (an error, a reconnection, an action's outcome).
    pub note: Option<String>,
    /// Every report of the running trials and the selected one, by trial name.
    pub logs: BTreeMap<String, Vec<MetricLog>>,
    /// Colours on (off with `NO_COLOR`).
    pub color: bool,
    /// Rows the last drawn table showed (for page up and down).
    page: usize,
}

impl View {
    /// A view sorted best first, nothing selected.
    pub fn new(color: bool) -> View {
        View {
            sort: SortKey::Objective,
            reversed: false,
            selected: None,
            confirm: None,
            note: None,
            logs: BTreeMap::new(),
            color,
            page: 10,
        }
    }

    /// The trials in display order.
    pub fn order<'a>(&self, snap: &'a Snapshot) -> Vec<&'a TrialRecord> {
        let (rec, trials) = snap;
        let exp = &rec.spec;
        let mut v: Vec<&TrialRecord> = match self.sort {
            SortKey::Objective => {
                let value = |t: &TrialRecord| t.objective.or_else(|| self.latest(exp, t));
                let maximize = exp.objective.kind == ObjectiveType::Maximize;
                let mut v: Vec<&TrialRecord> = trials.iter().collect();
                v.sort_by(|a, b| match (value(a), value(b)) {
                    (Some(x), Some(y)) => {
                        let o = x.total_cmp(&y);
                        if maximize { o.reverse() } else { o }
                    }
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => a.index.cmp(&b.index),
                });
                v
            }
            SortKey::Newest => {
                let mut v: Vec<&TrialRecord> = trials.iter().collect();
                v.sort_by_key(|t| std::cmp::Reverse(t.index));
                v
            }
            SortKey::Status => {
                let mut v = output::ranked(exp, trials);
                v.sort_by_key(|t| t.state.as_str());
                v
            }
            SortKey::Name => {
                let mut v: Vec<&TrialRecord> = trials.iter().collect();
                v.sort_by(|a, b| a.name.cmp(&b.name));
                v
            }
        };
        if self.reversed {
            v.reverse();
        }
        v
    }

    /// The newest numeric report of the objective of a trial without an objective yet.
    pub fn latest(&self, exp: &kestrel_core::Experiment, t: &TrialRecord) -> Option<f64> {
        if t.objective.is_some() {
            return None;
        }
        self.logs
            .get(&t.name)?
            .iter()
            .rev()
            .filter(|l| l.name == exp.objective.metric)
            .find_map(MetricLog::number)
    }

    /// Trials whose reports the view needs: the running ones and the selected one.
    pub fn wanted(&self, snap: &Snapshot) -> Vec<String> {
        let mut v: Vec<String> = snap
            .1
            .iter()
            .filter(|t| t.state == TrialState::Running)
            .map(|t| t.name.clone())
            .collect();
        if let Some(s) = &self.selected
            && !v.contains(s)
        {
            v.push(s.clone());
        }
        v
    }

    /// Applies a key; returns what the caller must do.
    pub fn on_key(&mut self, key: KeyEvent, snap: &Snapshot) -> Action {
        let ctrl_c =
            key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl_c {
            return Action::Quit;
        }
        if let Some(pending) = self.confirm.take() {
            return if key.code == KeyCode::Char('y') {
                pending
            } else {
                self.note = Some("cancelled".into());
                Action::None
            };
        }
        let order: Vec<String> = self.order(snap).iter().map(|t| t.name.clone()).collect();
        let at = self
            .selected
            .as_ref()
            .and_then(|s| order.iter().position(|n| n == s));
        let last = order.len().saturating_sub(1);
        let target = match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return Action::Quit,
            KeyCode::Down | KeyCode::Char('j') => Some(at.map_or(0, |i| (i + 1).min(last))),
            KeyCode::Up | KeyCode::Char('k') => Some(at.map_or(0, |i| i.saturating_sub(1))),
            KeyCode::PageDown => Some(at.map_or(0, |i| (i + self.page).min(last))),
            KeyCode::PageUp => Some(at.map_or(0, |i| i.saturating_sub(self.page))),
            KeyCode::Home | KeyCode::Char('g') => Some(0),
            KeyCode::End | KeyCode::Char('G') => Some(last),
            KeyCode::Char('s') => {
                self.sort = self.sort.next();
                None
            }
            KeyCode::Char('r') => {
                self.reversed = !self.reversed;
                None
            }
            KeyCode::Char('x') => {
                self.confirm = Some(Action::Stop);
                None
            }
            KeyCode::Char('d') => {
                self.confirm = Some(Action::Delete);
                None
            }
            _ => None,
        };
        if let Some(i) = target {
            self.selected = order.get(i).cloned();
        }
        Action::None
    }

    fn status_style(&self, state: TrialState) -> Style {
        if !self.color {
            return Style::default();
        }
        let c = match state {
            TrialState::Succeeded => Color::Green,
            TrialState::Running => Color::Cyan,
            TrialState::Created => Color::Gray,
            TrialState::EarlyStopped | TrialState::Killed => Color::Yellow,
            _ => Color::Red,
        };
        Style::default().fg(c)
    }
}

/// Best objective so far against seconds since the experiment started, as a step line:
/// the value holds until the next improvement.
pub fn best_so_far(snap: &Snapshot) -> Vec<(f64, f64)> {
    let (rec, trials) = snap;
    let start = rec.status.started_at.unwrap_or(rec.created_at);
    let mut done: Vec<&TrialRecord> = trials
        .iter()
        .filter(|t| t.objective.is_some() && t.completed_at.is_some())
        .collect();
    done.sort_by_key(|t| t.completed_at);
    let maximize = rec.spec.objective.kind == ObjectiveType::Maximize;
    let mut best: Option<f64> = None;
    let mut points: Vec<(f64, f64)> = Vec::new();
    for t in done {
        let (Some(v), Some(at)) = (t.objective, t.completed_at) else {
            continue;
        };
        let secs = at.duration_since(start).as_secs_f64().max(0.0);
        let better = best.is_none_or(|b| if maximize { v > b } else { v < b });
        if better {
            if let Some(b) = best {
                points.push((secs, b));
            }
            best = Some(v);
            points.push((secs, v));
        }
    }
    // Hold the last value to the newest completion.
    if let (Some(b), Some(last)) = (best, trials.iter().filter_map(|t| t.completed_at).max()) {
        let secs = last.duration_since(start).as_secs_f64().max(0.0);
        if points.last().is_some_and(|p| p.0 < secs) {
            points.push((secs, b));
        }
    }
    points
}

fn bounds(points: &[(f64, f64)]) -> (f64, [f64; 2]) {
    let xmax = points.iter().map(|p| p.0).fold(1.0_f64, f64::max);
    (xmax, crate::curve::y_bounds(points))
}

/// Renders the whole screen.
pub fn draw(f: &mut Frame<'_>, snap: &Snapshot, view: &mut View) {
    let (rec, trials) = snap;
    let exp = &rec.spec;
    let chart_height = if f.area().height >= 32 { 11 } else { 8 };
    let [head, charts, table_area, foot] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Length(chart_height),
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

    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(charts);
    let points = best_so_far(snap);
    let (xmax, [ymin, ymax]) = bounds(&points);
    let data = [Dataset::default()
        .marker(Marker::Braille)
        .graph_type(GraphType::Line)
        .data(&points)];
    let chart = Chart::new(data.to_vec())
        .block(Block::bordered().title("best so far, by seconds"))
        .x_axis(
            Axis::default()
                .bounds([0.0, xmax])
                .labels(["0".to_string(), format!("{xmax:.0}")]),
        )
        .y_axis(
            Axis::default()
                .bounds([ymin, ymax])
                .labels([crate::curve::label(ymin), crate::curve::label(ymax)]),
        );
    f.render_widget(chart, left);
    let metric = exp.objective.metric.as_str();
    let selected = view.selected.clone();
    let curve = selected
        .as_ref()
        .and_then(|s| view.logs.get(s))
        .map(|logs| crate::curve::points(logs, metric))
        .unwrap_or_default();
    // Why the selected trial failed goes in the footer (full width).
    let failure = selected
        .as_ref()
        .and_then(|s| trials.iter().find(|t| &t.name == s))
        .filter(|t| t.state.is_failure())
        .map(|t| format!("{} {}: {}", t.name, t.state, t.message));
    let title = match &selected {
        Some(s) => format!("{metric}: {s}"),
        None => "select a trial (↑↓) for its curve".to_string(),
    };
    f.render_widget(crate::curve::chart(title, metric, &curve), right);

    let best = kestrel_core::best_trial(exp, trials).map(|t| t.name.clone());
    let order = view.order(snap);
    let name_width = order
        .iter()
        .map(|t| t.name.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let status_width = order
        .iter()
        .map(|t| t.state.as_str().len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut header_cells = vec![
        String::new(),
        "TRIAL".to_string(),
        "STATUS".into(),
        exp.objective.metric.clone(),
    ];
    header_cells.extend(exp.objective.additional_metrics.iter().cloned());
    header_cells.extend(exp.space.params.iter().map(|p| p.name.clone()));
    let rows: Vec<Row> = order
        .iter()
        .map(|t| {
            let is_best = best.as_deref() == Some(t.name.as_str());
            let value = match (t.objective, view.latest(exp, t)) {
                (Some(v), _) => output::short(&kestrel_core::Value::Double(v)),
                (None, Some(v)) => format!("~{}", output::short(&kestrel_core::Value::Double(v))),
                (None, None) => "-".into(),
            };
            let mut cells = vec![
                Cell::from(if is_best { "*" } else { "" }),
                Cell::from(t.name.clone()),
                Cell::from(t.state.as_str()).style(view.status_style(t.state)),
                Cell::from(value),
            ];
            for m in &exp.objective.additional_metrics {
                let v = output::metric_value(exp, t, m);
                cells.push(Cell::from(
                    v.map(|v| output::short(&kestrel_core::Value::Double(v)))
                        .unwrap_or_else(|| "-".into()),
                ));
            }
            cells.extend(exp.space.params.iter().map(|p| {
                Cell::from(
                    t.assignments
                        .get(&p.name)
                        .map(output::short)
                        .unwrap_or_default(),
                )
            }));
            let row = Row::new(cells);
            if is_best {
                row.style(Style::default().add_modifier(Modifier::BOLD))
            } else {
                row
            }
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(1),
        Constraint::Length(u16::try_from(name_width).unwrap_or(u16::MAX)),
        Constraint::Length(u16::try_from(status_width).unwrap_or(u16::MAX)),
        Constraint::Length(10),
    ];
    widths.extend(
        exp.objective
            .additional_metrics
            .iter()
            .map(|_| Constraint::Length(10)),
    );
    widths.extend(exp.space.params.iter().map(|_| Constraint::Min(6)));
    let mut state = TableState::default().with_selected(
        view.selected
            .as_ref()
            .and_then(|s| order.iter().position(|t| &t.name == s)),
    );
    let title = format!(
        "trials, {}{} (* = best)",
        view.sort.label(),
        if view.reversed { ", reversed" } else { "" }
    );
    let table = Table::new(rows, widths)
        .header(Row::new(header_cells).style(Style::default().add_modifier(Modifier::UNDERLINED)))
        .block(Block::bordered().title(title))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .highlight_symbol(">");
    view.page = usize::from(table_area.height.saturating_sub(3)).max(1);
    f.render_stateful_widget(table, table_area, &mut state);
    let footer = match (view.confirm, &view.note) {
        (Some(Action::Stop), _) => format!("stop experiment {}? y/n", rec.name()),
        (Some(Action::Delete), _) => {
            format!("delete experiment {} and all its trials? y/n", rec.name())
        }
        (_, Some(n)) => format!("q quit · {n}"),
        (_, None) if failure.is_some() => {
            format!("q quit · {}", failure.unwrap_or_default())
        }
        _ => "↑↓ select · s sort · r reverse · x stop · d delete · q quit".to_string(),
    };
    f.render_widget(Paragraph::new(footer), foot);
}

#[cfg(test)]
mod tests;
