"""Checkpoints: plain dicts of tensors and primitives, written atomically, loadable with
``torch.load(weights_only=True)``. Never pickled modules.

A neutral module: the engine writes checkpoints, the run layer and the evaluator read them.
Format 2 (ssavae 0.2): networks are trunks with named heads; format-1 files (ssavae 0.1) hold
another parameter layout and are refused with a message."""
from __future__ import annotations

import hashlib
import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .errors import CheckpointError
from .fileio import atomic_path

FORMAT_VERSION = 2


def digest(obj: Any) -> str:
    """SHA-256 of a checkpoint's content: every tensor's dtype, shape and bytes and every other
    value, in key order (so a changed byte anywhere in the weights or state is caught on load)."""
    h = hashlib.sha256()

    def feed(v: Any) -> None:
        if isinstance(v, dict):
            for k in sorted(v, key=str):
                h.update(repr(k).encode())
                feed(v[k])
        elif isinstance(v, (list, tuple)):
            h.update(b"[%d" % len(v))
            for item in v:
                feed(item)
        elif isinstance(v, torch.Tensor):
            t = v.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            h.update(repr(v).encode())
    feed(obj)
    return h.hexdigest()


def save_atomic(obj: dict, path: str | Path) -> None:
    """Write to a temporary file in the same folder (fsync), then rename: a crash or a full disk
    never leaves half a file, and the previous file stays until the new one is whole. The
    content's ``checksum`` is stored with it and verified by ``load``."""
    obj = {**obj, "checksum": digest({k: v for k, v in obj.items() if k != "checksum"})}
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
        if isinstance(e, pickle.UnpicklingError):  # the weights-only unpickler stopped: nothing ran
            raise CheckpointError(f"{path} is not a readable ssavae checkpoint: it holds something other than "
                                  "tensors and plain values (a damaged file, another program's file, or a "
                                  "pickle made to run code); nothing in it was executed") from e
        first = str(e).split(". ")[0].strip()
        raise CheckpointError(f"{path} is not a readable ssavae checkpoint ({type(e).__name__}: {first}); "
                              "it may be damaged or cut short: continue from another checkpoint or train again") from e
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
    stored = ckpt.pop("checksum", None)  # files written before checksums have none
    if stored is not None and stored != digest(ckpt):
        raise CheckpointError(f"{path} is damaged (its checksum does not match its content): continue "
                              "from another checkpoint of the run (checkpoints/) or train again")
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
        "data_info": model.info.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "progress": dict(progress),
        "rng": rng_state(),
    }


def restore(ckpt: dict, model, optimizers: dict, progress: dict) -> dict:
    """Put a checkpoint back exactly (``make``'s inverse): the model's and optimizers' states and
    the random streams; returns ``progress`` updated with the checkpoint's counters."""
    model.load_state_dict(ckpt["model"])
    for name, state in ckpt["optimizers"].items():
        if name in optimizers:
            optimizers[name].load_state_dict(state)
    set_rng_state(ckpt["rng"])
    return {**progress, **ckpt["progress"], "completed": list(ckpt["progress"]["completed"])}
