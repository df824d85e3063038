#!/usr/bin/env python3
"""A trial that reports its metrics itself (Katib's Push collector).

kestrel (like Katib) gives the trial its name in KATIB_TRIAL_NAME and, from kestrel,
the DBManager's address in KESTREL_DB_MANAGER and the trial's credential in
KESTREL_TRIAL_TOKEN. This trial evaluates a made-up loss of --x and reports it two
ways:
- with kestrel's credential (the default): Katib's gRPC stubs, shipped in the
  kubeflow-katib package, with `authorization: Bearer $KESTREL_TRIAL_TOKEN`;
- with Katib's SDK unchanged (--katib-sdk): `kubeflow.katib.report_metrics`, which
  sends no credential, so kestrel must take Push reports without one
  (`kestrel run|serve --push-auth open`).

Needs: pip install kubeflow-katib
"""

import argparse
import os
import time

DEFAULT_DB_MANAGER = "katib-db-manager.kubeflow:6789"
NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def report_with_credential(metrics):
    import grpc
    from kubeflow.katib import katib_api_pb2 as api
    from kubeflow.katib import katib_api_pb2_grpc as rpc

    address = os.environ.get("KESTREL_DB_MANAGER", DEFAULT_DB_MANAGER)
    token = os.environ["KESTREL_TRIAL_TOKEN"]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    request = api.ReportObservationLogRequest(
        trial_name=os.environ["KATIB_TRIAL_NAME"],
        observation_log=api.ObservationLog(
            metric_logs=[
                api.MetricLog(time_stamp=now, metric=api.Metric(name=k, value=str(v)))
                for k, v in metrics.items()
            ]
        ),
    )
    with grpc.insecure_channel(address) as channel:
        rpc.DBManagerStub(channel).ReportObservationLog(
            request, metadata=(("authorization", f"Bearer {token}"),), timeout=30
        )


def report_with_katib_sdk(metrics):
    from kubeflow.katib import report_metrics
    from kubeflow.katib.utils import utils

    # The SDK reads the pod's namespace; outside a pod there is none.
    if not os.path.exists(NAMESPACE_FILE):
        utils.get_current_k8s_namespace = lambda: "default"
    report_metrics(metrics, db_manager_address=os.environ.get("KESTREL_DB_MANAGER", DEFAULT_DB_MANAGER))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--x", type=float, required=True)
    ap.add_argument("--katib-sdk", action="store_true")
    args = ap.parse_args()
    loss = (args.x - 0.3) ** 2
    metrics = {"loss": loss}
    if args.katib_sdk:
        report_with_katib_sdk(metrics)
    else:
        report_with_credential(metrics)
    print(f"reported loss={loss}")


if __name__ == "__main__":
    main()
