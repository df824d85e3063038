"""scikit-optimize's side of kestrel's benchmark: what Katib's `bayesianoptimization`
service runs (skopt.Optimizer with Katib's defaults: `acq_func=gp_hedge`,
`acq_optimizer=auto`, `n_initial_points=10`), one base estimator per method, on the
functions, spaces and budgets of optuna_bench.py (imported from it, so Optuna must be
installed too). Prints JSON lines in kestrel-bench's format.

    python skopt_bench.py quality --seeds 10 --methods RF,ET,GBRT,GP
"""

import argparse
import json
import math
import sys
import time
import warnings

import skopt
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from skopt.space import Categorical, Integer, Real

from optuna_bench import FUNCTIONS

warnings.filterwarnings("ignore")


def dimension(name, d):
    """The skopt dimension of an Optuna distribution and the map from its value back;
    a stepped float becomes an integer number of steps (skopt has no step)."""
    if isinstance(d, CategoricalDistribution):
        return Categorical(list(d.choices), name=name), lambda v: v
    prior = "log-uniform" if getattr(d, "log", False) else "uniform"
    if isinstance(d, IntDistribution):
        return Integer(d.low, d.high, prior=prior, name=name), int
    if isinstance(d, FloatDistribution) and d.step:
        steps = round((d.high - d.low) / d.step)
        return Integer(0, steps, name=name), lambda k, lo=d.low, s=d.step: lo + int(k) * s
    return Real(d.low, d.high, prior=prior, name=name), float


def quality(args):
    for name, (fn, dists, optimum, budget) in FUNCTIONS.items():
        if args.functions and name not in args.functions.split(","):
            continue
        dims = [(k, *dimension(k, d)) for k, d in dists.items()]
        for method in args.methods.split(","):
            for seed in range(args.seeds):
                started = time.time()
                opt = skopt.Optimizer([d for _, d, _ in dims], base_estimator=method,
                                      n_initial_points=10, acq_func="gp_hedge",
                                      acq_optimizer="auto", random_state=seed)
                best = math.inf
                for _ in range(budget):
                    x = opt.ask()
                    y = fn({k: back(v) for (k, _, back), v in zip(dims, x)})
                    opt.tell(x, y)
                    best = min(best, y)
                regret = max(best - optimum, 1e-12)
                print(json.dumps({"kind": "quality", "impl": "skopt",
                                  "method": f"bayesianoptimization:base_estimator={method}",
                                  "function": name, "seed": seed, "budget": budget, "best": best,
                                  "log10_regret": math.log10(regret),
                                  "seconds": time.time() - started}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--seeds", type=int, default=10)
    q.add_argument("--methods", default="RF,ET,GBRT,GP")
    q.add_argument("--functions", default=None)
    args = ap.parse_args()
    print(f"# scikit-optimize {skopt.__version__}", file=sys.stderr)
    quality(args)


if __name__ == "__main__":
    main()
