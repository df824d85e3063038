"""A Katib user's view through the official Kubernetes Python client, as the Katib SDK's
`KatibClient.create_experiment` and `get_optimal_hyperparameters` use it: create an
Experiment resource from a Katib YAML file, poll its `status` until it ends, list its
Trial resources. Prints {"status": ..., "trials": [...]} as JSON.

Usage: katib_resources.py KUBECONFIG EXPERIMENT.yaml
"""

import json
import sys
import time

import yaml
from kubernetes import client, config

GROUP, VERSION = "kubeflow.org", "v1beta1"


def main():
    kubeconfig, experiment_file = sys.argv[1], sys.argv[2]
    config.load_kube_config(config_file=kubeconfig)
    api = client.CustomObjectsApi()
    with open(experiment_file) as f:
        body = yaml.safe_load(f)
    name = body["metadata"]["name"]
    namespace = body["metadata"].get("namespace", "default")
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", body)
    deadline = time.time() + 120
    while time.time() < deadline:
        exp = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", name)
        conditions = exp.get("status", {}).get("conditions", [])
        if conditions and conditions[-1]["type"] in ("Succeeded", "Failed"):
            trials = api.list_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                "trials",
                label_selector=f"katib.kubeflow.org/experiment={name}",
            )
            names = [t["metadata"]["name"] for t in trials["items"]]
            print(json.dumps({"status": exp["status"], "trials": names}))
            return 0
        time.sleep(0.2)
    print("the experiment did not end in 120 s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
