"""Trained models to share: a directory anyone can load without running anyone's code.

    DIR/model.safetensors   the weights and buffers, tensors only (safetensors)
    DIR/config.json         the family, its config, the data's shape and classes, the input
                            preprocessing (a standardized table's column means and scales) and
                            the SHA-256 of model.safetensors
    DIR/README.md           a model card: family, data, the command, evaluation numbers

Written by ``ssavae export RUN_DIR --out DIR`` (``runs.export_run``, which also copies the run's
summary, evaluation and final figures in the run-directory layout, so ``ssavae sample``,
``evaluate``, ``complete`` and ``report`` take DIR as they take a run) or by
``model.save_pretrained(DIR)``; read by ``ssavae.from_pretrained(DIR)``. No pickle anywhere:
safetensors stores raw tensors behind a JSON header and config.json is JSON; a file changed after
export fails its checksum and is refused.

A neutral module (models write through it, ``runs`` reads through it): it knows files, not families.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

import torch

from . import __version__
from .errors import CheckpointError
from .fileio import atomic_path

FORMAT = 1
WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "README.md"


def is_pretrained(path: str | Path) -> bool:
    return (Path(path) / WEIGHTS).is_file() and (Path(path) / CONFIG).is_file()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _safetensors():
    try:
        from safetensors import torch as st
    except ImportError as e:  # a dependency of the package; only a broken install lacks it
        raise CheckpointError("reading or writing a shared model needs safetensors: pip install safetensors") from e
    return st


def write(out: str | Path, *, config: dict, info: dict, state: dict[str, torch.Tensor],
          preprocess: Optional[dict] = None, card: Optional[dict] = None) -> Path:
    """Write DIR/model.safetensors, DIR/config.json and DIR/README.md (each atomically, the
    weights first, so a DIR with a config.json always has the weights it names).
    ``config``: a run config as a dict (``{"model": {"name": family, ...}, ...}``); ``info``: the
    data's ``shape``, ``num_classes``, ``unit_range`` (and ``classes`` if known); ``card``: what
    the model card reports (``command``, ``summary``, ``evaluation``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}  # shared storage refused
    with atomic_path(out / WEIGHTS) as tmp:
        _safetensors().save_file(tensors, str(tmp), metadata={"format": "pt", "library": "ssavae"})
    meta = {"format": FORMAT, "library_version": __version__, "family": config["model"]["name"],
            "config": config, "data_info": info, "preprocess": preprocess,
            "weights_sha256": _sha256(out / WEIGHTS)}
    with atomic_path(out / CONFIG) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
    with atomic_path(out / CARD) as tmp:
        tmp.write_text(model_card(meta, card or {}))
    return out


def read(path: str | Path) -> dict[str, Any]:
    """config.json's content with the weights under ``"state"``; refuses a directory that is
    not an export, a newer format, and weights that do not match their checksum."""
    path = Path(path)
    if not is_pretrained(path):
        raise CheckpointError(f"{path} is not an exported ssavae model (no {WEIGHTS} and {CONFIG}): "
                              "make one with ssavae export RUN_DIR --out DIR")
    try:
        meta = json.loads((path / CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path / CONFIG} is not valid JSON ({e}); export the model again") from None
    if not isinstance(meta, dict) or "format" not in meta or "config" not in meta:
        raise CheckpointError(f"{path / CONFIG} is not an ssavae export's config (no format/config)")
    if meta["format"] > FORMAT:
        raise CheckpointError(f"{path} was exported by a newer ssavae (format {meta['format']}); upgrade ssavae")
    if _sha256(path / WEIGHTS) != meta.get("weights_sha256"):
        raise CheckpointError(f"{path / WEIGHTS} does not match the checksum in {CONFIG}: it was changed "
                              "after export; export the model again from its run")
    try:
        meta["state"] = _safetensors().load_file(str(path / WEIGHTS))
    except Exception as e:  # a malformed header or a cut file: never code, only a parse error
        raise CheckpointError(f"{path / WEIGHTS} is not a readable safetensors file "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    return meta


def _number(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def model_card(meta: dict, card: dict) -> str:
    """README.md of an export: what the model is, how it was trained, what it scored."""
    cfg, info = meta["config"], meta["data_info"]
    data = cfg.get("data", {})
    shape = " x ".join(map(str, info["shape"]))
    lines = [f"# ssavae {meta['family']} model", "",
             f"A `{meta['family']}` model trained with ssavae {meta['library_version']} on "
             f"`{data.get('name', 'unknown data')}` (inputs of shape {shape}, {info['num_classes']} classes"
             + (f", {data['labels_per_class']} labels per class" if data.get("labels_per_class") else "")
             + ").", "", "```python", "import ssavae", "",
             'model = ssavae.from_pretrained("path/to/this/directory")   # no pickle: safetensors and JSON',
             "```", ""]
    if meta.get("preprocess"):
        lines += ["The model takes rows as the training command read them: it standardizes each column "
                  "with the training rows' mean and scale (config.json, `preprocess`) itself.", ""]
    if card.get("command"):
        lines += ["## Training command", "", "```", card["command"], "```", ""]
    for title, numbers in (("Test-set numbers at the end of training", card.get("summary")),
                           ("Evaluation (ssavae evaluate)", card.get("evaluation"))):
        rows = {k: v for k, v in (numbers or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if rows:
            lines += [f"## {title}", "", "| metric | value |", "|---|---:|"]
            lines += [f"| {k} | {_number(v)} |" for k, v in rows.items()] + [""]
    lines += ["## Files", "", f"- `{WEIGHTS}`: weights and buffers (safetensors)",
              f"- `{CONFIG}`: family, config, data shape, preprocessing, the weights' SHA-256",
              f"- `{CARD}`: this card", ""]
    return "\n".join(lines)


def push_to_hub(path: str | Path, repo_id: str, private: bool = False) -> str:
    """Upload an exported directory to the Hugging Face Hub (``pip install 'ssavae[hub]'``, after
    ``huggingface-cli login``); ``ssavae.from_pretrained(repo_id)`` loads it back. Returns its URL."""
    read(path)  # only a whole, untampered export leaves the machine
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise CheckpointError("pushing to the Hugging Face Hub needs huggingface_hub: "
                              "pip install 'ssavae[hub]'") from None
    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(folder_path=str(path), repo_id=repo_id, commit_message="ssavae export")
    return f"https://huggingface.co/{repo_id}"
