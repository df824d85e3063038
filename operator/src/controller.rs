//! The operator's reconcile loop: a kube-runtime `Controller` of Experiment resources
//! (all namespaces) that owns their Trial resources. One pass for an Experiment:
//! - being deleted: stop it, delete its records (trials, observation logs, run
//!   directories), then release the finalizer; its Trial resources and their run objects
//!   go with it (ownerReferences);
//! - new: the finalizer is added and the resource's spec is submitted to kestrel's
//!   manager, validated as `kestrel validate` does; an invalid one gets a `Failed`
//!   condition (reason `ExperimentInvalid`) naming every problem;
//! - changed (`kubectl edit`, `apply`): a new `parallelTrialCount`, `maxTrialCount` or
//!   `maxFailedTrialCount` is applied; a finished experiment with room in its new budget
//!   runs again (`Restarting`), keeping its trials (`kestrel_controller::resume`);
//! - always: its status and its Trials' are made equal to kestrel's records (patched
//!   only when something changed), and it is looked at again in a second while running.
//!
//! kestrel's store stays the working state (experiments resume from it after a restart,
//! as `kestrel serve` does); the resources show it in Katib's shape.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kestrel_core::Timestamp;
use kestrel_server::ManagerService;
use kube::Resource;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::watcher;
use serde_json::{Value as Json, json};

use crate::resources::{differs, experiments, status_patch, sync_trials, trials};
use crate::status::experiment_status;

/// The finalizer the operator puts on Experiments: their records go before they do.
pub const FINALIZER: &str = "kestrel.kubeflow.org/cleanup";

/// What a pass could not do (it is retried).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorError {
    /// The API server refused or failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// kestrel's manager refused or failed.
    #[error("kestrel: {0}")]
    Manager(String),
}

/// What every pass needs.
pub struct Context {
    /// The API client.
    pub client: kube::Client,
    /// kestrel's experiments.
    pub manager: ManagerService,
    /// Publishes Events about Experiments and Trials.
    pub recorder: Recorder,
    /// The generation of each Experiment (by name, with its uid) whose spec was last
    /// applied: an edit is applied once, not on every pass.
    pub applied: std::sync::Mutex<std::collections::HashMap<String, (String, i64)>>,
}

/// The last condition of a status: (type, reason, message).
fn last_condition(status: Option<&Json>) -> Option<(String, String, String)> {
    let c = status?.get("conditions")?.as_array()?.last()?;
    let text = |k: &str| {
        c.get(k)
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Some((text("type"), text("reason"), text("message")))
}

/// An Event when `wanted`'s last condition differs from `current`'s: a Warning for
/// failures, Normal otherwise.
pub async fn announce(
    recorder: &Recorder,
    object: &DynamicObject,
    resource: &kube::core::ApiResource,
    current: Option<&Json>,
    wanted: &Json,
) {
    let Some((kind, reason, _)) = last_condition(Some(wanted)) else {
        return;
    };
    let seen = last_condition(current).is_some_and(|(k, r, _)| k == kind && r == reason);
    // An Experiment's Created is announced when it is submitted (its first status may
    // already say Running); a Trial's is not worth one.
    if seen || kind == "Created" {
        return;
    }
    publish(recorder, object, resource, wanted).await;
}

/// An Event of `status`'s last condition about `object`.
async fn publish(
    recorder: &Recorder,
    object: &DynamicObject,
    resource: &kube::core::ApiResource,
    status: &Json,
) {
    let Some((kind, reason, message)) = last_condition(Some(status)) else {
        return;
    };
    let warning = matches!(kind.as_str(), "Failed" | "MetricsUnavailable");
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: if reason.is_empty() {
            kind.clone()
        } else {
            reason
        },
        note: (!message.is_empty()).then(|| kestrel_core::error::bounded(message)),
        action: kind,
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &object.object_ref(resource)).await {
        tracing::debug!(error = %e, "cannot publish an Event");
    }
}

fn manager_error(s: &tonic::Status) -> OperatorError {
    OperatorError::Manager(s.message().to_string())
}

/// The resource as the YAML (JSON) document kestrel parses.
fn document(cr: &DynamicObject) -> String {
    let mut metadata = serde_json::Map::new();
    metadata.insert("name".into(), json!(cr.metadata.name));
    metadata.insert("namespace".into(), json!(cr.metadata.namespace));
    if let Some(l) = &cr.metadata.labels {
        metadata.insert("labels".into(), json!(l));
    }
    if let Some(a) = &cr.metadata.annotations {
        let kept: std::collections::BTreeMap<&String, &String> = a
            .iter()
            .filter(|(k, _)| k.as_str() != "kubectl.kubernetes.io/last-applied-configuration")
            .collect();
        metadata.insert("annotations".into(), json!(kept));
    }
    json!({
        "apiVersion": crate::API_VERSION,
        "kind": "Experiment",
        "metadata": metadata,
        "spec": cr.data.get("spec").cloned().unwrap_or(Json::Null),
    })
    .to_string()
}

fn invalid(message: &str) -> Json {
    let now = Timestamp::now().to_string();
    json!({"conditions": [{"type": "Failed", "status": "True", "reason": "ExperimentInvalid",
        "message": message, "lastUpdateTime": now, "lastTransitionTime": now}]})
}

async fn set_status(
    api: &Api<DynamicObject>,
    cr: &DynamicObject,
    wanted: &Json,
    recorder: &Recorder,
) -> Result<(), kube::Error> {
    let current = cr.data.get("status");
    if differs(current, wanted) {
        announce(recorder, cr, &experiments(), current, wanted).await;
        let name = cr.metadata.name.clone().unwrap_or_default();
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(status_patch(current, wanted)),
        )
        .await?;
    }
    Ok(())
}

fn finalizers(cr: &DynamicObject) -> Vec<String> {
    cr.metadata.finalizers.clone().unwrap_or_default()
}

async fn set_finalizers(
    api: &Api<DynamicObject>,
    name: &str,
    list: Vec<String>,
) -> Result<(), kube::Error> {
    let patch = Patch::Merge(json!({"metadata": {"finalizers": list}}));
    match api.patch(name, &PatchParams::default(), &patch).await {
        Ok(_) => Ok(()),
        // Already gone (a pass on a stale copy of a deleted Experiment).
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes everything kestrel keeps of the experiment, then its finalizer.
async fn clean_up(
    cr: &DynamicObject,
    api: &Api<DynamicObject>,
    ctx: &Context,
) -> Result<Action, OperatorError> {
    let name = cr.metadata.name.clone().unwrap_or_default();
    let ours = |rec_ns: &Option<String>| *rec_ns == cr.metadata.namespace;
    if let Ok((rec, _)) = ctx.manager.snapshot(&name).await
        && ours(&rec.spec.namespace)
    {
        ctx.manager
            .stop(&name)
            .await
            .map_err(|e| manager_error(&e))?;
        match ctx.manager.delete(&name).await {
            Ok(()) => {}
            Err(e) if e.code() == tonic::Code::NotFound => {}
            Err(e) => return Err(manager_error(&e)),
        }
        tracing::info!(experiment = %name, "deleted with its Experiment resource");
    }
    let rest: Vec<String> = finalizers(cr)
        .into_iter()
        .filter(|f| f != FINALIZER)
        .collect();
    set_finalizers(api, &name, rest).await?;
    Ok(Action::await_change())
}

/// One pass over an Experiment resource.
pub async fn reconcile(cr: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, OperatorError> {
    let name = cr.metadata.name.clone().unwrap_or_default();
    let namespace = cr
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &namespace, &experiments());
    if cr.metadata.deletion_timestamp.is_some() {
        return if finalizers(&cr).iter().any(|f| f == FINALIZER) {
            clean_up(&cr, &api, &ctx).await
        } else {
            Ok(Action::await_change())
        };
    }
    if !finalizers(&cr).iter().any(|f| f == FINALIZER) {
        let mut list = finalizers(&cr);
        list.push(FINALIZER.into());
        set_finalizers(&api, &name, list).await?;
    }
    let (rec, records) = match ctx.manager.snapshot(&name).await {
        Ok(found) => found,
        Err(e) if e.code() == tonic::Code::NotFound => {
            match ctx.manager.submit(document(&cr), None, None, "").await {
                Ok(_) => {
                    tracing::info!(experiment = %name, namespace = %namespace, "Experiment resource submitted");
                    let created = json!({"conditions": [{"type": "Created", "reason": kestrel_core::status::reason::CREATED,
                        "message": "Experiment is created"}]});
                    publish(&ctx.recorder, &cr, &experiments(), &created).await;
                    ctx.manager
                        .snapshot(&name)
                        .await
                        .map_err(|e| manager_error(&e))?
                }
                Err(e) if e.code() == tonic::Code::InvalidArgument => {
                    set_status(&api, &cr, &invalid(e.message()), &ctx.recorder).await?;
                    return Ok(Action::await_change());
                }
                Err(e) => return Err(manager_error(&e)),
            }
        }
        Err(e) => return Err(manager_error(&e)),
    };
    if rec.spec.namespace.as_deref().unwrap_or("default") != namespace {
        let message = format!(
            "an experiment named {name} already runs in namespace {}; kestrel keeps one experiment per name",
            rec.spec.namespace.as_deref().unwrap_or("default")
        );
        set_status(&api, &cr, &invalid(&message), &ctx.recorder).await?;
        return Ok(Action::await_change());
    }
    // A changed budget (kubectl edit, apply): a finished experiment runs again. Applied
    // once per generation of the resource (an unchanged one is not parsed every second).
    let generation = (
        cr.metadata.uid.clone().unwrap_or_default(),
        cr.metadata.generation.unwrap_or(0),
    );
    let seen = ctx
        .applied
        .lock()
        .map(|m| m.get(&name) == Some(&generation))
        .unwrap_or(false);
    let (rec, records) = if seen {
        (rec, records)
    } else {
        let mut settled = true;
        let applied = match ctx.manager.update(document(&cr), &name).await {
            Ok(None) => (rec, records),
            Ok(Some(_)) => ctx
                .manager
                .snapshot(&name)
                .await
                .map_err(|e| manager_error(&e))?,
            Err(e) => {
                tracing::warn!(experiment = %name, error = %e.message(), "the changed Experiment is not applied");
                // A refused edit stays refused; a failure of the store is tried again.
                settled = matches!(
                    e.code(),
                    tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition
                );
                (rec, records)
            }
        };
        if settled && let Ok(mut m) = ctx.applied.lock() {
            m.insert(name.clone(), generation);
        }
        applied
    };
    sync_trials(&ctx.client, &ctx.recorder, &cr, &rec, &records).await?;
    set_status(
        &api,
        &cr,
        &experiment_status(&rec, &records, Timestamp::now()),
        &ctx.recorder,
    )
    .await?;
    Ok(if rec.status.state.is_terminal() {
        Action::requeue(Duration::from_secs(300))
    } else {
        Action::requeue(Duration::from_secs(1))
    })
}

fn retry(_: Arc<DynamicObject>, e: &OperatorError, _: Arc<Context>) -> Action {
    tracing::warn!(error = %e, "reconciling an Experiment failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Reconciles Experiment resources until `shutdown` completes.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    Controller::new_with(
        Api::<DynamicObject>::all_with(client.clone(), &experiments()),
        watcher::Config::default(),
        experiments(),
    )
    .owns_with(
        Api::<DynamicObject>::all_with(client, &trials()),
        trials(),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(shutdown)
    .run(reconcile, retry, ctx)
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "operator controller");
        }
    })
    .await;
}
