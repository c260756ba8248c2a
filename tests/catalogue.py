"""The catalogue of bad inputs (docs/reliability.md): what a user gets wrong, the command that
shows it, and a part of the one-line message ``ssavae`` answers with (exit status 2).

Each case writes what it needs (data files in their real formats, run directories) under a
folder it is given and returns the command line. ``tests/test_bad_inputs.py`` runs every case;
``scripts/error_catalogue.py`` prints the table with the exact messages for the docs.
"""
from __future__ import annotations

import gzip
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

# a small, quick model for the cases that get as far as building one
QUICK = ["--model.arch", "mlp", "--model.hidden", "16", "--model.mlp_hidden", "[16]",
         "--train.fast_dev_run", "true", "--train.progress", "false", "--train.sample_every", "0"]


@dataclass(frozen=True)
class Case:
    id: str
    what: str  # the mistake, as the user makes it
    argv: Callable[[Path], list[str]]  # writes the case's files under the folder; the command line
    expect: str  # a part of the message


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def train(tmp: Path, *args: str, model: str = "vae") -> list[str]:
    return ["train", "--model", model, "--out", str(tmp / "run"), *QUICK, *args]


def _idx(path: Path, arr: np.ndarray, magic: int | None = None, dims: tuple | None = None,
         cut: int = 0) -> Path:
    """An IDX file (uint8), gzipped like the official files; optionally a wrong magic number,
    header dimensions that are not the data's, or the last ``cut`` bytes missing."""
    dims = arr.shape if dims is None else dims
    head = struct.pack(">I", magic if magic is not None else 0x800 + len(dims)) + \
        b"".join(struct.pack(">I", d) for d in dims)
    raw = head + arr.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw[:len(raw) - cut]))
    return path


def fashion(tmp: Path, images: dict | None = None, labels: dict | None = None, n: int = 20,
            gz_images: bytes | None = None) -> Path:
    """A Fashion-MNIST folder in the official format; ``images`` / ``labels`` spoil a file."""
    d = tmp / "fmnist"
    rng = np.random.default_rng(0)
    for split, m in (("train", n), ("t10k", 10)):
        _idx(d / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (m, 28, 28)),
             **(images if split == "train" and images else {}))
        _idx(d / f"{split}-labels-idx1-ubyte.gz", np.arange(m) % 10,
             **(labels if split == "train" and labels else {}))
    if gz_images is not None:
        (d / "train-images-idx3-ubyte.gz").write_bytes(gz_images)
    return d


def fashion_args(tmp: Path, **spoil) -> list[str]:
    return train(tmp, "--data", "fashion-mnist", "--data.data_dir", str(fashion(tmp, **spoil)))


def npz(tmp: Path, **arrays) -> str:
    path = tmp / "data.npz"
    np.savez(path, **arrays)
    return f"npz:{path}"


def images(n: int = 40, k: int = 4) -> dict:
    rng = np.random.default_rng(0)
    return {"x_train": rng.integers(0, 256, (n, 8, 8)).astype(np.uint8), "y_train": np.arange(n) % k}


def npz_args(tmp: Path, model: str = "vae", extra: tuple = (), **change) -> list[str]:
    a = images()
    a.update(change)
    return train(tmp, "--data", npz(tmp, **{k: v for k, v in a.items() if v is not None}), *extra, model=model)


def csv(tmp: Path, text: str) -> str:
    path = tmp / "table.csv"
    path.write_text(text)
    return f"csv:{path}"


def csv_args(tmp: Path, text: str) -> list[str]:
    return train(tmp, "--data", csv(tmp, text))


def folder(tmp: Path, sizes: dict[str, list[tuple[int, int]]], junk: str | None = None) -> str:
    from PIL import Image

    root = tmp / "images"
    root.mkdir()
    for cls, shapes in sizes.items():
        (root / cls).mkdir()
        for i, (w, h) in enumerate(shapes):
            Image.fromarray(np.full((h, w), 40 * i, np.uint8)).save(root / cls / f"{i}.png")
    if junk:
        (root / junk).write_bytes(b"this is not a png")
    return f"folder:{root}"


def folder_args(tmp: Path, sizes, junk=None) -> list[str]:
    return train(tmp, "--data", folder(tmp, sizes, junk))


class _Payload:
    """Unpickling this runs ``touch PWNED`` in the current folder."""

    def __reduce__(self):
        import os
        return (os.system, ("touch PWNED",))


def cifar(tmp: Path, payload: object) -> list[str]:
    d = tmp / "cifar-10-batches-py"
    d.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (d / name).write_bytes(pickle.dumps(payload))
    return train(tmp, "--data", "cifar10", "--data.data_dir", str(tmp))


def run_dir(tmp: Path, *args: str, model: str = "vae") -> Path:
    """A finished quick run on synthetic data, made with the package's own API."""
    from ssavae.cli import main

    if main(train(tmp, "--data", "synthetic", "--data.limit_train", "64", "--data.limit_test", "32",
                  *args, model=model)) != 0:
        raise RuntimeError("the quick run the case needs did not train")
    return tmp / "run"


def spoiled_checkpoint(tmp: Path, how: str) -> list[str]:
    import torch

    run = run_dir(tmp)
    last = run / "checkpoints" / "last.pt"
    if how == "truncated":
        last.write_bytes(last.read_bytes()[:1000])
    elif how == "flipped":
        raw = bytearray(last.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        last.write_bytes(bytes(raw))
    elif how == "newer":
        ck = torch.load(last, weights_only=True)
        ck["format_version"] = 99
        torch.save(ck, last)
    elif how == "pickle":
        with open(last, "wb") as f:
            pickle.dump({"format_version": _Payload()}, f)
    elif how == "torch-pickle":  # the payload inside torch's own zip format
        torch.save({"format_version": 2, "model": _Payload()}, last)
    elif how == "other_family":
        other = run_dir(tmp / "other", model="ssavae")
        last.write_bytes((other / "checkpoints" / "last.pt").read_bytes())
    return ["evaluate", str(run), "--n", "16"]


def not_a_zip(tmp: Path) -> list[str]:
    (tmp / "data.npz").write_bytes(b"PK\x03\x04 not really a zip")
    return train(tmp, "--data", f"npz:{tmp / 'data.npz'}")


def pickled_npz(tmp: Path) -> list[str]:
    path = tmp / "data.npz"
    with zipfile.ZipFile(path, "w") as z:
        with z.open("x_train.npy", "w") as f:
            np.save(f, np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)
    return train(tmp, "--data", f"npz:{path}")


def read_only_out(tmp: Path) -> list[str]:
    (tmp / "afile").write_text("a file, not a folder")
    return ["train", "--model", "vae", "--data", "synthetic", "--out", str(tmp / "afile" / "run"), *QUICK]


def resume_changed(tmp: Path) -> list[str]:
    run_dir(tmp)
    return train(tmp, "--data", "synthetic", "--data.limit_train", "64", "--data.limit_test", "32",
                 "--model.latent_dim", "7", "--resume")


CASES: list[Case] = [
    # ---- dataset files
    Case("idx-magic", "an IDX image file with a wrong magic number",
         lambda t: fashion_args(t, images={"magic": 0x1234}), "magic"),
    Case("idx-truncated", "an IDX image file cut short (an interrupted download)",
         lambda t: fashion_args(t, images={"cut": 100}), "truncated"),
    Case("idx-huge-header", "an IDX header that claims 10^9 images of 28 x 28",
         lambda t: fashion_args(t, images={"dims": (10 ** 9, 28, 28)}), "header"),
    Case("idx-count-mismatch", "image and label files of different lengths",
         lambda t: fashion_args(t, labels={"dims": (19,), "cut": 1}), "labels"),
    Case("idx-shape", "an IDX image file holding vectors, not images",
         lambda t: fashion_args(t, images={"dims": (20 * 28, 28)}), "expected (N, H, W) images"),
    Case("gzip-corrupt", "a .gz file that is not gzip data",
         lambda t: fashion_args(t, gz_images=b"\x1f\x8b\x08garbage"), "gzip"),
    Case("dataset-missing", "a dataset that is nowhere on the machine",
         lambda t: train(t, "--data", "omniglot", "--data.data_dir", str(t)), "download"),
    Case("dataset-unknown", "a dataset name that does not exist",
         lambda t: train(t, "--data", "fashion-mnits"), "fashion-mnits"),
    Case("source-unknown", "an unknown user-data kind",
         lambda t: train(t, "--data", f"parquet:{t}"), "npz:PATH"),
    Case("user-file-missing", "a user data file that does not exist",
         lambda t: train(t, "--data", f"npz:{t / 'nope.npz'}"), "does not exist"),
    Case("npz-not-zip", "a .npz that is not a zip archive", not_a_zip, "cannot read as .npz"),
    Case("npz-pickle", "a .npz whose array holds pickled Python objects", pickled_npz, "cannot read as .npz"),
    Case("npz-no-x", "a .npz without x_train (or x)",
         lambda t: npz_args(t, x_train=None, features=np.zeros((4, 3))), "x_train"),
    Case("npz-length", "x_train and y_train of different lengths",
         lambda t: npz_args(t, y_train=np.zeros(3, np.int64)), "rows"),
    Case("npz-nan", "NaN in the features",
         lambda t: npz_args(t, x_train=np.full((40, 6), np.nan)), "NaN"),
    Case("npz-inf", "an infinite value in the features",
         lambda t: npz_args(t, x_train=np.where(np.eye(40, 6) > 0, np.inf, 0.0)), "infinite"),
    Case("npz-ndim", "a 1-D array of features",
         lambda t: npz_args(t, x_train=np.zeros(40)), "expected (N, D) vectors"),
    Case("npz-strings", "features that are strings",
         lambda t: npz_args(t, x_train=np.array([["a", "b"]] * 40)), "not numeric"),
    Case("image-range", "float images with values outside [0, 1] (0..255 floats)",
         lambda t: npz_args(t, x_train=np.full((40, 8, 8), 255.0)), "[0, 1]"),
    Case("labels-negative", "a label below -1",
         lambda t: npz_args(t, y_train=np.full(40, -3)), "-1 for unlabeled"),
    Case("labels-fraction", "labels with fractions (2.5)",
         lambda t: npz_args(t, y_train=np.full(40, 2.5)), "whole numbers"),
    Case("labels-2d", "labels as a one-hot matrix",
         lambda t: npz_args(t, y_train=np.eye(40, 4)), "1-D"),
    Case("csv-ragged", "a table row with a missing cell",
         lambda t: csv_args(t, "a,b,label\n1,2,0\n3,1\n"), "cells"),
    Case("csv-text", "a table cell that is not a number",
         lambda t: csv_args(t, "a,b,label\n1,2,0\n3,x,1\n"), "number"),
    Case("csv-empty", "a table with a header and no rows",
         lambda t: csv_args(t, "a,b,label\n"), "at least one row"),
    Case("csv-no-label-column", "a table without the label column, for a family that needs labels",
         lambda t: train(t, "--data", csv(t, "a,b\n" + "1,2\n" * 20), model="ssavae"), "label"),
    Case("folder-not-dir", "an image folder path that is a file",
         lambda t: train(t, "--data", f"folder:{write(t / 'x.txt', 'x')}"), "not a folder"),
    Case("folder-flat", "an image folder without class sub-folders",
         lambda t: train(t, "--data", f"folder:{write(t / 'flat' / 'a.png', '').parent}"), "no class sub-folders"),
    Case("folder-empty", "class folders without images",
         lambda t: folder_args(t, {"cat": [], "dog": []}), "hold no images"),
    Case("folder-bad-image", "a file that is not an image in a class folder",
         lambda t: folder_args(t, {"cat": [(8, 8)], "dog": [(8, 8)]}, junk="cat/broken.png"), "not a readable image"),
    Case("folder-not-square", "images that are not square (without a size to resize them to)",
         lambda t: folder_args(t, {"cat": [(8, 10)], "dog": [(8, 8)]}), "data.image_size"),
    Case("folder-sizes", "images of different sizes in one folder",
         lambda t: folder_args(t, {"cat": [(8, 8)], "dog": [(10, 10)]}), "is 8x8; set data.image_size"),
    Case("cifar-pickle", "a CIFAR-10 batch file carrying a pickle that runs a command",
         lambda t: cifar(t, _Payload()), "refusing to unpickle"),
    Case("cifar-not-batch", "a CIFAR-10 batch file holding something else",
         lambda t: cifar(t, [1, 2, 3]), "CIFAR-10"),
    # ---- labels and splits
    Case("labels-per-class-too-many", "more labels per class than the data has",
         lambda t: npz_args(t, extra=("--data.labels_per_class", "50"), model="ssavae"), "labels_per_class"),
    Case("no-labels", "a family that needs labels, on data with none",
         lambda t: npz_args(t, y_train=np.full(40, -1), model="ssavae"), "label"),
    Case("conditional-no-labels", "a conditional family on data without labels",
         lambda t: npz_args(t, y_train=None, model="cvae"), "label"),
    Case("one-class", "a classifier on data with a single class",
         lambda t: npz_args(t, y_train=np.zeros(40, np.int64), model="classifier"), "class"),
    Case("validation-too-big", "a validation split as large as the training set",
         lambda t: npz_args(t, extra=("--data.validation_size", "40")), "validation_size"),
    Case("validation-missing", "evaluating on a validation split that was not asked for",
         lambda t: npz_args(t, extra=("--data.evaluate_on", "validation")), "validation_size"),
    # ---- configs
    Case("config-unknown-key", "a misspelt config field",
         lambda t: train(t, "--data", "synthetic", "--model.latent_dimm", "4"), "latent_dimm"),
    Case("config-type", "a number field given a word",
         lambda t: train(t, "--data", "synthetic", "--train.epochs", "ten"), "epochs"),
    Case("config-range", "a negative learning rate",
         lambda t: train(t, "--data", "synthetic", "--train.lr", "-1"), "lr"),
    Case("config-choice", "a value outside a field's choices",
         lambda t: train(t, "--data", "synthetic", "--train.optimizer", "adamm"), "optimizer"),
    Case("best-metric-unknown", "keeping the best checkpoint by a value the family does not log",
         lambda t: train(t, "--data", "synthetic", "--train.best_metric", "vae/acc"), "vae/loss"),
    Case("model-unknown", "a model family that does not exist",
         lambda t: train(t, "--data", "synthetic", model="vea"), "vea"),
    Case("config-file-missing", "a --config file that does not exist",
         lambda t: train(t, "--data", "synthetic", "--config", str(t / "nope.yaml")), "nope.yaml"),
    Case("config-file-yaml", "a --config file that is not valid YAML",
         lambda t: train(t, "--data", "synthetic", "--config", str(write(t / "c.yaml", "model: [unclosed"))),
         "not valid YAML"),
    # ---- command line and run directories
    Case("cli-unknown-flag", "a flag that does not exist",
         lambda t: train(t, "--data", "synthetic", "--epochs", "3"), "--epochs"),
    Case("out-under-file", "an output folder below a file", read_only_out, "afile"),
    Case("run-missing", "evaluating a run directory that does not exist",
         lambda t: ["evaluate", str(t / "nope")], "not a run directory"),
    Case("run-exists", "training into a finished run's folder without --resume",
         lambda t: train(run_dir(t).parent, "--data", "synthetic"), "--resume"),
    Case("resume-no-out", "--resume without --out", lambda t: ["train", "--resume"], "--out"),
    Case("resume-not-run", "--resume on a folder that holds no run",
         lambda t: train(t, "--data", "synthetic", "--resume"), "run directory"),
    Case("resume-changed", "--resume with a changed model field", resume_changed, "latent_dim"),
    Case("checkpoint-truncated", "a checkpoint cut short", lambda t: spoiled_checkpoint(t, "truncated"),
         "checkpoint"),
    Case("checkpoint-flipped", "a checkpoint with one byte changed", lambda t: spoiled_checkpoint(t, "flipped"),
         "checksum"),
    Case("checkpoint-newer", "a checkpoint of a newer format", lambda t: spoiled_checkpoint(t, "newer"),
         "newer"),
    Case("checkpoint-pickle", "a checkpoint carrying a pickle that runs a command",
         lambda t: spoiled_checkpoint(t, "pickle"), "nothing in it was executed"),
    Case("checkpoint-torch-pickle", "a checkpoint in torch's format whose pickle runs a command",
         lambda t: spoiled_checkpoint(t, "torch-pickle"), "nothing in it was executed"),
    Case("checkpoint-other-family", "a run directory whose checkpoint is of another family",
         lambda t: spoiled_checkpoint(t, "other_family"), "ssavae"),
    Case("sample-label", "sampling a class the model does not have",
         lambda t: ["sample", str(run_dir(t, model="cvae")), "--label", "12"], "--label"),
]
