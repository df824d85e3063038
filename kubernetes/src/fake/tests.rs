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
