"""A scikit-learn style estimator over any registered family.

>>> est = Estimator("ssavae", model={"latent_dim": 2}, train={"epochs": 5})   # doctest: +SKIP
>>> est.fit(X, y)          # y = -1 marks unlabeled examples                   # doctest: +SKIP
>>> est.predict(X_new); est.transform(X_new); est.sample(16)                  # doctest: +SKIP

``X``: images (N, H, W) / (N, C, H, W) / (N, H, W, C) as uint8 or floats in [0, 1], or feature
vectors (N, D). ``y``: any labels; ``-1`` (or None) means unlabeled. Learned attributes end in
``_``; ``__init__`` only stores its arguments.
"""
from __future__ import annotations

import tempfile
from typing import Optional

import numpy as np
import torch

from .config import build_run_config
from .data import Dataset, to_float
from .data.readers import as_images_or_vectors


def train_on_arrays(cfg, x: np.ndarray, codes: np.ndarray, classes, run_dir, on_epoch_end=None):
    """Train ``cfg`` on in-memory arrays (``codes``: class indices, -1 unlabeled; ``classes``: their
    names); the first 256 rows stand in as the run's test split for its summary and figures."""
    from .runs import train

    n_show = min(len(x), 256)
    ds = Dataset("arrays", x, codes, x[:n_show], codes[:n_show], [str(c) for c in classes])
    return train(cfg, run_dir, dataset=ds, on_epoch_end=on_epoch_end)


def class_codes(classes: np.ndarray, y, n: int) -> Optional[torch.Tensor]:
    """The class indices of ``y`` (one label or ``n``) among the sorted ``classes``; None for None."""
    if y is None:
        return None
    return torch.from_numpy(np.searchsorted(classes, np.broadcast_to(np.asarray(y), (n,))))


class Estimator:
    def __init__(self, family: str = "ssavae", model: Optional[dict] = None,
                 train: Optional[dict] = None, data: Optional[dict] = None, seed: int = 0,
                 run_dir: Optional[str] = None):
        self.family = family
        self.model = model  # the family's config fields, e.g. {"latent_dim": 2}
        self.train = train  # engine fields, e.g. {"epochs": 5}
        self.data = data  # split fields, e.g. {"labels_per_class": 100}
        self.seed = seed
        self.run_dir = run_dir  # default: a new temporary folder

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None) -> "Estimator":
        x = as_images_or_vectors(np.asarray(X), "X")
        if x.dtype != np.uint8 and x.ndim == 4 and (x.min() < 0 or x.max() > 1):
            raise ValueError("image X must be uint8 or floats in [0, 1]")
        y = np.full(len(x), -1) if y is None else np.asarray(y)
        if len(y) != len(x):
            raise ValueError(f"X has {len(x)} rows but y has {len(y)}")
        known = y != -1
        self.classes_ = np.unique(y[known]) if known.any() else np.array([0])
        codes = np.full(len(y), -1, np.int64)
        codes[known] = np.searchsorted(self.classes_, y[known])
        raw = {"model": {"name": self.family, **(self.model or {})},
               "data": {"name": "arrays", **(self.data or {})},
               "train": {"progress": False, **(self.train or {})}, "seed": self.seed}
        self.run_dir_ = self.run_dir or tempfile.mkdtemp(prefix="ssavae-")
        result = train_on_arrays(build_run_config(raw), x, codes, self.classes_, self.run_dir_)
        self.model_ = result.model.cpu().eval()
        self.summary_ = result.summary
        return self

    # ------------------------------------------------------------------ inference
    def _x(self, X) -> torch.Tensor:
        self._check_fitted()
        x = as_images_or_vectors(np.asarray(X), "X")
        return to_float(x)

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError("this Estimator is not fitted yet: call fit(X, y) first")

    def predict_proba(self, X) -> np.ndarray:
        x = self._x(X)
        return self.model_.predict_proba(x).numpy()

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)  # checks fitted first
        return self.classes_[proba.argmax(1)]

    def score(self, X, y) -> float:
        return float((self.predict(X) == np.asarray(y)).mean())

    def transform(self, X) -> np.ndarray:
        """Codes: the posterior means, (N, latent_dim)."""
        return self.model_.encode(self._x(X)).numpy()

    def inverse_transform(self, Z) -> np.ndarray:
        self._check_fitted()
        return self.model_.decode(torch.as_tensor(np.asarray(Z), dtype=torch.float32)).numpy()

    def reconstruct(self, X) -> np.ndarray:
        return self.model_.reconstruct(self._x(X)).numpy()

    def sample(self, n: int, y=None, seed: int = 0) -> np.ndarray:
        self._check_fitted()
        g = torch.Generator().manual_seed(seed)
        return self.model_.sample(n, y=class_codes(self.classes_, y, n), generator=g).numpy()
