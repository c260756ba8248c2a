"""The run directory: its layout, in one place. Nothing else in the package spells a path inside a
run (tests/test_layout.py checks); every reader and writer asks a ``RunDir``::

    RUN_DIR/config.yaml            the resolved config (re-loadable with --config)
    RUN_DIR/metrics.jsonl          one row per logged step (RUN_DIR/tensorboard/ with train.loggers tensorboard)
    RUN_DIR/trackers.json          the ids of the run in its trackers (mlflow, wandb), for a resume
    RUN_DIR/checkpoints/last.pt    exact resume, written atomically (best.pt, epoch-*.pt as configured)
    RUN_DIR/figures/NAME.png       grids and maps (per epoch: NAME_PHASE_epochNNN.png)
    RUN_DIR/summary.json           test-set numbers of the finished run
    RUN_DIR/eval/metrics.json      ``ssavae evaluate``'s numbers (eval/NAME.json: other scores, e.g. the sweep's)
    RUN_DIR/standardization.json   a standardized table's column means and scales (tables only)
    RUN_DIR/command.txt            the command line(s) that started and resumed it (from the CLI)
    RUN_DIR/report.html            all of it on one self-contained page

``ssavae export`` writes a directory in the same layout whose weights are a shared model's
(pretrained.py: model.safetensors, config.json, README.md) instead of config.yaml and checkpoints.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from .fileio import atomic_path


class RunDir:
    """``RunDir(path)``: the files of the run at ``path`` (nothing is created until written)."""

    def __init__(self, root: "str | os.PathLike | RunDir"):
        self.root = Path(root.root if isinstance(root, RunDir) else root)

    def __fspath__(self) -> str:
        return str(self.root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    # ------------------------------------------------------------------ the layout
    config = property(lambda self: self.root / "config.yaml")
    metrics = property(lambda self: self.root / "metrics.jsonl")
    tensorboard = property(lambda self: self.root / "tensorboard")
    checkpoints = property(lambda self: self.root / "checkpoints")
    figures = property(lambda self: self.root / "figures")
    summary = property(lambda self: self.root / "summary.json")
    evaluation = property(lambda self: self.eval_file("metrics"))
    standardization = property(lambda self: self.root / "standardization.json")
    command = property(lambda self: self.root / "command.txt")
    trackers = property(lambda self: self.root / "trackers.json")
    report = property(lambda self: self.root / "report.html")

    last = property(lambda self: self.checkpoints / "last.pt")  # exact resume
    best = property(lambda self: self.checkpoints / "best.pt")  # the best epoch (train.best_metric)

    def checkpoint(self, name: Optional[str] = None) -> Path:
        """A checkpoint by file name; None: ``last``."""
        return self.last if name is None else self.checkpoints / name

    def eval_file(self, name: str) -> Path:
        """A JSON file of numbers computed after training (``metrics``: ``ssavae evaluate``'s)."""
        return self.root / "eval" / f"{name}.json"

    def figure(self, name: str) -> Path:
        return self.figures / f"{name}.png"

    explorer = property(lambda self: self.figures / "latent_explorer.json")  # the report's latent explorer

    # ------------------------------------------------------------------ state
    def is_run(self) -> bool:
        """Whether a run was started here (its config is written before the first step)."""
        return self.config.exists()

    def is_exported(self) -> bool:
        """Whether ``ssavae export`` wrote a shared model here (pretrained.py)."""
        from .pretrained import is_pretrained

        return not self.is_run() and is_pretrained(self.root)

    def finished(self) -> bool:
        return self.summary.exists()

    def resumable(self) -> bool:
        return self.checkpoint().exists()

    def final_figures(self) -> list[Path]:
        """The figures of the finished run (not the per-epoch ones), by name."""
        return sorted(p for p in self.figures.glob("*.png") if "epoch" not in p.name) if self.figures.exists() else []

    def epoch_figures(self) -> list[Path]:
        return sorted(self.figures.glob("*epoch*.png")) if self.figures.exists() else []

    # ------------------------------------------------------------------ reading and writing
    def read_json(self, path: Path) -> Optional[dict]:
        """One of the run's JSON files (``summary``, ``evaluation``, ``standardization``); None if absent."""
        return json.loads(path.read_text()) if path.exists() else None

    def write_json(self, path: Path, data) -> Path:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data, indent=2))
        return path

    def clean_partial_writes(self) -> None:
        """Remove what a process killed inside a checkpoint write left behind."""
        for stale in self.checkpoints.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
