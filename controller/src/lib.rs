//! kestrel-controller: runs experiments to completion.
//!
//! # Layout
//! - [`plan`]: the pure decision of each pass (launch n, or finish with reason).
//! - [`executor`]: the [`executor::TrialExecutor`] seam, the local process executor, and
//!   (feature `testing`) a scripted one; [`executor::build`] chooses one at run time.
//! - [`reconciler`]: one level-triggered reconcile pass over an experiment, and the local
//!   driver that runs passes until the experiment ends.
//! - [`lease`]: one process drives an experiment at a time.
//! - [`credentials`]: the secret each trial run gets for reporting about itself.
//! - [`paths`]: trial directories, only under the store.
//! - `early`: early stopping of running trials by their intermediate reports.
//! - [`sink`]: the metrics sink that writes observation logs to the store.
//! - `procinfo`: what `/proc` says about processes (liveness across restarts).

pub mod credentials;
mod early;
pub mod executor;
pub mod lease;
pub mod paths;
pub mod plan;
mod procinfo;
pub mod reconciler;
pub mod resume;
pub mod sink;

pub use reconciler::{Action, ControllerError, Halt, Options, Progress, Reconciler, drive};
