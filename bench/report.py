"""Compare kestrel's and Optuna's benchmark results (JSON lines from kestrel-bench and
optuna_bench.py): median log10 simple regret per function x method, the best method of
each implementation per function, and ask latency ratios (kestrel / Optuna).

    python report.py results/kestrel-quality.jsonl results/optuna-quality.jsonl ...
"""

import collections
import json
import statistics
import sys


# Optuna's samplers under the Katib algorithm name they correspond to.
ALIASES = {"gp": "bayesianoptimization", "qmc": "sobol"}


def load(paths):
    rows = []
    for p in paths:
        with open(p) as f:
            rows += [json.loads(line) for line in f if line.strip().startswith("{")]
    for r in rows:
        if r["impl"] == "optuna":
            r["method"] = ALIASES.get(r["method"], r["method"])
    return rows


def main():
    rows = load(sys.argv[1:])
    quality = collections.defaultdict(list)
    for r in rows:
        if r["kind"] == "quality":
            quality[(r["function"], r["impl"], r["method"])].append(r["log10_regret"])
    functions = list(dict.fromkeys(k[0] for k in quality))
    methods = sorted({(k[1], k[2]) for k in quality}, key=lambda m: (m[0] != "kestrel", m[1]))
    if quality:
        seeds = min(len(v) for v in quality.values())
        print(f"Median log10 simple regret (lower is better; {seeds}+ seeds per cell)\n")
        print("| function | " + " | ".join(f"{i} {m}" for i, m in methods) + " | best kestrel | best Optuna | kestrel multivariate-tpe vs Optuna TPE (multivariate by default since 5.0) |")
        print("|---" * (len(methods) + 4) + "|")
        for fn in functions:
            med = {m: statistics.median(quality[(fn, *m)]) for m in methods if (fn, *m) in quality}
            cells = [f"{med[m]:.2f}" if m in med else "" for m in methods]
            best = {}
            for impl in ("kestrel", "optuna"):
                mine = {m: v for m, v in med.items() if m[0] == impl}
                best[impl] = min(mine.items(), key=lambda kv: kv[1]) if mine else None
            verdict = ""
            if best["kestrel"] and best["optuna"]:
                ok = best["kestrel"][1] <= best["optuna"][1]
                verdict = "ok" if ok else "WORSE"
            bk = f"{best['kestrel'][0][1]} {best['kestrel'][1]:.2f} {verdict}" if best["kestrel"] else ""
            bo = f"{best['optuna'][0][1]} {best['optuna'][1]:.2f}" if best["optuna"] else ""
            kt, ot = med.get(("kestrel", "multivariate-tpe")), med.get(("optuna", "tpe"))
            tpe = f"{kt:.2f} vs {ot:.2f} {'ok' if kt <= ot else 'WORSE'}" if kt is not None and ot is not None else ""
            print(f"| {fn} | " + " | ".join(cells) + f" | {bk} | {bo} | {tpe} |")
    # Wall-clock time on a shared machine is noisy: every round is kept and the median
    # across rounds is reported.
    rounds = collections.defaultdict(list)
    for r in rows:
        if r["kind"] == "latency":
            rounds[(r["impl"], r["method"], r["n"])].append(r["ms"])
    latency = {k: statistics.median(v) for k, v in rounds.items()}
    if latency:
        n_rounds = min(len(v) for v in rounds.values())
        print(f"\nMedian ask latency, 10-D space, ms, median over {n_rounds}+ rounds (ratio = kestrel / Optuna)\n")
        print("| method | trials | kestrel | Optuna | ratio |")
        print("|---|---|---|---|---|")
        for (impl, method, n), ms in sorted(latency.items(), key=lambda kv: (kv[0][1], kv[0][2])):
            if impl != "kestrel":
                continue
            other = latency.get(("optuna", method, n))
            ratio = f"{ms / other:.3f}" if other else ""
            print(f"| {method} | {n} | {ms:.2f} | {other:.1f} | {ratio} |" if other else f"| {method} | {n} | {ms:.2f} | | |")


if __name__ == "__main__":
    main()
