"""The data of docs/tutorial.md, written as a user would hold it.

    python scripts/tutorial_data.py OUT

- OUT/wine.csv: scikit-learn's wine table (178 rows, 13 measurements), a header row, the class
  as a name in the column ``cultivar``; 5 rows per class keep their name, the others have an
  empty cell (unlabeled).
- OUT/clothes/: 2,000 Fashion-MNIST training images as PNG files, ``clothes/<class name>/`` for
  20 labeled images per class and ``clothes/unlabeled/`` for the other 1,800 (needs
  Fashion-MNIST: ``apt-get install dataset-fashion-mnist`` or ``scripts/get-data.sh``).
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np


def write_wine(out: Path, labels_per_class: int = 5, seed: int = 0) -> Path:
    from sklearn.datasets import load_wine

    data = load_wine()
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(data.target), bool)
    for k in range(3):
        keep[rng.choice(np.flatnonzero(data.target == k), labels_per_class, replace=False)] = True
    names = ["barolo", "grignolino", "barbera"]  # the three cultivars of the original study
    path = out / "wine.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*data.feature_names, "cultivar"])
        for row, k, known in zip(data.data, data.target, keep):
            w.writerow([*(f"{v:g}" for v in row), names[k] if known else ""])
    return path


def write_clothes(out: Path, n: int = 2000, labels_per_class: int = 20, seed: int = 0) -> Path:
    from PIL import Image

    from ssavae.data import load_dataset

    ds = load_dataset("fashion-mnist")
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(ds.y_train), n, replace=False)
    root = out / "clothes"
    seen: dict[int, int] = {}
    for i, r in enumerate(rows):
        k = int(ds.y_train[r])
        labeled = seen.get(k, 0) < labels_per_class
        seen[k] = seen.get(k, 0) + labeled
        folder = root / (ds.classes[k].replace("/", "-") if labeled else "unlabeled")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ds.x_train[r, 0]).save(folder / f"{i:05d}.png")
    return root


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tutorial")
    out.mkdir(parents=True, exist_ok=True)
    print(write_wine(out))
    print(write_clothes(out))
