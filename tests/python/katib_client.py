"""An external client of kestrel's gRPC server, written against the repository's .proto
files with grpcio-tools (generated at run time, as any Katib integration would).

Usage: python katib_client.py HOST:PORT PROTO_DIR
Exits non-zero with a message on the first check that fails.
"""

import os
import subprocess
import sys
import tempfile


def generate(proto_dir, out):
    files = ["api/v1beta1/api.proto", "health/health.proto"]
    cmd = [sys.executable, "-m", "grpc_tools.protoc", "-I", proto_dir,
           "--python_out", out, "--grpc_python_out", out] + files
    subprocess.run(cmd, check=True)
    # The generated modules import each other by package path.
    for d, _, _ in os.walk(out):
        open(os.path.join(d, "__init__.py"), "a").close()
    sys.path.insert(0, out)


def check(cond, what):
    if not cond:
        print("FAILED: " + what, file=sys.stderr)
        sys.exit(1)
    print("ok: " + what)


def main():
    target, proto_dir = sys.argv[1], sys.argv[2]
    out = tempfile.mkdtemp(prefix="kestrel-py-")
    generate(proto_dir, out)
    import grpc
    from api.v1beta1 import api_pb2 as pb
    from api.v1beta1 import api_pb2_grpc as rpc
    from health import health_pb2, health_pb2_grpc

    channel = grpc.insecure_channel(target)
    grpc.channel_ready_future(channel).result(timeout=10)

    health = health_pb2_grpc.HealthStub(channel)
    r = health.Check(health_pb2.HealthCheckRequest(service="manager.v1beta1.Suggestion"))
    check(r.status == health_pb2.HealthCheckResponse.SERVING, "health SERVING for Katib's probe name")

    spec = pb.ExperimentSpec(
        parameter_specs=pb.ExperimentSpec.ParameterSpecs(parameters=[
            pb.ParameterSpec(name="lr", parameter_type=pb.DOUBLE,
                             feasible_space=pb.FeasibleSpace(min="0.001", max="0.1",
                                                             distribution=pb.LOG_UNIFORM)),
            pb.ParameterSpec(name="layers", parameter_type=pb.INT,
                             feasible_space=pb.FeasibleSpace(min="1", max="5")),
            pb.ParameterSpec(name="optimizer", parameter_type=pb.CATEGORICAL,
                             feasible_space=pb.FeasibleSpace(list=["sgd", "adam"])),
        ]),
        objective=pb.ObjectiveSpec(type=pb.MAXIMIZE, objective_metric_name="accuracy"),
        algorithm=pb.AlgorithmSpec(algorithm_name="tpe", algorithm_settings=[
            pb.AlgorithmSetting(name="n_startup_trials", value="3")]),
        parallel_trial_count=2, max_trial_count=12)
    experiment = pb.Experiment(name="py-client", spec=spec)
    suggestion = rpc.SuggestionStub(channel)
    suggestion.ValidateAlgorithmSettings(pb.ValidateAlgorithmSettingsRequest(experiment=experiment))
    check(True, "ValidateAlgorithmSettings accepts tpe")

    trials = []
    for round_ in range(3):
        reply = suggestion.GetSuggestions(pb.GetSuggestionsRequest(
            experiment=experiment, trials=trials, current_request_number=2,
            total_request_number=len(trials) + 2))
        check(len(reply.parameter_assignments) == 2, "round %d: exactly 2 assignments" % round_)
        for a in reply.parameter_assignments:
            values = {p.name: p.value for p in a.assignments}
            check(a.trial_name.startswith("py-client-"), "trial_name %s" % a.trial_name)
            check(0.001 <= float(values["lr"]) <= 0.1, "lr %s in range" % values["lr"])
            check(values["optimizer"] in ("sgd", "adam"), "optimizer %s" % values["optimizer"])
            acc = 1.0 - abs(float(values["lr"]) - 0.01) - 0.01 * int(values["layers"])
            trials.append(pb.Trial(
                name=a.trial_name,
                spec=pb.TrialSpec(parameter_assignments=pb.TrialSpec.ParameterAssignments(
                    assignments=a.assignments)),
                status=pb.TrialStatus(
                    condition=pb.TrialStatus.SUCCEEDED,
                    start_time="2026-11-23T10:00:00Z", completion_time="2026-11-23T10:01:00Z",
                    observation=pb.Observation(metrics=[pb.Metric(name="accuracy", value=str(acc))]))))
    check(len({t.name for t in trials}) == 6, "six distinct trial names")

    bad = pb.Experiment()
    bad.CopyFrom(experiment)
    bad.spec.algorithm.algorithm_settings.add(name="not_a_setting", value="1")
    try:
        suggestion.ValidateAlgorithmSettings(pb.ValidateAlgorithmSettingsRequest(experiment=bad))
        check(False, "an unknown setting is refused")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and "not_a_setting" in e.details(),
              "unknown setting -> INVALID_ARGUMENT naming it")

    db = rpc.DBManagerStub(channel)
    db.ReportObservationLog(pb.ReportObservationLogRequest(
        trial_name="py-trial", observation_log=pb.ObservationLog(metric_logs=[
            pb.MetricLog(time_stamp="2026-11-23T10:00:01Z", metric=pb.Metric(name="accuracy", value="0.8")),
            pb.MetricLog(time_stamp="2026-11-23T10:00:02Z", metric=pb.Metric(name="accuracy", value="0.9")),
        ])))
    got = db.GetObservationLog(pb.GetObservationLogRequest(trial_name="py-trial", metric_name="accuracy"))
    check([m.metric.value for m in got.observation_log.metric_logs] == ["0.8", "0.9"],
          "observation log reads back in time order")
    db.DeleteObservationLog(pb.DeleteObservationLogRequest(trial_name="py-trial"))
    got = db.GetObservationLog(pb.GetObservationLogRequest(trial_name="py-trial"))
    check(len(got.observation_log.metric_logs) == 0, "observation log deleted")
    print("python client: all checks passed")


if __name__ == "__main__":
    main()
