//! The reconciler's decision as a pure function of trial counts and the spec, with
//! Katib's order of checks: goal reached ⇒ Succeeded; failures reached
//! `maxFailedTrialCount` ⇒ Failed; `maxTrialCount` trials completed ⇒ Succeeded; the
//! algorithm exhausted and nothing running ⇒ Succeeded; otherwise launch
//! `min(parallel, maxTrialCount − completed) − active` new trials.

use kestrel_core::status::reason;
use kestrel_core::{ExperimentState, TrialCounts};

/// What the reconciler knows this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanInput {
    /// Trials per state.
    pub counts: TrialCounts,
    /// `parallelTrialCount`.
    pub parallel: u32,
    /// `maxTrialCount`.
    pub max_trials: Option<u32>,
    /// `maxFailedTrialCount`.
    pub max_failed: Option<u32>,
    /// Whether a completed trial's objective reached the goal.
    pub goal_reached: bool,
    /// Whether the algorithm said it has no more proposals.
    pub exhausted: bool,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Finish the experiment (stopping any running trial).
    Finish {
        /// Terminal state.
        state: ExperimentState,
        /// Katib reason.
        reason: &'static str,
        /// Human-readable message.
        message: String,
    },
    /// Launch this many new trials (0 = just wait).
    Launch(u32),
}

/// Decides the next step.
pub fn plan(i: &PlanInput) -> Plan {
    let c = &i.counts;
    if i.goal_reached {
        return Plan::Finish {
            state: ExperimentState::Succeeded,
            reason: reason::GOAL_REACHED,
            message: "Experiment has succeeded because Objective goal has reached".into(),
        };
    }
    if let Some(m) = i.max_failed
        && c.failures() != 0
        && c.failures() >= m
    {
        return Plan::Finish {
            state: ExperimentState::Failed,
            reason: reason::FAILED,
            message: format!(
                "Experiment has failed because max failed count has reached ({} failed trials)",
                c.failures()
            ),
        };
    }
    if let Some(m) = i.max_trials
        && c.completed() >= m
    {
        return Plan::Finish {
            state: ExperimentState::Succeeded,
            reason: reason::MAX_TRIALS_REACHED,
            message: "Experiment has succeeded because max trial count has reached".into(),
        };
    }
    if i.exhausted {
        if c.active() == 0 {
            return Plan::Finish {
                state: ExperimentState::Succeeded,
                reason: reason::SUGGESTION_END_REACHED,
                message: "Experiment has succeeded because the algorithm has no more suggestions"
                    .into(),
            };
        }
        return Plan::Launch(0);
    }
    let room = i.max_trials.map_or(i.parallel, |m| {
        i.parallel.min(m.saturating_sub(c.completed()))
    });
    Plan::Launch(room.saturating_sub(c.active()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(
        created: u32,
        running: u32,
        succeeded: u32,
        failed: u32,
        unavailable: u32,
    ) -> TrialCounts {
        TrialCounts {
            created,
            running,
            succeeded,
            failed,
            metrics_unavailable: unavailable,
            ..Default::default()
        }
    }

    fn input(c: TrialCounts) -> PlanInput {
        PlanInput {
            counts: c,
            parallel: 3,
            max_trials: Some(10),
            max_failed: Some(2),
            goal_reached: false,
            exhausted: false,
        }
    }

    #[test]
    fn table() {
        let launch = |n| Plan::Launch(n);
        let reason_of = |p: Plan| match p {
            Plan::Finish { reason, .. } => reason,
            Plan::Launch(_) => "launch",
        };
        assert_eq!(plan(&input(counts(0, 0, 0, 0, 0))), launch(3));
        assert_eq!(plan(&input(counts(0, 2, 1, 0, 0))), launch(1));
        assert_eq!(plan(&input(counts(1, 2, 0, 0, 0))), launch(0));
        // Near the budget only the remaining trials are launched.
        assert_eq!(plan(&input(counts(0, 1, 8, 0, 0))), launch(1));
        assert_eq!(plan(&input(counts(0, 2, 8, 0, 0))), launch(0));
        assert_eq!(
            reason_of(plan(&input(counts(0, 0, 10, 0, 0)))),
            reason::MAX_TRIALS_REACHED
        );
        // Failures: metrics-unavailable trials count; goal beats everything.
        assert_eq!(
            reason_of(plan(&input(counts(0, 1, 1, 1, 1)))),
            reason::FAILED
        );
        assert_eq!(plan(&input(counts(0, 1, 1, 1, 0))), launch(2));
        let mut i = input(counts(0, 0, 9, 2, 0));
        i.goal_reached = true;
        assert_eq!(reason_of(plan(&i)), reason::GOAL_REACHED);
        // maxFailedTrialCount 0 fails at the first failure, never before.
        let mut i = input(counts(0, 1, 0, 0, 0));
        i.max_failed = Some(0);
        assert_eq!(plan(&i), launch(2));
        i.counts.failed = 1;
        assert_eq!(reason_of(plan(&i)), reason::FAILED);
        // Exhausted: wait for the running ones, then finish.
        let mut i = input(counts(0, 2, 3, 0, 0));
        i.exhausted = true;
        assert_eq!(plan(&i), launch(0));
        i.counts.running = 0;
        assert_eq!(reason_of(plan(&i)), reason::SUGGESTION_END_REACHED);
        // Unbounded experiments keep the pool full.
        let mut i = input(counts(0, 1, 50, 0, 0));
        i.max_trials = None;
        assert_eq!(plan(&i), launch(2));
    }

    #[test]
    fn never_exceeds_parallelism_or_budget() {
        for parallel in 1..5 {
            for max in [1, 2, 5, 9] {
                for active in 0..=parallel {
                    for done in 0..=max {
                        let c = counts(0, active, done, 0, 0);
                        let i = PlanInput {
                            counts: c,
                            parallel,
                            max_trials: Some(max),
                            max_failed: None,
                            goal_reached: false,
                            exhausted: false,
                        };
                        if let Plan::Launch(n) = plan(&i) {
                            assert!(active + n <= parallel);
                            assert!(done + active + n <= max.max(done + active));
                        }
                    }
                }
            }
        }
    }
}
