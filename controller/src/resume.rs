//! Continuing an experiment with a changed budget, as Katib allows: only
//! `parallelTrialCount`, `maxTrialCount` and `maxFailedTrialCount` may change. A running
//! experiment takes the new counts on its next pass; a finished one runs again when the
//! new budget leaves room, keeping every trial (the model-based algorithms learn from
//! the whole history). Katib restarts only experiments that ended by reaching
//! `maxTrialCount` and whose `resumePolicy` kept the suggestion service; kestrel's
//! suggestions come from the stored history, so every policy can continue, and a
//! stopped experiment can too.

use kestrel_core::status::reason;
use kestrel_core::{Experiment, ExperimentRecord, ExperimentState, Timestamp, TrialCounts};

/// `exp` with the fields a continuation may change set to fixed values.
fn fixed(exp: &Experiment) -> Experiment {
    let mut e = exp.clone();
    e.parallel_trial_count = 0;
    e.max_trial_count = None;
    e.max_failed_trial_count = None;
    e
}

/// The record of `old` continued with `new` (whose trials are counted in `counts`), or
/// why it cannot be; `None` when nothing changes.
pub fn continued(
    old: &ExperimentRecord,
    new: &Experiment,
    source: &str,
    counts: &TrialCounts,
) -> Result<Option<ExperimentRecord>, String> {
    if fixed(&old.spec) != fixed(new) {
        return Err(
            "only parallelTrialCount, maxTrialCount and maxFailedTrialCount can change in a submitted experiment; submit it under another name to change more".into(),
        );
    }
    if old.spec == *new {
        return Ok(None);
    }
    let mut rec = old.clone();
    rec.spec = new.clone();
    rec.source = source.to_string();
    let state = old.status.state;
    if !state.is_terminal() {
        return Ok(Some(rec));
    }
    let room = new.max_trial_count.is_none_or(|m| m > counts.completed());
    let failures_ok = new
        .max_failed_trial_count
        .is_none_or(|m| m > counts.failures());
    let why_not = match (state, old.status.reason.as_str()) {
        (ExperimentState::Succeeded, reason::GOAL_REACHED) => {
            Some("it reached its goal; raise the goal with a new experiment".to_string())
        }
        (ExperimentState::Succeeded, reason::SUGGESTION_END_REACHED) => {
            Some("its search space is exhausted".to_string())
        }
        _ if !room => Some(format!(
            "maxTrialCount must be above the {} trials it completed",
            counts.completed()
        )),
        (ExperimentState::Failed, _) if !failures_ok => Some(format!(
            "maxFailedTrialCount must be above the {} trials that failed",
            counts.failures()
        )),
        _ => None,
    };
    if let Some(why) = why_not {
        return Err(format!(
            "experiment {} ({state}) cannot continue: {why}",
            old.name()
        ));
    }
    rec.status.state = ExperimentState::Running;
    rec.status.reason = reason::RESTARTING.into();
    rec.status.message = "Experiment is restarting with a new budget".into();
    rec.status.completed_at = None;
    rec.status.started_at = rec.status.started_at.or(Some(Timestamp::now()));
    Ok(Some(rec))
}

#[cfg(test)]
mod tests;
