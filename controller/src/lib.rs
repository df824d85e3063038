//! kestrel-controller: runs an experiment to completion.
//!
//! # Layout
//! - [`plan`]: the pure decision of each reconcile tick (launch n, or finish with reason).
//! - [`executor`]: the [`executor::TrialExecutor`] seam and the local process executor.
//! - [`reconciler`]: the level-triggered loop: read the store, plan, ask for suggestions,
//!   launch, finish trials from their exit status and observation logs.
//! - `early`: early stopping of running trials by their intermediate reports.
//! - [`sink`]: the metrics sink that writes observation logs to the store.
//! - [`grpc`]: the `kestrel serve` server (Katib's services over the store, management).

mod early;
pub mod executor;
pub mod grpc;
pub mod plan;
pub mod reconciler;
pub mod sink;

pub use reconciler::{Controller, ControllerError, Halt, Options, Progress};
