//! The watch screen drawn on a test backend, and what its keys do.

use super::*;
use kestrel_core::{ExperimentRecord, Value};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::KeyEvent;

const YAML: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: demo}
spec:
  objective: {type: maximize, objectiveMetricName: accuracy, additionalMetricNames: [loss]}
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
        format!("demo-a-rather-long-trial-name-{i}"),
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

fn snapshot() -> Snapshot {
    let exp = kestrel_core::parse_experiment(YAML, &kestrel_algorithms::Catalog).expect("valid");
    let t0 = "2026-11-23T10:00:00Z".parse().expect("time");
    let mut rec = ExperimentRecord::new(exp, YAML.into(), 1, None, t0);
    rec.status.state = ExperimentState::Running;
    rec.status.started_at = Some(t0);
    let trials = vec![
        trial(0, Some(0.81), TrialState::Succeeded),
        trial(1, Some(0.93), TrialState::Succeeded),
        trial(2, None, TrialState::Running),
    ];
    (rec, trials)
}

fn log(metric: &str, value: &str) -> MetricLog {
    MetricLog {
        time: jiff::Timestamp::UNIX_EPOCH,
        name: metric.into(),
        value: value.into(),
    }
}

fn screen(snap: &Snapshot, view: &mut View, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    term.draw(|f| draw(f, snap, view)).expect("draw");
    term.backend()
        .buffer()
        .content()
        .iter()
        .map(|c| c.symbol())
        .collect::<Vec<_>>()
        .chunks(usize::from(w))
        .map(|row| row.concat() + "\n")
        .collect()
}

fn key(c: char) -> KeyEvent {
    KeyEvent::from(KeyCode::Char(c))
}

#[test]
fn best_so_far_is_a_step_line_held_to_the_newest_completion() {
    let mut snap = snapshot();
    snap.1.push(trial(3, Some(0.5), TrialState::Succeeded));
    // 0.81 at 10 s, 0.93 at 20 s (a step: 0.81 until then), held to 40 s.
    assert_eq!(
        best_so_far(&snap),
        vec![(10.0, 0.81), (20.0, 0.81), (20.0, 0.93), (40.0, 0.93)]
    );
}

#[test]
fn an_80_by_24_screen_shows_full_names_running_values_and_the_best() {
    let snap = snapshot();
    let mut view = View::new(false);
    view.logs.insert(
        snap.1[2].name.clone(),
        vec![log("accuracy", "0.5"), log("accuracy", "0.97")],
    );
    let text = screen(&snap, &mut view, 80, 24);
    assert!(
        text.contains("best: accuracy=0.93 (demo-a-rather-long-trial-name-1)"),
        "{text}"
    );
    assert!(text.contains("3 trials: 2 succeeded, 1 running"), "{text}");
    for t in &snap.1 {
        assert!(text.contains(&t.name), "{} cut: {text}", t.name);
    }
    // The running trial shows its newest value and, at 0.97, sorts first.
    let running = text.lines().find(|l| l.contains("-name-2")).expect("row");
    assert!(running.contains("~0.97"), "{running}");
    assert!(
        text.find("-name-2 ").unwrap() < text.find("-name-1 ").unwrap(),
        "{text}"
    );
    let best_row = text.lines().find(|l| l.contains("-name-1 ")).expect("row");
    assert!(best_row.contains('*'), "{best_row}");
    assert!(text.contains("loss"), "additional metric column: {text}");
}

#[test]
fn keys_select_sort_reverse_and_confirm() {
    let snap = snapshot();
    let mut view = View::new(false);
    // Nothing selected: the first key down selects the first row (best first).
    assert_eq!(view.on_key(key('j'), &snap), Action::None);
    assert_eq!(view.selected.as_deref(), Some(snap.1[1].name.as_str()));
    view.on_key(key('j'), &snap);
    assert_eq!(view.selected.as_deref(), Some(snap.1[0].name.as_str()));
    view.on_key(KeyEvent::from(KeyCode::End), &snap);
    view.on_key(key('j'), &snap);
    assert_eq!(
        view.selected.as_deref(),
        Some(snap.1[2].name.as_str()),
        "stays on the last"
    );
    // The selected trial's curve is drawn, titled with its name.
    view.logs.insert(
        snap.1[2].name.clone(),
        vec![log("accuracy", "0.2"), log("accuracy", "0.6")],
    );
    let text = screen(&snap, &mut view, 100, 30);
    assert!(
        text.contains("accuracy: demo-a-rather-long-trial-name-2"),
        "{text}"
    );
    // Sorting: newest first, then by status; r reverses; the selection follows its trial.
    view.on_key(key('s'), &snap);
    assert_eq!(view.sort, SortKey::Newest);
    let names: Vec<&str> = view.order(&snap).iter().map(|t| t.name.as_str()).collect();
    assert!(
        names[0].ends_with("-2") && names[2].ends_with("-0"),
        "{names:?}"
    );
    view.on_key(key('r'), &snap);
    let names: Vec<&str> = view.order(&snap).iter().map(|t| t.name.as_str()).collect();
    assert!(names[0].ends_with("-0"), "{names:?}");
    assert!(screen(&snap, &mut view, 100, 30).contains("newest first, reversed"));
    // Stop and delete wait for y; anything else cancels.
    assert_eq!(view.on_key(key('x'), &snap), Action::None);
    assert!(screen(&snap, &mut view, 100, 30).contains("stop experiment demo? y/n"));
    assert_eq!(view.on_key(key('y'), &snap), Action::Stop);
    view.on_key(key('d'), &snap);
    assert_eq!(view.on_key(key('n'), &snap), Action::None);
    assert_eq!(view.note.as_deref(), Some("cancelled"));
    view.on_key(key('d'), &snap);
    assert_eq!(view.on_key(key('y'), &snap), Action::Delete);
    assert_eq!(view.on_key(key('q'), &snap), Action::Quit);
}

#[test]
fn a_selected_failed_trial_shows_why_it_failed() {
    let mut snap = snapshot();
    let mut failed = trial(3, None, TrialState::Failed);
    failed.message = "exit status 2".into();
    snap.1.push(failed);
    let mut view = View::new(false);
    view.selected = Some(snap.1[3].name.clone());
    let text = screen(&snap, &mut view, 120, 30);
    assert!(text.contains("Failed: exit status 2"), "{text}");
}

#[test]
fn running_and_selected_trials_are_the_ones_whose_reports_are_read() {
    let snap = snapshot();
    let mut view = View::new(true);
    assert_eq!(view.wanted(&snap), vec![snap.1[2].name.clone()]);
    view.selected = Some(snap.1[0].name.clone());
    assert_eq!(view.wanted(&snap).len(), 2);
}
