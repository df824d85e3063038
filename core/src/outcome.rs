//! How a finished trial's run becomes its final state: a pure function of how the run
//! ended (exit status, whether and why kestrel stopped it) and whether the trial reported
//! its objective metric, with Katib's rules (a reported objective succeeds a trial that
//! exited 0, even a textual one; exit 0 without it is MetricsUnavailable).

use crate::status::TrialState;

/// Why kestrel stopped a running trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StopReason {
    /// The experiment finished (goal, budget) while the trial ran.
    ExperimentFinished,
    /// The user stopped the experiment.
    Interrupted,
    /// The early-stopping rule judged the trial hopeless.
    EarlyStopped,
}

/// How a trial's run ended, as its executor saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd {
    /// Exit status; `None` when the program was killed by a signal (or its status is
    /// unknown).
    pub code: Option<i32>,
    /// Set when kestrel stopped it.
    pub stopped: Option<StopReason>,
    /// Where its output can be read (a log path, a pod), quoted in messages.
    pub log: Option<String>,
    /// What the executor knows of why it ended (a Job's failure reason and message), for
    /// runs that have no exit status or to explain one.
    pub detail: Option<String>,
}

/// A finished trial's final state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Terminal state.
    pub state: TrialState,
    /// Human-readable message.
    pub message: String,
    /// Whether the objective is recorded as `unavailable` (Katib's MetricsUnavailable).
    pub unavailable: bool,
}

/// The final state of a trial whose run ended as `end`; `reported` says whether the
/// objective metric `metric` was reported at least once.
pub fn outcome(end: &RunEnd, reported: bool, metric: &str) -> Outcome {
    let log = end
        .log
        .as_deref()
        .map(|l| format!(" (log: {l})"))
        .unwrap_or_default();
    let done = |state, message: String| Outcome {
        state,
        message,
        unavailable: false,
    };
    match (end.stopped, end.code) {
        (Some(StopReason::ExperimentFinished), _) => done(
            TrialState::Killed,
            "stopped because the experiment finished".into(),
        ),
        (Some(StopReason::Interrupted), _) => {
            done(TrialState::Killed, "stopped by the user".into())
        }
        (Some(StopReason::EarlyStopped), _) => done(
            TrialState::EarlyStopped,
            format!("Trial is early stopped: its objective fell behind the completed trials'{log}"),
        ),
        (None, Some(0)) if reported => done(TrialState::Succeeded, "Trial has succeeded".into()),
        (None, Some(0)) => Outcome {
            state: TrialState::MetricsUnavailable,
            message: format!("the objective metric {metric:?} was never reported{log}"),
            unavailable: true,
        },
        (None, Some(c)) => {
            let why = end
                .detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            done(
                TrialState::Failed,
                format!("exited with status {c}{why}{log}"),
            )
        }
        (None, None) => match &end.detail {
            Some(d) => done(TrialState::Failed, format!("failed: {d}{log}")),
            None => done(TrialState::Failed, format!("killed by a signal{log}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        use StopReason::{EarlyStopped as Early, ExperimentFinished, Interrupted};
        use TrialState::{EarlyStopped, Failed, Killed, MetricsUnavailable, Succeeded};
        let end = |code, stopped| RunEnd {
            code,
            stopped,
            log: Some("/runs/t/trial.log".into()),
            detail: None,
        };
        // (code, stopped, reported) -> (state, message fragment, unavailable)
        type Row = (
            Option<i32>,
            Option<StopReason>,
            bool,
            TrialState,
            &'static str,
            bool,
        );
        let rows: &[Row] = &[
            (Some(0), None, true, Succeeded, "Trial has succeeded", false),
            (
                Some(0),
                None,
                false,
                MetricsUnavailable,
                "\"loss\" was never reported (log: /runs/t/trial.log)",
                true,
            ),
            (
                Some(3),
                None,
                true,
                Failed,
                "exited with status 3 (log: /runs/t/trial.log)",
                false,
            ),
            (Some(3), None, false, Failed, "exited with status 3", false),
            (None, None, true, Failed, "killed by a signal", false),
            // What kestrel did wins over how the program ended.
            (
                Some(0),
                Some(Early),
                true,
                EarlyStopped,
                "early stopped",
                false,
            ),
            (
                None,
                Some(Early),
                false,
                EarlyStopped,
                "early stopped",
                false,
            ),
            (
                None,
                Some(Interrupted),
                true,
                Killed,
                "stopped by the user",
                false,
            ),
            (
                Some(0),
                Some(ExperimentFinished),
                true,
                Killed,
                "experiment finished",
                false,
            ),
        ];
        for &(code, stopped, reported, state, fragment, unavailable) in rows {
            let o = outcome(&end(code, stopped), reported, "loss");
            assert_eq!(o.state, state, "{code:?} {stopped:?} {reported}");
            assert!(o.message.contains(fragment), "{}", o.message);
            assert_eq!(o.unavailable, unavailable);
        }
        let mut no_log = RunEnd {
            code: Some(1),
            stopped: None,
            log: None,
            detail: None,
        };
        assert_eq!(
            outcome(&no_log, false, "loss").message,
            "exited with status 1"
        );
        // An executor's account of the end is part of the message.
        no_log.detail = Some("OOMKilled".into());
        assert_eq!(
            outcome(&no_log, false, "loss").message,
            "exited with status 1: OOMKilled"
        );
        no_log.code = None;
        no_log.detail =
            Some("BackoffLimitExceeded: Job has reached the specified backoff limit".into());
        let o = outcome(&no_log, true, "loss");
        assert_eq!(o.state, TrialState::Failed);
        assert_eq!(
            o.message,
            "failed: BackoffLimitExceeded: Job has reached the specified backoff limit"
        );
    }
}
