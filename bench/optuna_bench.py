"""Optuna's side of kestrel's benchmark: the same functions, spaces and budgets as
bench/src/functions.rs, one trial at a time (ask/tell), and ask latency after N completed
trials on a 10-D space. Prints JSON lines in kestrel-bench's format.

    python optuna_bench.py quality --seeds 10 --methods random,qmc,tpe,multivariate-tpe,gp,cmaes
    python optuna_bench.py latency --sizes 100,500,1000 --methods tpe,gp
"""

import argparse
import json
import math
import random
import statistics
import sys
import time
import warnings

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

optuna.logging.set_verbosity(optuna.logging.ERROR)
warnings.filterwarnings("ignore")


def xs(p):
    return [p[f"x{i}"] for i in range(len(p))]


def branin(p):
    x = xs(p)
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x[1] - b * x[0] ** 2 + c * x[0] - 6) ** 2 + 10 * (1 - t) * math.cos(x[0]) + 10


H_ALPHA = [1.0, 1.2, 3.0, 3.2]
H_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
H_P = [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
       [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]


def hartmann6(p):
    x = xs(p)
    return -sum(H_ALPHA[i] * math.exp(-sum(H_A[i][j] * (x[j] - H_P[i][j] * 1e-4) ** 2 for j in range(6))) for i in range(4))


def rosenbrock(p):
    x = xs(p)
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(len(x) - 1))


def ackley(p):
    x = xs(p)
    n = len(x)
    s1 = sum(v * v for v in x) / n
    s2 = sum(math.cos(2 * math.pi * v) for v in x) / n
    return -20 * math.exp(-0.2 * math.sqrt(s1)) - math.exp(s2) + 20 + math.e


def levy(p):
    w = [1 + (v - 1) / 4 for v in xs(p)]
    mid = sum((wi - 1) ** 2 * (1 + 10 * math.sin(math.pi * wi + 1) ** 2) for wi in w[:-1])
    return math.sin(math.pi * w[0]) ** 2 + mid + (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)


def mixed(p):
    best_lr, penalty = {"adam": (-3.0, 0.0), "rmsprop": (-2.5, 0.1)}.get(p["optimizer"], (-1.0, 0.3))
    return ((math.log10(p["lr"]) - best_lr) ** 2 + 0.05 * (p["layers"] - 3) ** 2
            + 0.1 * (math.log2(p["units"]) - 7) ** 2 + 2 * (p["dropout"] - 0.3) ** 2 + penalty)


def box(d, lo, hi):
    return {f"x{i}": FloatDistribution(lo, hi) for i in range(d)}


FUNCTIONS = {
    "branin": (branin, {"x0": FloatDistribution(-5, 10), "x1": FloatDistribution(0, 15)}, 0.3978873577297382, 50),
    "hartmann6": (hartmann6, box(6, 0, 1), -3.32236801141551, 100),
    "rosenbrock10": (rosenbrock, box(10, -5, 10), 0.0, 100),
    "ackley5": (ackley, box(5, -32.768, 32.768), 0.0, 100),
    "levy10": (levy, box(10, -10, 10), 0.0, 100),
    "mixed": (mixed, {
        "lr": FloatDistribution(1e-5, 1.0, log=True),
        "layers": IntDistribution(1, 8),
        "units": IntDistribution(16, 1024, log=True),
        "dropout": FloatDistribution(0.0, 0.8, step=0.05),
        "optimizer": CategoricalDistribution(["sgd", "adam", "rmsprop"]),
    }, 0.0, 60),
}


def sampler(method, seed):
    s = optuna.samplers
    if method == "random":
        return s.RandomSampler(seed=seed)
    if method == "qmc":
        return s.QMCSampler(qmc_type="sobol", scramble=True, seed=seed)
    if method == "tpe":
        return s.TPESampler(seed=seed)
    if method == "multivariate-tpe":
        return s.TPESampler(seed=seed, multivariate=True)
    if method == "gp":
        return s.GPSampler(seed=seed)
    if method == "cmaes":
        return s.CmaEsSampler(seed=seed)
    sys.exit(f"unknown method {method}")


def quality(args):
    for name, (fn, dists, optimum, budget) in FUNCTIONS.items():
        if args.functions and name not in args.functions.split(","):
            continue
        for method in args.methods.split(","):
            for seed in range(args.seeds):
                started = time.time()
                study = optuna.create_study(sampler=sampler(method, seed))
                best = math.inf
                for _ in range(budget):
                    trial = study.ask(dists)
                    y = fn(trial.params)
                    study.tell(trial, y)
                    best = min(best, y)
                regret = max(best - optimum, 1e-12)
                print(json.dumps({"kind": "quality", "impl": "optuna", "method": method, "function": name,
                                  "seed": seed, "budget": budget, "best": best, "log10_regret": math.log10(regret),
                                  "seconds": time.time() - started}), flush=True)


def latency(args):
    dists = box(10, 0.0, 1.0)
    for n in [int(v) for v in args.sizes.split(",")]:
        rng = random.Random(n)
        history = [optuna.trial.create_trial(params={k: rng.random() for k in dists}, distributions=dists,
                                             value=rng.random()) for _ in range(n)]
        for method in args.methods.split(","):
            study = optuna.create_study(sampler=sampler(method, 0))
            study.add_trials(history)
            times = []
            for _ in range(args.reps):
                t = time.perf_counter()
                trial = study.ask(dists)
                times.append((time.perf_counter() - t) * 1e3)
                study.tell(trial, rng.random())
            print(json.dumps({"kind": "latency", "impl": "optuna", "method": method, "n": n,
                              "ms": statistics.median(times)}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--seeds", type=int, default=10)
    q.add_argument("--methods", default="random,qmc,tpe,multivariate-tpe,gp,cmaes")
    q.add_argument("--functions", default=None)
    lat = sub.add_parser("latency")
    lat.add_argument("--sizes", default="100,500,1000")
    lat.add_argument("--methods", default="tpe,gp")
    lat.add_argument("--reps", type=int, default=15)
    args = ap.parse_args()
    print(f"# optuna {optuna.__version__}", file=sys.stderr)
    quality(args) if args.cmd == "quality" else latency(args)


if __name__ == "__main__":
    main()
