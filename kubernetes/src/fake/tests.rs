//! A real `kube::Client` works against the fake API server.

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::json;

use super::*;

fn job(name: &str) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": {"katib.kubeflow.org/trial": name}},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}}
    }))
    .unwrap()
}

#[tokio::test]
async fn a_kube_client_creates_reads_lists_and_deletes_jobs() {
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client("ns1").unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "ns1");
    let made = jobs
        .create(&PostParams::default(), &job("t-1"))
        .await
        .unwrap();
    assert!(made.metadata.uid.is_some());
    jobs.create(&PostParams::default(), &job("t-2"))
        .await
        .unwrap();
    // Creating it again is a conflict, as on a real cluster.
    match jobs.create(&PostParams::default(), &job("t-1")).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 409),
        other => panic!("{other:?}"),
    }
    // The test plays the Job controller.
    assert!(server.set_status(
        "batch/v1",
        "jobs",
        "ns1",
        "t-1",
        json!({"conditions": [{"type": "Complete", "status": "True"}]})
    ));
    let got = jobs.get("t-1").await.unwrap();
    let cond = &got.status.unwrap().conditions.unwrap()[0];
    assert_eq!(
        (cond.type_.as_str(), cond.status.as_str()),
        ("Complete", "True")
    );
    let listed = jobs
        .list(&ListParams::default().labels("katib.kubeflow.org/trial=t-2"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    jobs.delete("t-1", &DeleteParams::foreground())
        .await
        .unwrap();
    match jobs.get("t-1").await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.objects("batch/v1", "jobs", "ns1").len(), 1);
}

#[tokio::test]
async fn discovery_finds_dynamic_kinds_and_rbac_denials_are_403() {
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client("ns1").unwrap();
    let gvk = GroupVersionKind::gvk("kubeflow.org", "v1", "PyTorchJob");
    let (resource, _caps) = kube::discovery::pinned_kind(&client, &gvk).await.unwrap();
    assert_eq!(resource.plural, "pytorchjobs");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "ns1", &resource);
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
        "metadata": {"name": "p-1"}, "spec": {"pytorchReplicaSpecs": {}}
    }))
    .unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
    assert!(
        server
            .object("kubeflow.org/v1", "pytorchjobs", "ns1", "p-1")
            .is_some()
    );
    server.deny("create", "jobs");
    let jobs: Api<Job> = Api::namespaced(client, "ns1");
    match jobs.create(&PostParams::default(), &job("t-3")).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403);
            assert!(
                s.message.contains("cannot create resource \"jobs\""),
                "{}",
                s.message
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn watches_stream_the_changes_after_a_version_that_match_the_selector() {
    use futures::StreamExt;
    use kube::api::{WatchEvent, WatchParams};
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client("ns1").unwrap();
    let jobs: Api<Job> = Api::namespaced(client, "ns1");
    jobs.create(&PostParams::default(), &job("t-1"))
        .await
        .unwrap();
    let version = jobs
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = jobs
        .watch(
            &WatchParams::default().labels("katib.kubeflow.org/trial=t-2"),
            &version,
        )
        .await
        .unwrap()
        .boxed();
    // t-1 changes: not selected. t-2 is created, changed and deleted: three events.
    server.set_status("batch/v1", "jobs", "ns1", "t-1", json!({"active": 1}));
    jobs.create(&PostParams::default(), &job("t-2"))
        .await
        .unwrap();
    server.set_status("batch/v1", "jobs", "ns1", "t-2", json!({"active": 1}));
    assert!(server.delete("batch/v1", "jobs", "ns1", "t-2"));
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match events.next().await.unwrap().unwrap() {
            WatchEvent::Added(j) => seen.push(("added", j.metadata.name.unwrap())),
            WatchEvent::Modified(j) => seen.push(("modified", j.metadata.name.unwrap())),
            WatchEvent::Deleted(j) => seen.push(("deleted", j.metadata.name.unwrap())),
            other => panic!("{other:?}"),
        }
    }
    let t2 = "t-2".to_string();
    assert_eq!(
        seen,
        [
            ("added", t2.clone()),
            ("modified", t2.clone()),
            ("deleted", t2)
        ]
    );
    // A watch from no version starts with the current objects; existence selectors work.
    let mut from_now = jobs
        .watch(
            &WatchParams::default().labels("katib.kubeflow.org/trial"),
            "0",
        )
        .await
        .unwrap()
        .boxed();
    match from_now.next().await.unwrap().unwrap() {
        WatchEvent::Added(j) => assert_eq!(j.metadata.name.as_deref(), Some("t-1")),
        other => panic!("{other:?}"),
    }
    server.deny("watch", "jobs");
    assert!(jobs.watch(&WatchParams::default(), "0").await.is_err());
}

#[tokio::test]
async fn finalizers_hold_a_deletion_and_owned_objects_go_with_their_owner() {
    let server = FakeApiServer::start().await.unwrap();
    server.create(
        "experiments",
        "ns1",
        json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
               "metadata": {"name": "e", "finalizers": ["kestrel"]}}),
    );
    let uid = server
        .object("kubeflow.org/v1beta1", "experiments", "ns1", "e")
        .unwrap()["metadata"]["uid"]
        .clone();
    server.create(
        "jobs",
        "ns2",
        json!({"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": "j", "ownerReferences": [{"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "name": "e", "uid": uid}]}}),
    );
    // Listing every namespace.
    let client = server.client("ns1").unwrap();
    let all: Api<Job> = Api::all(client.clone());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    // Deleting marks it; removing the finalizer ends it, and its Job goes with it.
    assert!(server.delete("kubeflow.org/v1beta1", "experiments", "ns1", "e"));
    let marked = server
        .object("kubeflow.org/v1beta1", "experiments", "ns1", "e")
        .unwrap();
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    assert!(server.object("batch/v1", "jobs", "ns2", "j").is_some());
    let gvk = GroupVersionKind::gvk("kubeflow.org", "v1beta1", "Experiment");
    let (ar, _) = kube::discovery::pinned_kind(&client, &gvk).await.unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(client, "ns1", &ar);
    api.patch(
        "e",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(
        server
            .object("kubeflow.org/v1beta1", "experiments", "ns1", "e")
            .is_none()
    );
    assert!(
        server.object("batch/v1", "jobs", "ns2", "j").is_none(),
        "collected"
    );
}

#[tokio::test]
async fn a_spec_change_is_a_new_generation_and_a_status_change_is_not() {
    let server = FakeApiServer::start().await.unwrap();
    let jobs: Api<Job> = Api::namespaced(server.client("ns1").unwrap(), "ns1");
    jobs.create(&PostParams::default(), &job("g-1"))
        .await
        .unwrap();
    let generation = |j: Job| j.metadata.generation;
    assert_eq!(generation(jobs.get("g-1").await.unwrap()), Some(1));
    assert!(server.set_status("batch/v1", "jobs", "ns1", "g-1", json!({"active": 1})));
    assert_eq!(generation(jobs.get("g-1").await.unwrap()), Some(1));
    assert!(server.patch(
        "batch/v1",
        "jobs",
        "ns1",
        "g-1",
        &json!({"spec": {"parallelism": 2}})
    ));
    assert_eq!(generation(jobs.get("g-1").await.unwrap()), Some(2));
}
