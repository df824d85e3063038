//! Katib's resources in the cluster as the operator keeps them: the Experiment and Trial
//! API resources, ownerReferences, a Trial resource created for each trial before its
//! run object (which the Trial then owns), and Trial statuses kept equal to kestrel's
//! records.

use std::collections::HashMap;
use std::sync::Arc;

use kestrel_controller::executor::kubernetes::TrialOwner;
use kestrel_controller::executor::{ExecError, RenderedTrial};
use kestrel_core::template::{TrialIdentity, render};
use kestrel_core::{ExperimentRecord, Timestamp, TrialRecord, TrialState};
use kestrel_kubernetes::inject::EXPERIMENT_LABEL;
use kestrel_store::Store;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use serde_json::{Value as Json, json};

use crate::status::trial_resource;

fn katib(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: crate::GROUP.into(),
        version: crate::VERSION.into(),
        api_version: crate::API_VERSION.into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// `experiments.kubeflow.org`.
pub fn experiments() -> ApiResource {
    katib("Experiment", "experiments")
}

/// `trials.kubeflow.org`.
pub fn trials() -> ApiResource {
    katib("Trial", "trials")
}

/// A controller ownerReference to `owner` (deleted with it, in the foreground).
pub fn owner_reference(owner: &DynamicObject, kind: &str) -> Json {
    json!({
        "apiVersion": crate::API_VERSION,
        "kind": kind,
        "name": owner.metadata.name,
        "uid": owner.metadata.uid,
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

fn is_code(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

fn exec_error(what: &str, e: impl std::fmt::Display) -> ExecError {
    ExecError::Invalid(format!("{what}: {e}"))
}

/// Status fields that change on every pass without news.
fn settled(mut status: Json) -> Json {
    if let Some(o) = status.as_object_mut() {
        o.remove("lastReconcileTime");
    }
    status
}

/// Whether `current` (a resource's status) says something other than `wanted`.
pub fn differs(current: Option<&Json>, wanted: &Json) -> bool {
    current.cloned().map(settled) != Some(settled(wanted.clone()))
}

/// A merge patch making a status `current` into `wanted`: the fields `wanted` lacks are
/// removed (set to null), as a merge patch otherwise keeps them.
pub fn status_patch(current: Option<&Json>, wanted: &Json) -> Json {
    let mut patch = wanted.clone();
    if let (Some(Json::Object(old)), Some(new)) = (current, patch.as_object_mut()) {
        for k in old.keys() {
            new.entry(k.clone()).or_insert(Json::Null);
        }
    }
    json!({"status": patch})
}

/// Creates the Trial resource of `t` owned by the Experiment resource `experiment`, or
/// finds it; returns it.
async fn ensure_trial(
    api: &Api<DynamicObject>,
    experiment: &DynamicObject,
    rec: &ExperimentRecord,
    t: &TrialRecord,
    run_spec: Json,
) -> Result<DynamicObject, kube::Error> {
    let mut resource = trial_resource(rec, t, run_spec, Timestamp::now());
    let status = resource
        .as_object_mut()
        .and_then(|o| o.remove("status"))
        .unwrap_or(Json::Null);
    resource["metadata"]["ownerReferences"] = json!([owner_reference(experiment, "Experiment")]);
    let object: DynamicObject =
        serde_json::from_value(resource).map_err(kube::Error::SerdeError)?;
    let made = match api.create(&PostParams::default(), &object).await {
        Ok(o) => o,
        Err(e) if is_code(&e, 409) => return api.get(&t.name).await,
        Err(e) => return Err(e),
    };
    api.patch_status(
        &t.name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await?;
    Ok(made)
}

/// The operator's owner of trial objects: each trial's Trial resource, made just before
/// the trial's object.
pub struct TrialResources {
    client: kube::Client,
    store: Arc<dyn Store>,
}

impl TrialResources {
    /// Owners made with `client`, from the records in `store`.
    pub fn new(client: kube::Client, store: Arc<dyn Store>) -> Self {
        TrialResources { client, store }
    }
}

#[async_trait::async_trait]
impl TrialOwner for TrialResources {
    async fn owner(&self, t: &RenderedTrial) -> Result<Option<Json>, ExecError> {
        let name = &t.experiment.name;
        let experiments: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &t.namespace, &experiments());
        let experiment = match experiments.get(name).await {
            Ok(e) => e,
            // Submitted to kestrel directly, not as a resource: nothing owns the trial.
            Err(e) if is_code(&e, 404) => return Ok(None),
            Err(e) => return Err(exec_error(&format!("reading Experiment {name}"), e)),
        };
        let rec = self
            .store
            .experiment(name)
            .map_err(|e| exec_error("reading the store", e))?
            .ok_or_else(|| ExecError::Invalid(format!("experiment {name} is not stored")))?;
        let trial = self
            .store
            .trial(&t.trial)
            .map_err(|e| exec_error("reading the store", e))?
            .ok_or_else(|| ExecError::Invalid(format!("trial {} is not stored", t.trial)))?;
        let api = Api::namespaced_with(self.client.clone(), &t.namespace, &trials());
        let made = ensure_trial(&api, &experiment, &rec, &trial, t.spec.clone())
            .await
            .map_err(|e| exec_error(&format!("creating Trial {}", t.trial), e))?;
        Ok(Some(owner_reference(&made, "Trial")))
    }
}

/// The rendered run object of `t` (for a Trial resource made after its launch).
fn run_spec(rec: &ExperimentRecord, t: &TrialRecord, namespace: &str) -> Json {
    let values = t
        .assignments
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    let who = TrialIdentity {
        name: &t.name,
        namespace,
    };
    render(&rec.spec.trial_template, &who, &values).unwrap_or(Json::Null)
}

/// Keeps the Trial resources of `experiment` equal to the records `trials`: creates the
/// missing ones of launched trials, patches statuses that changed.
pub async fn sync_trials(
    client: &kube::Client,
    recorder: &kube::runtime::events::Recorder,
    experiment: &DynamicObject,
    rec: &ExperimentRecord,
    records: &[TrialRecord],
) -> Result<(), kube::Error> {
    let namespace = experiment.metadata.namespace.clone().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &trials());
    let listed = api
        .list(&ListParams::default().labels(&format!("{EXPERIMENT_LABEL}={}", rec.name())))
        .await?;
    let existing: HashMap<String, DynamicObject> = listed
        .items
        .into_iter()
        .filter_map(|o| Some((o.metadata.name.clone()?, o)))
        .collect();
    let now = Timestamp::now();
    for t in records {
        let current = match existing.get(&t.name) {
            Some(c) => c.clone(),
            // Made at launch; a trial launched while no resource could be made gets it now.
            None if t.state == TrialState::Created => continue,
            None => ensure_trial(&api, experiment, rec, t, run_spec(rec, t, &namespace)).await?,
        };
        let wanted = trial_resource(rec, t, Json::Null, now)["status"].clone();
        let status = current.data.get("status");
        if differs(status, &wanted) {
            crate::controller::announce(recorder, &current, &trials(), status, &wanted).await;
            let patch = status_patch(status, &wanted);
            api.patch_status(&t.name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
        }
    }
    Ok(())
}
