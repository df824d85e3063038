//! The local driver: reconcile passes in a loop, paced by what each pass asks for, with
//! the experiment's lease renewed between passes, until the experiment finishes or the
//! caller halts it.

use std::future::Future;

use kestrel_core::outcome::StopReason;
use kestrel_core::status::reason;
use kestrel_core::{Experiment, ExperimentState, ExperimentStatus, TrialCounts, TrialRecord};

use super::{Action, ControllerError, Reconciler};
use crate::lease::LeaseGuard;

/// Why [`drive`] is asked to return early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt {
    /// The user stopped the experiment: trials are killed, the experiment is Stopped.
    Stop,
    /// The process is going away (server shutdown): the experiment stays unfinished and
    /// resumes with the next kestrel. Local trials are stopped and run again then; a
    /// cluster's run on and are re-attached (`TrialExecutor::detaches`).
    Suspend,
}

/// A snapshot passed to the progress callback after every pass.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The experiment.
    pub experiment: &'a Experiment,
    /// Every trial, in proposal order.
    pub trials: &'a [TrialRecord],
    /// Their counts by state.
    pub counts: TrialCounts,
}

/// Drives experiment `name` to its end while holding `lease`, or until `shutdown`
/// completes. The lease is released at the end (not when another process took it over).
pub async fn drive(
    r: &Reconciler,
    name: &str,
    mut lease: LeaseGuard,
    shutdown: impl Future<Output = Halt>,
    mut on_progress: impl FnMut(&Progress<'_>),
) -> Result<ExperimentStatus, ControllerError> {
    let exp = r.record(name)?.spec;
    let mut shutdown = std::pin::pin!(shutdown);
    let mut report = |r: &Reconciler| -> Result<(), ControllerError> {
        let trials = r.store.trials(name)?;
        on_progress(&Progress {
            experiment: &exp,
            trials: &trials,
            counts: TrialCounts::of(&trials),
        });
        Ok(())
    };
    let result = loop {
        lease.beat()?;
        let action = match r.reconcile(name).await {
            Ok(a) => a,
            Err(e) => break Err(e),
        };
        if let Err(e) = report(r) {
            break Err(e);
        }
        let wait = match action {
            Action::Done(status) => break Ok(status),
            Action::Requeue(d) => d,
        };
        tokio::select! {
            biased;
            halt = &mut shutdown => {
                if halt == Halt::Suspend && r.executor().detaches() {
                    tracing::info!(experiment = %name, "shutting down; its trials run on and are re-attached by the next kestrel");
                } else {
                    tracing::warn!(experiment = %name, ?halt, "interrupted; stopping running trials");
                }
                let status = r.halt(name, halt).await;
                if status.is_ok() {
                    let _ = report(r);
                }
                break status;
            }
            () = tokio::time::sleep(wait) => {}
        }
    };
    r.executor().drain().await;
    lease.release();
    result
}

impl Reconciler {
    /// Stops experiment `name` (see [`Halt`]).
    pub async fn halt(&self, name: &str, halt: Halt) -> Result<ExperimentStatus, ControllerError> {
        let rec = self.record(name)?;
        if rec.status.state.is_terminal() {
            return Ok(rec.status);
        }
        match halt {
            Halt::Stop => {
                self.end_experiment(
                    &rec,
                    StopReason::Interrupted,
                    ExperimentState::Stopped,
                    reason::STOPPED,
                    "Experiment was stopped by the user",
                )
                .await
            }
            Halt::Suspend => self.suspend(&rec).await,
        }
    }
}
