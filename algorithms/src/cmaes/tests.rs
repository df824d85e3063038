//! CMA-ES: conformance, convergence, restarts and settings.

use super::*;
use kestrel_core::{ObjectiveType, Timestamp, Value};

fn box_space(d: usize) -> SearchSpace {
    crate::space::tests::unit_cube(d)
}

fn run(algo: &CmaEs, space: &SearchSpace, budget: u64, f: impl Fn(&[f64]) -> f64) -> f64 {
    let mut history: Vec<TrialRecord> = Vec::new();
    let mut best = f64::INFINITY;
    for k in 0..budget {
        let req = SuggestRequest {
            space,
            objective: ObjectiveType::Minimize,
            history: &history,
            count: 1,
            seed: 11,
            first_index: k,
            encoded: None,
        };
        let p = algo.suggest(&req).unwrap().proposals.pop().unwrap();
        let x: Vec<f64> = (0..space.len())
            .map(|i| match p.assignments[&format!("x{i}")] {
                Value::Double(v) => v,
                _ => unreachable!(),
            })
            .collect();
        let y = f(&x);
        best = best.min(y);
        let mut t = TrialRecord::created(
            "e",
            format!("e-{k}"),
            k,
            p.assignments,
            Timestamp::UNIX_EPOCH,
        );
        t.state = TrialState::Succeeded;
        t.objective = Some(y);
        history.push(t);
    }
    best
}

#[test]
fn conforms() {
    crate::testing::check_suggester("cmaes", &[], &crate::space::tests::mixed_space());
    crate::testing::check_suggester(
        "cmaes",
        &[("restart_strategy", "ipop"), ("sigma", "0.3")],
        &crate::space::tests::mixed_space(),
    );
}

#[test]
fn converges_on_a_sphere() {
    let space = box_space(5);
    let algo = CmaEs::new(&[], &space).unwrap();
    let best = run(&algo, &space, 400, |x| {
        x.iter().map(|v| (v - 0.3).powi(2)).sum()
    });
    assert!(best < 1e-6, "best {best}");
}

#[test]
fn ipop_doubles_the_population_at_each_restart() {
    let space = box_space(4);
    let raw = vec![("restart_strategy".to_string(), "ipop".to_string())];
    let algo = CmaEs::new(&raw, &space).unwrap();
    let base = default_lambda(4);
    assert_eq!(base, 8);
    assert_eq!(algo.initial(1, 0, base, 4).lambda, 8);
    assert_eq!(algo.initial(1, 1, base, 4).lambda, 16);
    assert_eq!(algo.initial(1, 2, base, 4).lambda, 32);
    // A converged distribution triggers the restart.
    let mut s = algo.initial(1, 0, base, 4);
    assert!(!s.converged());
    s.sigma = 1e-12;
    assert!(s.converged());
}

#[test]
fn needs_two_numeric_parameters() {
    let space = box_space(1);
    assert!(matches!(
        CmaEs::new(&[], &space),
        Err(AlgoError::InvalidSpace { .. })
    ));
    let bad = vec![("restart_strategy".to_string(), "sometimes".to_string())];
    assert!(matches!(
        CmaEs::new(&bad, &box_space(3)),
        Err(AlgoError::InvalidSettings(_))
    ));
}

#[test]
fn lq_conforms() {
    crate::testing::check_suggester(
        "cmaes",
        &[("surrogate", "lq")],
        &crate::space::tests::mixed_space(),
    );
    crate::testing::check_suggester(
        "cmaes",
        &[
            ("surrogate", "lq"),
            ("restart_strategy", "bipop"),
            ("popsize", "6"),
        ],
        &crate::space::tests::mixed_space(),
    );
}

#[test]
fn lq_surrogate_needs_far_fewer_trials_on_an_ellipsoid() {
    // A 5-D ellipsoid with condition 1e2: the surrogate ranks whole generations from one
    // or two evaluations, so the same budget goes many generations further.
    let space = box_space(5);
    let f = |x: &[f64]| -> f64 {
        x.iter()
            .enumerate()
            .map(|(i, v)| 10f64.powf(i as f64 / 2.0) * (v - 0.3).powi(2))
            .sum()
    };
    let plain = run(&CmaEs::new(&[], &space).unwrap(), &space, 120, f);
    let raw = vec![("surrogate".to_string(), "lq".to_string())];
    let lq = run(&CmaEs::new(&raw, &space).unwrap(), &space, 120, f);
    assert!(lq < 1e-6, "lq best {lq}");
    assert!(lq < plain * 1e-3, "lq {lq} vs plain {plain}");
}

#[test]
fn popsize_sets_the_first_population() {
    let space = box_space(4);
    let raw = vec![("popsize".to_string(), "12".to_string())];
    assert_eq!(CmaEs::new(&raw, &space).unwrap().base_lambda(), 12);
    assert_eq!(CmaEs::new(&[], &space).unwrap().base_lambda(), 8);
    for bad in [("popsize", "1"), ("surrogate", "gp")] {
        let raw = vec![(bad.0.to_string(), bad.1.to_string())];
        assert!(matches!(
            CmaEs::new(&raw, &space),
            Err(AlgoError::InvalidSettings(_))
        ));
    }
}

/// Katib's goptuna service accepts `restart_strategy` none, ipop and bipop exactly, and
/// refuses anything else (`invalid restart_strategy`). (kestrel trims surrounding
/// whitespace from every setting value first.)
#[test]
fn restart_strategy_is_accepted_and_refused_as_katib_does() {
    for ok in ["none", "ipop", "bipop"] {
        let s = vec![("restart_strategy".to_string(), ok.to_string())];
        assert!(CmaEs::new(&s, &box_space(3)).is_ok(), "{ok}");
    }
    for bad in ["IPOP", "", "sometimes", "i pop"] {
        let s = vec![("restart_strategy".to_string(), bad.to_string())];
        assert!(
            matches!(
                CmaEs::new(&s, &box_space(3)),
                Err(AlgoError::InvalidSettings(_))
            ),
            "{bad:?}"
        );
    }
}
