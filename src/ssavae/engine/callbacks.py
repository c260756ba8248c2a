"""What the training loop does besides training: each job is a callback with one small protocol.

The ``Trainer`` calls every hook of every callback, in list order, on every process; a hook that
must run once (writing a file, drawing a bar) checks ``trainer.is_main``. A callback acts on the
loop only through ``trainer.end_phase(now=...)`` or by raising (a ``TrainingError`` stops the
run; the batch that raised it is logged first). ``runs.train`` assembles the callbacks of a run
directory; an in-memory fit (the estimator) passes only the ones it wants, or none.
"""
from __future__ import annotations

import logging
import math
import shutil
import signal
import time
from pathlib import Path
from typing import Any, Optional

import torch

from .. import checkpoint as ckpt_io
from ..errors import TrainingError
from ..fileio import atomic_path
from ..runlog import MetricsWriter
from .device import step_lr

log = logging.getLogger(__name__)


class Callback:
    """Every hook is a no-op; override the ones you need. ``logs``: step name -> that step's logs
    for this batch; ``row``: one logged row (``step``, ``phase``, ``epoch``, ``time`` and the
    steps' means since the last row, keyed ``step/name``)."""

    alarmed = False  # True while no checkpoint may capture the model (the stability guard)

    def on_fit_start(self, trainer, resumed: bool) -> None: ...
    def on_phase_start(self, trainer, phase) -> None: ...
    def on_epoch_start(self, trainer, phase, epoch: int) -> None: ...
    def on_log(self, trainer, row: dict) -> None: ...
    def on_batch_end(self, trainer, phase, logs: dict, x: torch.Tensor) -> None: ...
    def on_epoch_end(self, trainer, phase, epoch: int) -> None: ...
    def on_phase_end(self, trainer, phase) -> None: ...
    def on_stop(self, trainer) -> None:
        """The run stops before its end and can be resumed (Ctrl-C, SIGTERM, ``train.max_steps``)."""

    def on_fit_end(self, trainer) -> None:
        """Always, also when training raised."""

    def on_divergence(self, trainer, error) -> bool:
        """A ``DivergenceError`` left the loop: True if this callback put the trainer back in a sound
        state to train on from (``Rollback``); the trainer then calls ``on_fit_start(resumed=True)``."""
        return False


def improves(value: Any, best: Any, mode: str = "max") -> bool:
    """Whether ``value`` beats ``best`` (None: nothing yet); tuples compare element by element.
    The one notion of "better epoch", for best.pt and for early stopping."""
    return best is None or (value < best if mode == "min" else value > best)


class Checkpointer(Callback):
    """The checkpoint ``last`` (written atomically) every ``every`` steps, after every epoch and
    phase and when the run stops early; with ``keep``, copies of the last ``keep`` epoch-end
    checkpoints beside it (``epoch-STEP-PHASE-EPOCH.pt``); with ``best_metric``, ``best`` = the
    epoch whose mean of that logged value is best (recorded in ``progress["best"]``, which the
    checkpoint carries). ``config``: the run's, stored in each. Nothing is written while a callback
    is alarmed: the last file on disk then stays the last sound state."""

    def __init__(self, last: Path, best: Path, config: dict, every: int = 500, keep: int = 0,
                 best_metric: Optional[str] = None, best_mode: str = "min"):
        self.last, self.best, self.config, self.every, self.keep = Path(last), Path(best), config, every, keep
        self.best_metric, self.best_mode = best_metric, best_mode
        self._sums: dict[str, tuple[float, int]] = {}  # this epoch's logged values, for best_metric

    def save(self, trainer) -> bool:
        if trainer.agree(any(cb.alarmed for cb in trainer.callbacks)):
            log.warning("stability guard alarmed: checkpoint %s not written", self.last)
            return False
        state = ckpt_io.make(trainer.model, trainer.optimizers, trainer.progress, self.config)
        path = self.last
        if trainer.is_main:
            try:
                ckpt_io.save_atomic(state, path)
            except OSError as e:  # a full disk, a quota, a vanished folder: the previous file stands
                raise TrainingError(f"cannot write the checkpoint {path} ({e.strerror or e}); the previous "
                                    "checkpoint is intact: free space (or fix the folder) and continue "
                                    "with --resume") from e
        trainer.fabric.barrier()
        return True

    def on_phase_start(self, trainer, phase) -> None:
        self._sums.clear()

    def on_batch_end(self, trainer, phase, logs, x) -> None:
        if self.best_metric is not None:
            for step, values in logs.items():
                for k, v in values.items():
                    total, n = self._sums.get(f"{step}/{k}", (0.0, 0))
                    self._sums[f"{step}/{k}"] = (total + float(v), n + 1)
        if trainer.progress["global_step"] % self.every == 0:
            self.save(trainer)

    def on_epoch_end(self, trainer, phase, epoch) -> None:
        p, previous = trainer.progress, trainer.progress.get("best")
        improved = self._track_best(trainer, phase)
        if not self.save(trainer):
            if improved:  # not on disk: this epoch is not the best one there
                p["best"] = previous
            return
        if not trainer.is_main:
            return
        last = self.last
        if self.keep:
            _copy_atomic(last, last.with_name(f"epoch-{p['global_step']:08d}-{phase.name}-{p['epoch']:03d}.pt"))
            for old in sorted(last.parent.glob("epoch-*.pt"))[:-self.keep]:  # oldest first
                old.unlink()
        if improved:
            _copy_atomic(last, self.best)

    def _track_best(self, trainer, phase) -> bool:
        if self.best_metric is None:
            return False
        means, self._sums = {k: t / n for k, (t, n) in self._sums.items()}, {}
        if self.best_metric not in means:
            raise TrainingError(f"train.best_metric {self.best_metric!r} is not logged by {trainer.model.name} in "
                                f"phase {phase.name}; logged: {', '.join(sorted(means))}")
        value, best = means[self.best_metric], trainer.progress.get("best")
        if not improves(value, None if best is None else best["value"], self.best_mode):
            return False
        trainer.progress["best"] = {"metric": self.best_metric, "value": value, "phase": phase.name,
                                    "epoch": trainer.progress["epoch"]}
        return True

    def on_phase_end(self, trainer, phase) -> None:
        self.save(trainer)

    def on_stop(self, trainer) -> None:
        self.save(trainer)


def _copy_atomic(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


class MetricsLog(Callback):
    """Every logged row into ``path`` (JSON lines; rows past a resumed checkpoint's step dropped);
    the other trackers are ``tracking.Trackers``."""

    def __init__(self, path: Path):
        self.path, self._writer = Path(path), None

    def on_fit_start(self, trainer, resumed) -> None:
        self.on_fit_end(trainer)  # after a rollback: the rows past its step are dropped on reopening
        if trainer.is_main:
            self._writer = MetricsWriter(self.path, trainer.progress["global_step"] if resumed else None)

    def on_log(self, trainer, row) -> None:
        if self._writer is not None:
            self._writer.write(row)

    def on_fit_end(self, trainer) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class TimeBudget(Callback):
    """``minutes`` of wall clock for the whole fit, shared equally by the phases still to train:
    a phase whose share is spent ends at once and the next one begins."""

    def __init__(self, minutes: float):
        self.seconds, self._deadline, self._start = 60 * minutes, math.inf, None

    def on_fit_start(self, trainer, resumed) -> None:
        self._start = self._start or time.time()  # a rollback does not restart the clock

    def on_phase_start(self, trainer, phase) -> None:
        left = self.seconds - (time.time() - self._start)
        todo = sum(1 for p in trainer.model.phases()[trainer.progress["phase"]:]  # this one included
                   if p.name not in trainer.progress["completed"] and trainer.phase_epochs(p) > 0)
        self._deadline = time.time() + max(left, 0.0) / max(todo, 1)
        self.on_batch_end(trainer, phase, {}, None)

    def on_batch_end(self, trainer, phase, logs, x) -> None:
        if time.time() >= self._deadline:
            trainer.end_phase(now=True)


class CosineLR(Callback):
    """``train.lr_schedule cosine``: each step's learning rate goes from its base (``base_lr``) to
    0 over each phase, half a cosine, set before every batch (resumes where it was)."""

    def on_epoch_start(self, trainer, phase, epoch) -> None:
        self.on_batch_end(trainer, phase, {}, None)  # for the epoch's first batch (or the resumed one)

    def on_batch_end(self, trainer, phase, logs, x) -> None:  # for the next batch
        n, epochs = trainer.epoch_batches(), trainer.phase_epochs(phase)
        t = (trainer.progress["epoch"] * n + trainer.progress["batch"]) / max(1, epochs * n)
        for step in phase.steps:
            for group in trainer.optimizers[step.name].param_groups:
                group["lr"] = step_lr(trainer.train_cfg, step, trainer.progress) * 0.5 * (1 + math.cos(math.pi * t))


class SignalStop(Callback):
    """Ctrl-C / SIGTERM finish the current batch, then the run stops as ``request_stop`` says
    (``on_stop``: a checkpoint); a second signal stops at once. Main thread only."""

    def on_fit_start(self, trainer, resumed) -> None:
        def handler(signum, frame):
            if trainer._stop_requested:  # second signal: stop now
                raise KeyboardInterrupt
            log.warning("stop requested: finishing this batch and writing a checkpoint "
                        "(press Ctrl-C again to abort at once)")
            trainer.request_stop()

        self._previous = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: no handlers
            pass

    def on_fit_end(self, trainer) -> None:
        for sig, h in self._previous.items():
            signal.signal(sig, h)


def from_settings(train) -> list[Callback]:
    """The callbacks ``train.*`` asks for that need no directory (the ``Trainer`` adds them): the
    stability guard, the time budget, the cosine schedule and the progress bar."""
    from .guard import StabilityGuard
    from .progress import ProgressBar

    out: list[Callback] = []
    if train.guard:
        out.append(StabilityGuard(train))
    if train.max_minutes:
        out.append(TimeBudget(train.max_minutes))
    if train.lr_schedule == "cosine":
        out.append(CosineLR())
    if train.progress:
        out.append(ProgressBar())
    return out
