//! kestrel-kubernetes: what running trials on Kubernetes needs beyond the API client.
//!
//! # Layout
//! - [`conditions`]: when a trial's object has finished (Katib's GJSON success and failure
//!   conditions).
//! - [`inject`]: Katib labels and metrics collection set up in the primary pod template.
//! - [`pods`]: why a trial's pod cannot make progress (image pull, scheduling, eviction).
//! - `fake` (feature `testing`): an in-memory Kubernetes API server a real `kube::Client`
//!   talks to, for tests without a cluster.
//!
//! The Kubernetes executor (kube-rs, behind the executor seam) builds on these; this crate
//! holds the parts that are pure functions of JSON, tested without a cluster.

pub mod conditions;
#[cfg(feature = "testing")]
pub mod fake;
pub mod inject;
pub mod pods;
