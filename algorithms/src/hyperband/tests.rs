//! Hyperband: bracket arithmetic against hand-computed tables, and simulated runs.

use kestrel_core::{Distribution, ParamSpec, Timestamp, TrialState};

use super::*;

fn table(b: &[Bracket]) -> Vec<Vec<(usize, f64)>> {
    b.iter()
        .map(|b| b.rungs.iter().map(|r| (r.n, r.resource)).collect())
        .collect()
}

#[test]
fn brackets_for_eta_3_match_the_hyperband_paper_table() {
    // Li et al. (2018), Table 1: R = 81, eta = 3.
    assert_eq!(
        table(&brackets(81.0, 3.0)),
        vec![
            vec![(81, 1.0), (27, 3.0), (9, 9.0), (3, 27.0), (1, 81.0)],
            vec![(34, 3.0), (11, 9.0), (3, 27.0), (1, 81.0)],
            vec![(15, 9.0), (5, 27.0), (1, 81.0)],
            vec![(8, 27.0), (2, 81.0)],
            vec![(5, 81.0)],
        ]
    );
}

#[test]
fn brackets_for_eta_2() {
    // s_max = 3; n = ceil(4/(s+1) * 2^s), r = 8 / 2^s, n_i = floor(n / 2^i).
    assert_eq!(
        table(&brackets(8.0, 2.0)),
        vec![
            vec![(8, 1.0), (4, 2.0), (2, 4.0), (1, 8.0)],
            vec![(6, 2.0), (3, 4.0), (1, 8.0)],
            vec![(4, 4.0), (2, 8.0)],
            vec![(4, 8.0)],
        ]
    );
    // r_l below eta: one bracket of plain random search at full resource.
    assert_eq!(table(&brackets(2.0, 3.0)), vec![vec![(1, 2.0)]]);
}

fn space() -> SearchSpace {
    SearchSpace {
        params: vec![
            ParamSpec {
                name: "lr".into(),
                domain: Domain::Double {
                    min: 0.0,
                    max: 1.0,
                    step: None,
                    distribution: Distribution::Uniform,
                },
            },
            ParamSpec {
                name: "epochs".into(),
                domain: Domain::Int {
                    min: 1,
                    max: 9,
                    step: 1,
                    distribution: Distribution::Uniform,
                },
            },
        ],
    }
}

fn hb(settings: &[(&str, &str)]) -> Result<Hyperband, AlgoError> {
    let raw: Vec<(String, String)> = settings
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    Hyperband::new(&raw, &space())
}

#[test]
fn settings_are_checked_against_the_space() {
    assert!(hb(&[("r_l", "9"), ("resource_name", "epochs")]).is_ok());
    for bad in [
        vec![("resource_name", "epochs")],
        vec![("r_l", "9")],
        vec![("r_l", "9"), ("resource_name", "nope")],
        vec![("r_l", "27"), ("resource_name", "epochs")],
        vec![("r_l", "9"), ("resource_name", "epochs"), ("eta", "1")],
        vec![
            ("r_l", "9"),
            ("resource_name", "epochs"),
            ("current_s", "1"),
        ],
    ] {
        assert!(hb(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn katibs_hyperband_example_sets_the_resource_whatever_its_range() {
    // Katib's service overwrites the resource parameter and never reads its range, so its
    // own example (num-epochs fixed at 20 here) must validate and run.
    let yaml = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: hyperband}
spec:
  objective: {type: maximize, objectiveMetricName: accuracy}
  algorithm:
    algorithmName: hyperband
    algorithmSettings:
      - {name: resource_name, value: num-epochs}
      - {name: eta, value: "3"}
      - {name: r_l, value: "20"}
  parallelTrialCount: 9
  maxTrialCount: 9
  parameters:
    - {name: lr, parameterType: double, feasibleSpace: {min: "0.01", max: "0.03"}}
    - {name: num-epochs, parameterType: int, feasibleSpace: {min: "20", max: "20"}}
  trialTemplate:
    primaryContainerName: training
    trialParameters: [{name: lr, reference: lr}, {name: epochs, reference: num-epochs}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec: {template: {spec: {containers: [{name: training, command: [train, "${trialParameters.lr}", "${trialParameters.epochs}"]}]}}}
"#;
    let exp = kestrel_core::parse_experiment(yaml, &crate::Catalog).expect("valid as in Katib");
    let epochs = exp
        .space
        .params
        .iter()
        .find(|p| p.name == "num-epochs")
        .unwrap();
    assert!(
        matches!(
            epochs.domain,
            Domain::Int {
                min: 2,
                max: 20,
                step: 1,
                ..
            }
        ),
        "{:?}",
        epochs.domain
    );
    let h = Hyperband::new(&exp.algorithm.settings, &exp.space).unwrap();
    let req = SuggestRequest {
        space: &exp.space,
        history: &[],
        objective: kestrel_core::ObjectiveType::Maximize,
        count: 9,
        seed: 1,
        first_index: 0,
        encoded: None,
    };
    let out = h.suggest(&req).unwrap();
    let rs: Vec<&Value> = out
        .proposals
        .iter()
        .map(|p| &p.assignments["num-epochs"])
        .collect();
    assert!(
        !rs.is_empty() && rs.iter().all(|v| **v == Value::Int(2)),
        "{rs:?}"
    );
    assert!(
        out.proposals
            .iter()
            .all(|p| exp.space.contains(&p.assignments))
    );
}

#[test]
fn schedules_too_large_to_run_are_refused_before_they_are_built() {
    // eta 1.0001 and r_l 1000 would be 69,000 brackets; eta 1e10 and r_l 1e300, 10^300
    // configurations. Both are refused at once, naming the limit.
    let many = hb(&[
        ("r_l", "1000"),
        ("resource_name", "epochs"),
        ("eta", "1.0001"),
    ]);
    let e = many.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("brackets (at most 32)"), "{e}");
    let huge = hb(&[
        ("r_l", "1e300"),
        ("resource_name", "epochs"),
        ("eta", "1e10"),
    ]);
    let e = huge.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("configurations (at most 1000000)"), "{e}");
}

/// Loss of a configuration trained for `epochs`: lower lr and more epochs are better.
fn loss(a: &kestrel_core::Assignments) -> f64 {
    let Some(Value::Double(lr)) = a.get("lr") else {
        panic!("lr")
    };
    let Some(Value::Int(e)) = a.get("epochs") else {
        panic!("epochs")
    };
    lr + 1.0 / *e as f64
}

/// Runs Hyperband to the end with `parallel` workers, finishing the oldest running trial
/// each round; returns the history.
fn simulate(h: &Hyperband, parallel: usize) -> Vec<TrialRecord> {
    let space = space();
    let mut history: Vec<TrialRecord> = Vec::new();
    for _round in 0..1000 {
        let running = history.iter().filter(|t| !t.state.is_terminal()).count();
        let req = SuggestRequest {
            space: &space,
            objective: ObjectiveType::Minimize,
            history: &history,
            count: parallel - running,
            seed: 3,
            first_index: history.len() as u64,
            encoded: None,
        };
        let out = h.suggest(&req).expect("suggest");
        if out.proposals.is_empty() && !out.waiting && running == 0 {
            return history;
        }
        for p in out.proposals {
            assert!(space.contains(&p.assignments));
            let i = history.len() as u64;
            let mut t = TrialRecord::created(
                "e",
                format!("t{i}"),
                i,
                p.assignments,
                Timestamp::UNIX_EPOCH,
            );
            t.labels = p.labels;
            t.state = TrialState::Running;
            history.push(t);
        }
        if let Some(t) = history.iter_mut().find(|t| t.state == TrialState::Running) {
            t.objective = Some(loss(&t.assignments));
            t.state = TrialState::Succeeded;
        }
    }
    panic!("did not finish");
}

#[test]
fn every_bracket_runs_to_the_end_promoting_the_best() {
    let h = hb(&[("r_l", "9"), ("resource_name", "epochs")]).expect("valid");
    // eta 3, r_l 9: brackets (9@1, 3@3, 1@9), (5@3, 1@9), (3@9).
    for parallel in [1, 3, 4] {
        let history = simulate(&h, parallel);
        assert_eq!(history.len(), 9 + 3 + 1 + 5 + 1 + 3, "parallel {parallel}");
        let rung = |s: u32, i: u32| -> Vec<&TrialRecord> {
            history
                .iter()
                .filter(|t| label(t, BRACKET) == Some(s) && label(t, RUNG) == Some(i))
                .collect()
        };
        for (s, i, n, epochs) in [
            (2, 0, 9, 1),
            (2, 1, 3, 3),
            (2, 2, 1, 9),
            (1, 0, 5, 3),
            (1, 1, 1, 9),
            (0, 0, 3, 9),
        ] {
            let r = rung(s, i);
            assert_eq!(r.len(), n, "bracket {s} rung {i}");
            assert!(
                r.iter()
                    .all(|t| t.assignments["epochs"] == Value::Int(epochs))
            );
        }
        // Rung 1 of bracket 2 continues the three best of rung 0, same lr.
        let mut best0: Vec<&TrialRecord> = rung(2, 0);
        best0.sort_by(|a, b| a.objective.unwrap().total_cmp(&b.objective.unwrap()));
        let parents: BTreeSet<&str> = rung(2, 1)
            .iter()
            .map(|t| t.labels[PARENT].as_str())
            .collect();
        let want: BTreeSet<&str> = best0[..3].iter().map(|t| t.name.as_str()).collect();
        assert_eq!(parents, want);
        for t in rung(2, 1) {
            let p = history
                .iter()
                .find(|x| x.name == t.labels[PARENT])
                .expect("parent");
            assert_eq!(p.assignments["lr"], t.assignments["lr"]);
        }
    }
}

#[test]
fn a_waiting_rung_lets_the_next_bracket_start_and_then_reports_waiting() {
    let h = hb(&[("r_l", "9"), ("resource_name", "epochs")]).expect("valid");
    let space = space();
    let ask = |history: &[TrialRecord], count: usize| {
        h.suggest(&SuggestRequest {
            space: &space,
            objective: ObjectiveType::Minimize,
            history,
            count,
            seed: 1,
            first_index: history.len() as u64,
            encoded: None,
        })
        .expect("suggest")
    };
    let mut history = Vec::new();
    let out = ask(&history, 20);
    // Every bracket's first rung (9 + 5 + 3) starts at once; nothing else can yet.
    assert_eq!(out.proposals.len(), 17);
    assert!(out.waiting);
    for (i, p) in out.proposals.into_iter().enumerate() {
        let mut t = TrialRecord::created(
            "e",
            format!("t{i}"),
            i as u64,
            p.assignments,
            Timestamp::UNIX_EPOCH,
        );
        t.labels = p.labels;
        t.state = TrialState::Running;
        history.push(t);
    }
    let out = ask(&history, 4);
    assert!(out.proposals.is_empty() && out.waiting);
    // The same request gives the same answer on any server (no hidden state).
    assert_eq!(ask(&history, 4), out);
}
