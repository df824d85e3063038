"""Early-stopping benchmark: the same epoch budget spent by random search without stopping,
random + median stopping, Hyperband, random + ASHA and TPE + ASHA, on the digits MLP
example (examples/digits/train.py, which reports validation accuracy after every epoch).

Every run is a real `kestrel run`; the epochs a run spends are its Validation-accuracy
reports, in the order they were stored (time stamps from the store). For each method and
seed it reports the best accuracy within the budget and the epochs it took to reach the
no-stopping runs' final quality (median over seeds of their best accuracy), and prints the
ratio of epochs (no stopping / method) as the speed-up.

    python3 bench/early_stopping.py --kestrel target/release/kestrel --seeds 5
    python3 bench/early_stopping.py --epochs 27 --seeds 5     # a longer training horizon

Every method gets exactly the same budget: 9 trials x --epochs epochs. Each run is stopped
(SIGTERM, as Ctrl-C) as soon as the store holds that many epoch reports, so no method runs
past the budget and maxTrialCount is only a safety bound.
"""

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
DIGITS = os.path.join(HERE, "..", "examples", "digits")
EPOCHS = 9  # per trial without stopping; Hyperband's r_l (--epochs)
TRIALS = 9  # trials without stopping: the budget is TRIALS x EPOCHS epochs
PARALLEL = 1  # trials at a time (--parallel)

STOP = {
    "median": "  earlyStopping:\n    algorithmName: medianstop\n    algorithmSettings:\n"
              "      - name: min_trials_required\n        value: \"3\"\n"
              "      - name: start_step\n        value: \"2\"\n"
              # kestrel's median rule (the default is Katib's: the mean, once).
              "      - name: rule\n        value: median\n",
}
ASHA = ("  earlyStopping:\n    algorithmName: asha\n    algorithmSettings:\n"
        "      - name: min_resource\n        value: \"%d\"\n      - name: eta\n        value: \"%d\"\n")
STOP["asha"] = ASHA % (1, 3)

# method -> (algorithm, early stopping, maxTrialCount); runs end at the epoch budget.
METHODS = {
    "none": ("random", None, TRIALS),
    "median": ("random", "median", 500),
    "hyperband": ("hyperband", None, 500),
    "asha": ("random", "asha", 500),
    "tpe+asha": ("tpe", "asha", 500),
}


def experiment(method, name):
    algorithm, stop, max_trials = METHODS[method]
    if algorithm == "hyperband":
        text = open(os.path.join(DIGITS, "hyperband.yaml")).read()
        text = text.replace("name: digits-hyperband", "name: " + name)
        text = text.replace('value: "%d"' % 9, 'value: "%d"' % EPOCHS, 1)  # r_l
        text = text.replace('max: "9"', 'max: "%d"' % EPOCHS)  # the epochs parameter
        text = text.replace("maxTrialCount: 22", "maxTrialCount: %d" % max_trials)
        text = text.replace("parallelTrialCount: 3", "parallelTrialCount: %d" % PARALLEL)
        return text
    text = open(os.path.join(DIGITS, "random.yaml")).read()
    text = text.replace("name: digits-random", "name: " + name)
    text = text.replace("    algorithmName: random\n", "    algorithmName: %s\n" % algorithm)
    text = text.replace("  parallelTrialCount: 2\n  maxTrialCount: 12\n  maxFailedTrialCount: 3\n",
                        "  parallelTrialCount: %d\n  maxTrialCount: %d\n  maxFailedTrialCount: 6\n"
                        % (PARALLEL, max_trials))
    text = text.replace("--epochs=4", "--epochs=%d" % EPOCHS)
    if stop:
        text = text.replace("  parallelTrialCount:", STOP[stop] + "  parallelTrialCount:", 1)
    return text


def when(stamp):
    # RFC 3339 with up to 9 fractional digits, as kestrel stores it.
    main, _, frac = stamp.rstrip("Z").partition(".")
    t = datetime.fromisoformat(main).replace(tzinfo=timezone.utc)
    return t.timestamp() + (float("0." + frac) if frac else 0.0)


def accuracy_stream(store, name):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(store, "kestrel.db"), uri=True)
    try:
        rows = _rows(db, name)
    finally:
        db.close()
    rows = [(when(t), float(v), i) for t, v, i in rows if v != "unavailable"]
    rows.sort(key=lambda r: (r[0], r[2]))
    return [v for _, v, _ in rows]


def _rows(db, name):
    return db.execute(
        "SELECT m.time, m.value, m.id FROM metric_logs m JOIN trials t ON m.trial = t.name "
        "WHERE t.experiment = ? AND m.name = 'Validation-accuracy'", (name,)).fetchall()


def reports(store, name):
    """Epoch reports stored so far (0 while the store does not exist yet)."""
    try:
        return len(accuracy_stream(store, name))
    except sqlite3.Error:
        return 0


def run(kestrel, method, seed, store, budget):
    name = "es-%s-%d" % (method.replace("+", "-"), seed)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=DIGITS, delete=False) as f:
        f.write(experiment(method, name))
        path = f.name
    try:
        proc = subprocess.Popen([kestrel, "run", path, "--store", store, "--seed", str(seed),
                                 "--output", "json"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        while proc.poll() is None:
            time.sleep(0.5)
            if reports(store, name) >= budget:
                proc.send_signal(signal.SIGTERM)  # stops the trials; kestrel exits 1
                break
        _, err = proc.communicate()
    finally:
        os.unlink(path)
    if proc.returncode not in (0, 1):
        sys.exit("kestrel run failed for %s seed %d:\n%s" % (method, seed, err))
    return accuracy_stream(store, name)


def report(streams, budget):
    """Prints the comparison table for {method: [stream per seed]}."""
    if "none" not in streams:
        return
    target = statistics.median(max(s[:budget]) for s in streams["none"])

    def to_reach(s):
        for i, v in enumerate(s[:budget]):
            if v >= target:
                return i + 1
        return None

    base = statistics.median([to_reach(s) or budget for s in streams["none"]])
    print("\nbudget %d epochs; target = no-stopping median final accuracy %.4f" % (budget, target))
    print("%-10s %14s %18s %14s %10s" % ("method", "best (median)", "epochs to target", "reached", "speed-up"))
    for m, runs in streams.items():
        best = statistics.median(max(s[:budget]) for s in runs)
        reach = [to_reach(s) for s in runs]
        hit = [r for r in reach if r is not None]
        # Seeds that never reach the target count as the whole budget (a conservative median).
        med = statistics.median([r if r is not None else budget for r in reach])
        print("%-10s %14.4f %18.1f %11d/%-2d %9.2fx" % (m, best, med, len(hit), len(reach), base / med))


def main():
    global EPOCHS, PARALLEL
    ap = argparse.ArgumentParser()
    ap.add_argument("--kestrel", default=os.path.join(HERE, "..", "target", "release", "kestrel"))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--out", default=None, help="append JSON lines here")
    ap.add_argument("--epochs", type=int, default=EPOCHS,
                    help="epochs per trial without stopping (Hyperband's r_l)")
    ap.add_argument("--asha-eta", type=int, default=3)
    ap.add_argument("--asha-min-resource", type=int, default=1)
    ap.add_argument("--parallel", type=int, default=PARALLEL,
                    help="parallelTrialCount (1, as Optuna's reference run, by default)")
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--report", nargs="+", metavar="JSONL",
                    help="only print the table of earlier --out files")
    args = ap.parse_args()
    if args.report:
        streams, budget = {}, None
        for path in args.report:
            for line in open(path):
                r = json.loads(line)
                budget = r["budget"]
                streams.setdefault(r["method"], []).append(r["stream"])
        report(streams, budget)
        return
    EPOCHS = args.epochs
    PARALLEL = args.parallel
    STOP["asha"] = ASHA % (args.asha_min_resource, args.asha_eta)
    methods = args.methods.split(",")
    budget = TRIALS * EPOCHS
    store = tempfile.mkdtemp(prefix="kestrel-es-bench-")
    streams = {m: [] for m in methods}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for m in methods:
            s = run(args.kestrel, m, seed, store, budget)
            streams[m].append(s)
            line = {"bench": "early-stopping", "method": m, "seed": seed, "epochs": len(s),
                    "epochs_per_trial": EPOCHS, "asha_eta": args.asha_eta,
                    "asha_min_resource": args.asha_min_resource, "parallel": PARALLEL,
                    "best_in_budget": max(s[:budget], default=None), "budget": budget}
            print(json.dumps(line), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(dict(line, stream=s)) + "\n")
    report(streams, budget)


if __name__ == "__main__":
    main()
