"""Is SSAVAEClassifier's predict_proba calibrated? Reliability diagrams and expected calibration
error (ECE) beside scikit-learn's methods, on the held-out rows of bench/sklearn_compare.py's
splits (the same seeds, labels per class and scaling), pooled over the seeds.

    python bench/reliability.py OUT [--data digits,wine,breast-cancer] [--seeds 0,1,2,3,4] [--labels 10]

Writes OUT/reliability.png (one panel per dataset: accuracy against confidence in 10 equal-width
bins, the diagonal is perfect calibration) and prints the ECE and log loss of each method.
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import log_loss  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from sklearn_compare import SKLEARN, load, make, split  # noqa: E402

METHODS = ("ssavae", "label-spreading", "self-training", "logistic")
BINS = 10


def calibration(conf: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(bin centres, accuracy per bin, rows per bin, ECE) for equal-width confidence bins."""
    edges = np.linspace(0, 1, BINS + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, BINS - 1)
    count = np.bincount(which, minlength=BINS)
    acc = np.bincount(which, correct, BINS) / np.maximum(count, 1)
    mean_conf = np.bincount(which, conf, BINS) / np.maximum(count, 1)
    ece = float((count * np.abs(acc - mean_conf)).sum() / count.sum())
    return (edges[:-1] + edges[1:]) / 2, acc, count, ece


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--data", default="digits,wine,breast-cancer")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--labels", type=int, default=10)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    datasets = args.data.split(",")
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 4.2), squeeze=False)
    print("| data | method | accuracy % | ECE | log loss |")
    print("|---|---|---:|---:|---:|")
    for ax, data in zip(axes[0], datasets):
        X, y = load(data)
        for method in METHODS:
            probs, truth = [], []
            for seed in map(int, args.seeds.split(",")):
                X_tr, y_semi, X_te, y_te = split(X, y, seed, args.labels, validation=False)
                if method in SKLEARN and data in ("wine", "breast-cancer"):
                    scaler = StandardScaler().fit(X_tr)
                    X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
                clf = make(method, seed, {}).fit(X_tr, y_semi)
                p = np.nan_to_num(clf.predict_proba(X_te), nan=1.0 / len(clf.classes_))
                probs.append(p)
                truth.append(np.searchsorted(clf.classes_, y_te))
            p, t = np.concatenate(probs), np.concatenate(truth)
            conf, correct = p.max(1), (p.argmax(1) == t).astype(float)
            centres, acc, count, ece = calibration(conf, correct)
            clipped = np.clip(p, 1e-12, 1)
            ll = log_loss(t, clipped / clipped.sum(1, keepdims=True), labels=range(p.shape[1]))
            print(f"| {data} | {method} | {100 * correct.mean():.1f} | {ece:.3f} | {ll:.3f} |", flush=True)
            keep = count > 0
            ax.plot(centres[keep], acc[keep], "o-", label=f"{method} (ECE {ece:.3f})")
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        ax.set(title=f"{data}, {args.labels} labels per class", xlabel="confidence (max probability)",
               ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(fontsize=7, loc="upper left")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=110)
    print(f"figure: {out / 'reliability.png'}")


if __name__ == "__main__":
    sys.exit(main())
