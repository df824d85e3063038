//! kestrel-operator: kestrel as a drop-in for katib-controller. Katib's users submit
//! `Experiment` resources (`kubectl apply`, the Katib and Kubeflow SDKs) and read results
//! from the resources' status; this crate holds what makes kestrel's records look like
//! Katib's resources.
//!
//! # Layout
//! - [`crd`]: the CustomResourceDefinitions of Experiment, Trial and Suggestion, with
//!   Katib's group, version, names and printer columns (`kestrel crd` prints them).
//! - [`status`]: an Experiment's `status` and a Trial resource (spec and status) in
//!   Katib's shape, field by field, from kestrel's experiment and trial records.
//!
//! - [`resources`]: Trial resources made before their run objects (which they own) and
//!   kept equal to kestrel's records.
//! - [`controller`]: the reconcile loop of Experiment resources.
//! - [`serve`]: `kestrel serve --operator`: the server and the loop in one process.
//!
//! `crd` and `status` are pure functions of their inputs, tested without a cluster.

pub mod controller;
pub mod crd;
pub mod leader;
pub mod resources;
pub mod serve;
pub mod status;

/// Katib's API group.
pub const GROUP: &str = "kubeflow.org";
/// Katib's API version of its resources.
pub const VERSION: &str = "v1beta1";
/// `apiVersion` of Katib's resources.
pub const API_VERSION: &str = "kubeflow.org/v1beta1";
