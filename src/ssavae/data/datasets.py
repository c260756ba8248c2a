"""The dataset registry: names -> in-memory arrays, found on disk without downloading.

Search order for a named dataset's files: ``--data-dir`` (and ``DIR/<name>``), ``$SSAVAE_DATA_DIR``
(and ``$SSAVAE_DATA_DIR/<name>``), the user cache ``~/.cache/ssavae/<name>`` (``$SSAVAE_CACHE``
overrides), then known system paths (Debian's ``dataset-fashion-mnist`` package).
``ssavae download NAME`` fills the cache for online users; ``scripts/get-data.sh NAME`` tries
Debian's package first where apt is there. The library itself never runs a package manager.
"""
from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..registry import Registry
from . import readers
from .readers import DataError


log = logging.getLogger(__name__)

@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know to build itself for some data."""

    shape: tuple[int, ...]  # (C, H, W) for images, (D,) for vectors
    num_classes: int
    unit_range: bool  # values lie in [0, 1] (Bernoulli likelihood applies)

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    def to_dict(self) -> dict:
        """As checkpoints and exported models record it (``from_dict`` reads it back)."""
        return {"shape": list(self.shape), "num_classes": self.num_classes, "unit_range": self.unit_range}

    @classmethod
    def from_dict(cls, d: dict) -> "DataInfo":
        return cls(tuple(d["shape"]), d["num_classes"], d["unit_range"])


class Standardization:
    """Each column -> (x - mean) / scale (float64 statistics, float32 result): what
    ``data.standardize`` does to a table, and what a loaded model does to raw rows
    (``GenerativeModel.preprocess``), bit for bit the same."""

    def __init__(self, mean, scale):
        self.mean, self.scale = np.asarray(mean, np.float64), np.asarray(scale, np.float64)

    @classmethod
    def from_dict(cls, d: dict) -> "Standardization":
        return cls(d["mean"], d["scale"])

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale).astype(np.float32)

    def inverse(self, x: np.ndarray) -> np.ndarray:
        return (x * self.scale + self.mean).astype(np.float32)


@dataclass
class Dataset:
    """Train and test arrays. Images stay uint8 (converted per batch); vectors are float32."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    # set by standardized(): {"mean": [...], "scale": [...]} per column, from the training rows
    standardization: Optional[dict] = None

    def __post_init__(self):
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if len(x) != len(y):
                raise DataError(f"{self.name}: {len(x)} {split} inputs but {len(y)} labels")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(f"{self.name}: train shape {self.x_train.shape[1:]} differs from "
                            f"test shape {self.x_test.shape[1:]}")
        top = max(int(self.y_train.max(initial=-1)), int(self.y_test.max(initial=-1)))
        if top >= len(self.classes):
            raise DataError(f"{self.name}: label {top} but only {len(self.classes)} classes")

    @functools.cached_property
    def info(self) -> DataInfo:
        if self.x_train.dtype == np.uint8:
            unit = True
        else:
            unit = bool(self.x_train.min() >= 0 and self.x_train.max() <= 1)
        return DataInfo(tuple(self.x_train.shape[1:]), len(self.classes), unit)

    def standardized(self) -> "Dataset":
        """Vectors with each column centred and scaled by the training rows' mean and standard
        deviation (a constant column is only centred); the statistics go with the result."""
        if self.x_train.ndim != 2:
            raise DataError(f"{self.name}: data.standardize applies to tables (N, D), not to data of "
                            f"shape {self.x_train.shape[1:]}; set data.standardize false")
        scale = self.x_train.std(0, dtype=np.float64)
        st = Standardization(self.x_train.mean(0, dtype=np.float64), np.where(scale > 0, scale, 1.0))
        return Dataset(self.name, st(self.x_train), self.y_train, st(self.x_test), self.y_test,
                       self.classes, st.to_dict())

    def limit(self, n_train: Optional[int], n_test: Optional[int]) -> "Dataset":
        if n_train is None and n_test is None:
            return self
        return Dataset(self.name, self.x_train[:n_train], self.y_train[:n_train],
                       self.x_test[:n_test], self.y_test[:n_test], self.classes)

    def with_validation(self, n: int, seed: int, evaluate_on: str = "test") -> "Dataset":
        """Hold ``n`` random training examples out of training. With ``evaluate_on="validation"``
        they replace the test set (choose settings there, never on the test set); with
        ``"test"`` they are only removed, so the training set matches the validation runs'."""
        if not 0 < n < len(self.y_train):
            raise DataError(f"data.validation_size must be between 1 and {len(self.y_train) - 1}, got {n}")
        x_tr, y_tr, x_val, y_val = _holdout(self.x_train, self.y_train, n / len(self.y_train), seed)
        if evaluate_on == "validation":
            return Dataset(self.name, x_tr, y_tr, x_val, y_val, self.classes)
        return Dataset(self.name, x_tr, y_tr, self.x_test, self.y_test, self.classes)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.x_train, self.y_train, self.x_test, self.y_test))


@dataclass
class DatasetSpec:
    name: str
    description: str
    files: tuple[str, ...]  # what must be present in one folder
    load: Callable[[Path], Dataset]  # folder -> dataset
    system_dirs: tuple[str, ...] = ()
    alt_files: tuple[tuple[str, ...], ...] = ()  # other acceptable file sets


DATASETS: Registry = Registry("dataset", "ssavae list-datasets")


def cache_dir() -> Path:
    return Path(os.environ.get("SSAVAE_CACHE", Path.home() / ".cache" / "ssavae"))


def _search_dirs(spec: DatasetSpec, data_dir: Optional[str]) -> list[Path]:
    dirs = []
    for d in (data_dir, os.environ.get("SSAVAE_DATA_DIR")):
        if d:
            dirs += [Path(d), Path(d) / spec.name]
    dirs.append(cache_dir() / spec.name)
    dirs += [Path(d) for d in spec.system_dirs]
    return dirs


def _has(folder: Path, files: tuple[str, ...]) -> bool:
    return all((folder / f).exists() for f in files)


def locate(name: str, data_dir: Optional[str] = None) -> Path:
    """The first folder in the search order that holds the dataset's files."""
    try:
        spec: DatasetSpec = DATASETS.get(name)
    except KeyError as e:
        raise DataError(e.args[0] + "; or use npz:PATH, csv:PATH, folder:PATH") from None
    dirs = _search_dirs(spec, data_dir)
    for d in dirs:
        for files in (spec.files, *spec.alt_files):
            if _has(d, files):
                return d
    looked = "\n  ".join(str(d) for d in dirs)
    raise DataError(
        f"dataset {name!r} not found: looked for {', '.join(spec.files)} in\n  {looked}\n"
        f"Get it with `ssavae download {name}` (online, checksums verified), or put the files in a "
        f"folder and pass --data-dir FOLDER"
        + ("; on Debian: apt-get install dataset-fashion-mnist" if name == "fashion-mnist" else "")
    )


def load_dataset(name: str, data_dir: Optional[str] = None, label_column: str = "label",
                 unlabeled: str = "", image_size: Optional[int] = None) -> Dataset:
    """Load a registered dataset, or ``npz:PATH``, ``csv:PATH``, ``folder:PATH`` for user data
    (``label_column`` and the ``unlabeled`` marker: for csv; ``image_size``: for folders)."""
    kind, sep, target = name.partition(":")
    if sep:
        return _load_user_data(kind, target, label_column, unlabeled, image_size)
    folder = locate(name, data_dir)  # explains an unknown name or missing files
    return DATASETS.get(name).load(folder)


def _load_user_data(kind: str, target: str, label_column: str = "label", unlabeled: str = "",
                    image_size: Optional[int] = None) -> Dataset:
    path = Path(target).expanduser()
    if not path.exists():
        raise DataError(f"{kind}:{target}: {path} does not exist")
    if kind == "npz":
        a = readers.read_npz(path)
        x_tr, y_tr = a["x_train"], a["y_train"]
        x_te, y_te = a.get("x_test"), a.get("y_test")
        classes = None
    elif kind == "csv":
        x_tr, y_tr, classes = readers.read_csv(path, label_column, unlabeled)
        x_te = y_te = None
    elif kind == "folder":
        x_tr, y_tr, classes = readers.read_image_folder(path, image_size)
        x_te = y_te = None
    else:
        raise DataError(f"unknown data source {kind!r}; use npz:PATH, csv:PATH or folder:PATH")
    if x_te is None:  # hold out a fixed 10 %, stratified, as the test split
        x_tr, y_tr, x_te, y_te = _stratified_holdout(x_tr, y_tr, fraction=0.1, seed=0)
    if classes is None:
        k = int(max(y_tr.max(initial=-1), y_te.max(initial=-1))) + 1
        classes = [str(i) for i in range(max(k, 1))]
    return Dataset(f"{kind}:{path.name}", x_tr, y_tr, x_te, y_te, classes)


def warn_unscaled(x: np.ndarray, name: str) -> None:
    """The networks read a table's columns as they are: say so when their scales differ widely."""
    if x.ndim != 2 or len(x) < 2:
        return
    std = x.std(0)
    spread = np.maximum(std, np.abs(x.mean(0)))
    if (std > 0).all() and spread.max() > 10 * max(float(std.min()), 1e-12) and spread.max() > 10:
        log.warning("%s: its columns are on very different scales (spread up to %.3g, standard deviation "
                    "down to %.3g); the networks read them as they are: set data.standardize true "
                    "(or fit ssavae.SSAVAEClassifier, which standardizes inside)", name, spread.max(), std.min())


def _stratified_holdout(x, y, fraction: float, seed: int):
    """The test split of user data: ``fraction`` of each class's labeled rows (at least one where
    a class has two or more, so every such class is tested) and of the unlabeled rows."""
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        k = int(round(fraction * len(rows)))
        if c >= 0 and len(rows) >= 2:
            k = max(k, 1)
        elif c >= 0:
            log.warning("class %d has a single labeled row: it stays in training, none in the test split", c)
        test.append(rows[:min(k, len(rows) - 1)])
    te = np.sort(np.concatenate(test)) if test else np.array([], np.int64)
    if len(te) == 0:
        te = np.array([rng.integers(len(x))])
    tr = np.setdiff1d(np.arange(len(x)), te)
    return x[tr], y[tr], x[te], y[te]


def _holdout(x, y, fraction: float, seed: int):
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(x))
    n_test = max(1, int(round(fraction * len(x))))
    te, tr = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    return x[tr], y[tr], x[te], y[te]


# ---------------------------------------------------------------------------- the registry

_IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_IDX_GZ = tuple(f + ".gz" for f in _IDX)


def _idx_loader(name: str, classes: list[str]) -> Callable[[Path], Dataset]:
    def load(d: Path) -> Dataset:
        gz = _has(d, _IDX_GZ)
        f = [d / (n + ".gz" if gz else n) for n in _IDX]
        x_tr, y_tr = readers.read_idx_pair(f[0], f[1])
        x_te, y_te = readers.read_idx_pair(f[2], f[3])
        return Dataset(name, x_tr, y_tr, x_te, y_te, classes)

    return load


def _register(spec: DatasetSpec) -> None:
    DATASETS.register(spec.name)(spec)


_register(DatasetSpec(
    "mnist", "handwritten digits, 1x28x28, 60,000 / 10,000, 10 classes", _IDX_GZ,
    _idx_loader("mnist", [str(i) for i in range(10)]),
    system_dirs=("/usr/share/datasets/mnist",), alt_files=(_IDX,)))
_register(DatasetSpec(
    "fashion-mnist", "Zalando clothing, 1x28x28, 60,000 / 10,000, 10 classes", _IDX_GZ,
    _idx_loader("fashion-mnist", ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]),
    system_dirs=("/usr/share/datasets/fashion-mnist",), alt_files=(_IDX,)))
_register(DatasetSpec(
    "omniglot", "handwritten characters, 1x28x28, 24,345 / 8,070, 50 alphabets", ("chardata.mat",),
    lambda d: Dataset("omniglot", *readers.read_omniglot(d / "chardata.mat"),
                      [f"alphabet{i}" for i in range(50)])))
_register(DatasetSpec(
    "caltech101", "Caltech 101 Silhouettes, 1x28x28, 6,364 / 2,307, 101 classes",
    ("caltech101_silhouettes_28_split1.mat",),
    lambda d: Dataset("caltech101",
                      *readers.read_caltech101(d / "caltech101_silhouettes_28_split1.mat"),
                      [f"class{i}" for i in range(101)])))
_register(DatasetSpec(
    "cifar10", "natural images, 3x32x32, 50,000 / 10,000, 10 classes", ("cifar-10-batches-py",),
    lambda d: Dataset("cifar10", *readers.read_cifar10(_cifar_path(d)),
                      ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                       "ship", "truck"]),
    alt_files=(("cifar-10-batches-bin",), ("cifar-10-python.tar.gz",))))


def _cifar_path(d: Path) -> Path:
    for name in ("cifar-10-batches-py", "cifar-10-batches-bin", "cifar-10-python.tar.gz"):
        if (d / name).exists():
            return d / name
    raise DataError(f"{d}: no CIFAR-10 files")


def _synthetic(_: Path) -> Dataset:
    from .synthetic import make_synthetic

    return make_synthetic()


_register(DatasetSpec("synthetic", "class-dependent shapes, 1x28x28, 2,000 / 500, 4 classes "
                                    "(generated, for tests and smoke runs)", (), _synthetic))


def list_datasets() -> list[tuple[str, str]]:
    return [(name, spec.description) for name, spec in DATASETS.items()]
