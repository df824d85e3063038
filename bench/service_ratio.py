"""GetSuggestions over gRPC against Optuna's in-process TPE ask, in one run (issue 20).

Runs Optuna's `study.ask` after N finished trials (optuna_bench.py latency) and
`kestrel-bench load --clients 1` with N-trial histories, for both load-test clients
(`typed`: the generated client encodes the whole request on every call; `encoded`: the
trials were encoded once, so the time is the service's and the transport's), and prints
each p50 with its ratio to Optuna's TPE ask.

    cargo build --release -p kestrel-bench
    bench/.venv/bin/python bench/service_ratio.py --trials 1000
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def lines(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--methods", default="random,tpe,multivariate-tpe")
    ap.add_argument("--bench", default=os.path.join(ROOT, "target", "release", "kestrel-bench"))
    args = ap.parse_args()
    optuna = lines([sys.executable, os.path.join(HERE, "optuna_bench.py"), "latency",
                    "--sizes", str(args.trials), "--methods", "tpe", "--reps", "15"])
    reference = optuna[0]["ms"]
    print(f"Optuna TPE ask after {args.trials} trials, in process: {reference:.2f} ms")
    print("| client | algorithm | p50 | p99 | p50 / Optuna TPE ask |")
    print("|---|---|---|---|---|")
    for client in ["typed", "encoded"]:
        for r in lines([args.bench, "load", "--clients", "1", "--requests", str(args.requests),
                        "--trials", str(args.trials), "--methods", args.methods,
                        "--client", client]):
            print(f"| {client} | {r['algorithm']} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms "
                  f"| {r['p50_ms'] / reference:.3f} |")


if __name__ == "__main__":
    main()
