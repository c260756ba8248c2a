"""Checkpoints: plain dicts of tensors and primitives, written atomically, loadable with
``torch.load(weights_only=True)``. Never pickled modules.

A neutral module: the engine writes checkpoints, the run layer and the evaluator read them.
Format 2 (ssavae 0.2): networks are trunks with named heads; format-1 files (ssavae 0.1) hold
another parameter layout and are refused with a message."""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .errors import CheckpointError
from .fileio import atomic_path

FORMAT_VERSION = 2


def save_atomic(obj: dict, path: str | Path) -> None:
    """Write to a temporary file in the same folder, then rename: a crash never leaves half a file."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())


def load(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for a damaged file
        raise CheckpointError(f"{path} is not a readable ssavae checkpoint ({e})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format_version") is None:
        raise CheckpointError(f"{path} is not an ssavae checkpoint (no format_version)")
    if ckpt["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer ssavae (format "
                              f"{ckpt['format_version']}); upgrade ssavae to read it")
    if ckpt["format_version"] < FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by ssavae {ckpt.get('library_version', '0.1')} "
                              f"(format {ckpt['format_version']}), whose networks had another "
                              "parameter layout: retrain with this version, or read it with "
                              "pip install 'ssavae<0.2'")
    return ckpt


def rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
        "numpy_pos": int(np.random.get_state()[2]),
        "python": repr(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import ast

    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    random.setstate(ast.literal_eval(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def make(model, optimizers: dict, progress: dict, config: dict) -> dict:
    """The checkpoint dict of a run at a batch boundary."""
    return {
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "family": model.name,
        "config": config,
        "data_info": {"shape": list(model.info.shape), "num_classes": model.info.num_classes,
                      "unit_range": model.info.unit_range},
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "progress": dict(progress),
        "rng": rng_state(),
    }
