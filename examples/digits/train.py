#!/usr/bin/env python3
"""Train a one-hidden-layer MLP on the UCI handwritten digits (8x8) and report metrics.

This is a kestrel trial program, written the way Katib trial programs are: it takes its
hyperparameters as command-line flags and prints metrics to stdout in Katib's default
`name=value` text format, one line per epoch, e.g.

    epoch=3 loss=0.2154 Validation-accuracy=0.9467 Validation-loss=0.1987

It needs only the Python standard library, so it runs on any machine with python3.
The data is examples/digits/digits.csv.gz (see examples/digits/README.md for its source).
The train/validation split is fixed (seed 0) so that trials differ only by hyperparameters.

Flags:
  --lr FLOAT             SGD learning rate
  --hidden INT           hidden units
  --momentum FLOAT       SGD momentum (0 = plain SGD)
  --weight-decay FLOAT   L2 penalty
  --batch-size INT       minibatch size
  --epochs INT           passes over the training set
  --metrics-file PATH    also append the metric lines to PATH (for the File collector)
  --format text|json     metric line format (json = Katib's JSON-lines format)
  --seed INT             weight initialisation seed
"""

import argparse
import csv
import gzip
import json
import math
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def load(path):
    with gzip.open(path, "rt", newline="") as f:
        rows = list(csv.reader(f))
    xs, ys = [], []
    for row in rows[1:]:
        xs.append([float(v) / 16.0 for v in row[:-1]])
        ys.append(int(row[-1]))
    return xs, ys


def split(xs, ys, n_val):
    order = list(range(len(xs)))
    random.Random(0).shuffle(order)
    val, train = order[:n_val], order[n_val:]
    return ([xs[i] for i in train], [ys[i] for i in train]), ([xs[i] for i in val], [ys[i] for i in val])


class Mlp:
    def __init__(self, n_in, n_hidden, n_out, rng):
        a1 = math.sqrt(6.0 / (n_in + n_hidden))
        a2 = math.sqrt(6.0 / (n_hidden + n_out))
        self.w1 = [[rng.uniform(-a1, a1) for _ in range(n_in)] for _ in range(n_hidden)]
        self.b1 = [0.0] * n_hidden
        self.w2 = [[rng.uniform(-a2, a2) for _ in range(n_hidden)] for _ in range(n_out)]
        self.b2 = [0.0] * n_out

    def forward(self, x):
        h = [max(0.0, b + sum(map(float.__mul__, w, x))) for w, b in zip(self.w1, self.b1)]
        z = [b + sum(map(float.__mul__, w, h)) for w, b in zip(self.w2, self.b2)]
        m = max(z)
        e = [math.exp(v - m) for v in z]
        s = sum(e)
        return h, [v / s for v in e]

    def evaluate(self, xs, ys):
        loss, correct = 0.0, 0
        for x, y in zip(xs, ys):
            _, p = self.forward(x)
            loss -= math.log(max(p[y], 1e-12))
            correct += max(range(len(p)), key=p.__getitem__) == y
        return loss / len(xs), correct / len(xs)


def train_epoch(net, xs, ys, lr, momentum, weight_decay, batch_size, rng, vel):
    order = list(range(len(xs)))
    rng.shuffle(order)
    total = 0.0
    n_h, n_in = len(net.w1), len(net.w1[0])
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        g1 = [[0.0] * n_in for _ in range(n_h)]
        gb1 = [0.0] * n_h
        g2 = [[0.0] * n_h for _ in net.w2]
        gb2 = [0.0] * len(net.w2)
        for i in batch:
            x, y = xs[i], ys[i]
            h, p = net.forward(x)
            total -= math.log(max(p[y], 1e-12))
            dz = list(p)
            dz[y] -= 1.0
            for k, d in enumerate(dz):
                gb2[k] += d
                g2[k] = [g + d * hv for g, hv in zip(g2[k], h)]
            dh = [sum(dz[k] * net.w2[k][j] for k in range(len(dz))) if h[j] > 0.0 else 0.0 for j in range(n_h)]
            for j, d in enumerate(dh):
                if d != 0.0:
                    gb1[j] += d
                    g1[j] = [g + d * xv for g, xv in zip(g1[j], x)]
        scale = 1.0 / len(batch)
        for w, g, v in ((net.w1, g1, vel[0]), (net.w2, g2, vel[1])):
            for r in range(len(w)):
                v[r] = [momentum * vv + scale * gg + weight_decay * ww for vv, gg, ww in zip(v[r], g[r], w[r])]
                w[r] = [ww - lr * vv for ww, vv in zip(w[r], v[r])]
        for b, g in ((net.b1, gb1), (net.b2, gb2)):
            for r in range(len(b)):
                b[r] -= lr * scale * g[r]
    return total / len(xs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--momentum", type=float, default=0.0)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--metrics-file", default=None)
    ap.add_argument("--format", choices=["text", "json"], default="text")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default=os.path.join(HERE, "digits.csv.gz"))
    args = ap.parse_args()
    if args.lr <= 0 or args.hidden < 1 or args.batch_size < 1 or args.epochs < 1:
        sys.exit("train.py: --lr, --hidden, --batch-size and --epochs must be positive")

    xs, ys = load(args.data)
    (tx, ty), (vx, vy) = split(xs, ys, n_val=450)
    rng = random.Random(args.seed)
    net = Mlp(64, args.hidden, 10, rng)
    vel = ([[0.0] * 64 for _ in range(args.hidden)], [[0.0] * args.hidden for _ in range(10)])
    sink = open(args.metrics_file, "a") if args.metrics_file else None
    print(f"training hidden={args.hidden} on {len(tx)} images, validating on {len(vx)}", file=sys.stderr)
    for epoch in range(1, args.epochs + 1):
        started = time.time()
        loss = train_epoch(net, tx, ty, args.lr, args.momentum, args.weight_decay, args.batch_size, rng, vel)
        if not math.isfinite(loss):
            print(f"epoch {epoch}: training diverged (loss={loss})", file=sys.stderr)
            sys.exit(3)
        val_loss, val_acc = net.evaluate(vx, vy)
        if args.format == "json":
            line = json.dumps({"epoch": str(epoch), "loss": f"{loss:.6f}",
                               "Validation-accuracy": f"{val_acc:.6f}", "Validation-loss": f"{val_loss:.6f}"})
        else:
            line = (f"epoch={epoch} loss={loss:.6f} Validation-accuracy={val_acc:.6f} "
                    f"Validation-loss={val_loss:.6f}")
        print(line, flush=True)
        if sink:
            sink.write(line + "\n")
            sink.flush()
        print(f"epoch {epoch} took {time.time() - started:.2f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
