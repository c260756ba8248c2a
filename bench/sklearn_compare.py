"""SSAVAEClassifier and the other semi-supervised families beside scikit-learn's
semi-supervised methods on scikit-learn's bundled tables, few labels per class.

For each seed: a stratified 70/30 split (``random_state=seed``), then ``--labels`` labeled rows
per class drawn from the 70 % with the same seed; the rest of the 70 % is unlabeled (y = -1).
Every method fits on the same X and y and is scored on the 30 %. ``--validation`` scores on a
stratified 30 % carved from the 70 % instead (for choosing defaults; the test part is unused).

    python bench/sklearn_compare.py OUT [--data digits,digits-images,wine,breast-cancer]
        [--methods label-spreading,self-training,logistic,ssavae,m2,aae_semi,classifier]
        [--seeds 0,1,2,3,4] [--labels 10] [--validation] [--set KEY=VALUE ...]

Features are scaled as a new user would: digits / 16 (so [0, 1]; images 8x8 in [0, 1]); wine
and breast cancer standardized for the scikit-learn methods (SSAVAEClassifier standardizes
inside). ``--set`` passes an SSAVAEClassifier parameter to every ssavae fit (``epochs=60``,
``model_params={"consistency_weight": 0}``: Python literals). Resumable: results go to
OUT/results.jsonl, one line per (data, method, seed, settings); a line already there is not
fitted again. Prints mean +- std over the seeds and the mean fit time.
"""
from __future__ import annotations

import argparse
import ast
import json
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier
from sklearn.svm import SVC

from ssavae.estimator import SSAVAEClassifier

SKLEARN = ("label-spreading", "self-training", "logistic")


class LabeledOnly:
    """A supervised scikit-learn model fitted on the labeled rows alone (y != -1)."""

    def __init__(self, model):
        self.model = model

    def fit(self, X, y):
        self.model.fit(X[y >= 0], y[y >= 0])
        return self

    def __getattr__(self, name):
        return getattr(self.model, name)


def load(name: str):
    if name in ("digits", "digits-images"):
        X, y = load_digits(return_X_y=True)
        X = (X / 16.0).astype(np.float32)
        return (X.reshape(-1, 8, 8) if name == "digits-images" else X), y
    if name == "wine":
        return load_wine(return_X_y=True)
    if name == "breast-cancer":
        return load_breast_cancer(return_X_y=True)
    raise SystemExit(f"unknown data {name!r}; choose digits, digits-images, wine, breast-cancer")


def split(X, y, seed: int, labels: int, validation: bool):
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    if validation:  # the test part is never looked at
        X_tr, X_te, y_tr, y_te = train_test_split(X_tr, y_tr, test_size=0.3, stratify=y_tr, random_state=seed)
    rng = np.random.default_rng(seed)
    y_semi = np.full_like(y_tr, -1)
    for k in np.unique(y_tr):
        y_semi[rng.choice(np.flatnonzero(y_tr == k), labels, replace=False)] = k
    return X_tr, y_semi, X_te, y_te


def make(method: str, seed: int, settings: dict):
    if method == "label-spreading":
        return LabelSpreading(kernel="knn")
    if method == "self-training":
        return SelfTrainingClassifier(SVC(probability=True, random_state=seed))
    if method == "logistic":
        return LabeledOnly(LogisticRegression(max_iter=5000))
    return SSAVAEClassifier(family=method, random_state=seed, **settings)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--data", default="digits,digits-images,wine,breast-cancer")
    ap.add_argument("--methods", default="label-spreading,self-training,logistic,ssavae,m2,aae_semi,classifier")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--labels", type=int, default=10)
    ap.add_argument("--validation", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    import lightning_fabric  # noqa: F401  imported once here, not inside the first timed fit (~2.5 s)
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    settings = {k: ast.literal_eval(v) for k, v in (s.split("=", 1) for s in args.set)}
    tag = json.dumps(settings, sort_keys=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    done = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    key = lambda r: (r["data"], r["method"], r["seed"], r["labels"], r["validation"], r["settings"])
    seen = {key(r) for r in done}
    for data in args.data.split(","):
        X, y = load(data)
        for method in args.methods.split(","):
            for seed in map(int, args.seeds.split(",")):
                row = {"data": data, "method": method, "seed": seed, "labels": args.labels,
                       "validation": args.validation, "settings": "{}" if method in SKLEARN else tag}
                if key(row) in seen:
                    continue
                X_tr, y_semi, X_te, y_te = split(X, y, seed, args.labels, args.validation)
                if method in SKLEARN:
                    if X_tr.ndim > 2:
                        continue  # the images are the same data as the vectors for these
                    if data in ("wine", "breast-cancer"):
                        scaler = StandardScaler().fit(X_tr)
                        X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
                t0 = time.perf_counter()
                clf = make(method, seed, settings if method not in SKLEARN else {}).fit(X_tr, y_semi)
                row["fit_seconds"] = round(time.perf_counter() - t0, 2)
                row["accuracy"] = float(clf.score(X_te, y_te))
                # LabelSpreading gives exact zeros, and NaN rows (no labeled neighbour reached, 0 / 0):
                # those count as uniform, the answer it has for them
                proba = np.clip(np.nan_to_num(clf.predict_proba(X_te), nan=1.0 / len(clf.classes_)), 1e-12, 1)
                row["log_loss"] = float(log_loss(y_te, proba / proba.sum(1, keepdims=True), labels=clf.classes_))
                row["n_test"] = len(y_te)
                done.append(row)
                with results.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(row, flush=True)
    table(done, args.labels, args.validation)


def table(rows: list, labels: int, validation: bool) -> None:
    groups: dict = {}
    for r in rows:
        if r["labels"] == labels and r["validation"] == validation:
            groups.setdefault((r["data"], r["method"], r["settings"]), []).append(r)
    print(f"\n{labels} labels per class, scored on the {'validation' if validation else 'test'} part")
    print("| data | method | settings | accuracy % (mean +- std) | log loss (mean) | seeds | fit s (mean) |")
    print("|---|---|---|---:|---:|---:|---:|")
    for (data, method, settings), rs in groups.items():
        acc = [100 * r["accuracy"] for r in rs]
        sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
        ll = [r["log_loss"] for r in rs if "log_loss" in r]
        print(f"| {data} | {method} | {settings if settings != '{}' else ''} | {statistics.mean(acc):.1f} +- "
              f"{sd:.1f} | {statistics.mean(ll) if ll else float('nan'):.3f} | {len(rs)} | "
              f"{statistics.mean(r['fit_seconds'] for r in rs):.2f} |")


if __name__ == "__main__":
    sys.exit(main())
