//! The conformance checks every [`Suggester`] must pass (available to other crates with
//! the `testing` feature). Algorithms call [`check_suggester`] from their tests.

// Test-only code: a failed check panics by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kestrel_core::{AlgorithmSpec, ObjectiveType, SearchSpace, Timestamp, TrialRecord, TrialState};

use crate::{Proposal, SuggestRequest, Suggester, build};

/// A fixed timestamp for fixture trials (algorithms never look at time).
fn epoch() -> Timestamp {
    Timestamp::UNIX_EPOCH
}

fn request<'a>(
    space: &'a SearchSpace,
    history: &'a [TrialRecord],
    count: usize,
    seed: u64,
    first: u64,
) -> SuggestRequest<'a> {
    SuggestRequest {
        space,
        objective: ObjectiveType::Minimize,
        history,
        count,
        seed,
        first_index: first,
        encoded: None,
    }
}

/// A history of `n` trials proposed by `s`, finished in a mix of states: succeeded with an
/// objective, failed, NaN objective, and still running (pending).
pub fn history(s: &dyn Suggester, space: &SearchSpace, n: usize, seed: u64) -> Vec<TrialRecord> {
    let props = s
        .suggest(&request(space, &[], n, seed, 0))
        .unwrap()
        .proposals;
    props
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let mut t =
                TrialRecord::created("exp", format!("exp-{i}"), i as u64, p.assignments, epoch());
            let (state, objective) = match i % 4 {
                0 => (TrialState::Succeeded, Some(i as f64 * 0.1)),
                1 => (TrialState::Failed, None),
                2 => (TrialState::Succeeded, Some(f64::NAN)),
                _ => (TrialState::Running, None),
            };
            t.state = state;
            t.objective = objective;
            t
        })
        .collect()
}

/// Runs every check for the algorithm `name` with `settings` over `space`.
pub fn check_suggester(name: &str, settings: &[(&str, &str)], space: &SearchSpace) {
    let spec = AlgorithmSpec {
        name: name.into(),
        settings: settings
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
    };
    let s = build(&spec, space, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    let s = s.as_ref();
    for with_history in [false, true] {
        let hist = if with_history {
            history(s, space, 8, 99)
        } else {
            vec![]
        };
        let first = hist.len() as u64;
        let at = |count, seed, first_index| {
            s.suggest(&request(space, &hist, count, seed, first_index))
                .unwrap()
                .proposals
        };

        // count = 0 is answered with nothing.
        assert!(at(0, 1, first).is_empty(), "{name}: count 0");
        // Every proposal is feasible.
        let four = at(4, 1, first);
        assert_eq!(four.len(), 4, "{name}: asked for 4");
        for p in &four {
            assert!(
                space.contains(&p.assignments),
                "{name}: infeasible {:?}",
                p.assignments
            );
        }
        // Same seed, same output; another seed, another output.
        assert_eq!(four, at(4, 1, first), "{name}: not deterministic");
        assert_ne!(four, at(4, 2, first), "{name}: ignores the seed");
        // Batching: 1x4 == 2x2 == 4x1 when the earlier proposals are pending.
        let mut batched: Vec<Proposal> = at(2, 1, first);
        let mut hist2 = hist.clone();
        for (i, p) in batched.iter().enumerate() {
            let idx = first + i as u64;
            hist2.push(TrialRecord::created(
                "exp",
                format!("exp-p{i}"),
                idx,
                p.assignments.clone(),
                epoch(),
            ));
        }
        batched.extend(
            s.suggest(&request(space, &hist2, 2, 1, first + 2))
                .unwrap()
                .proposals,
        );
        assert_eq!(four, batched, "{name}: 1x4 differs from 2x2");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_conforms() {
        check_suggester("random", &[], &crate::space::tests::mixed_space());
        check_suggester(
            "random",
            &[("random_state", "3")],
            &crate::space::tests::mixed_space(),
        );
    }

    #[test]
    fn auto_picks_by_budget_and_size() {
        use crate::registry::auto_choice;
        let space = crate::space::tests::mixed_space();
        assert_eq!(auto_choice(&space, Some(100)), "bayesianoptimization");
        assert_eq!(auto_choice(&space, None), "multivariate-tpe");
        assert_eq!(auto_choice(&space, Some(5000)), "multivariate-tpe");
        check_suggester("auto", &[("random_state", "1")], &space);
    }

    #[test]
    fn grid_conforms() {
        let mut space = crate::space::tests::mixed_space();
        // Grid needs a step on every double.
        space
            .params
            .retain(|p| !matches!(p.domain, kestrel_core::Domain::Double { step: None, .. }));
        check_suggester("grid", &[], &space);
    }
}
