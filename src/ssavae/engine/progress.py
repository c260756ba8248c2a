"""The progress bar of a run (``train.progress``): one rich bar per epoch with the latest losses."""
from __future__ import annotations

import math

from .callbacks import Callback


class ProgressBar(Callback):
    """A rich progress bar per epoch with the latest logged losses (process 0 only)."""

    def __init__(self):
        self._p = self._task = None

    def on_fit_start(self, trainer, resumed) -> None:
        if not trainer.is_main or self._p is not None:  # (again after a rollback: the same bar)
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
        from rich.table import Column

        # on a narrow terminal the losses are cut short, never the phase and epoch
        self._p = Progress(TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True, min_width=16)),
                           BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                           TextColumn("{task.fields[losses]}", table_column=Column(
                               no_wrap=True, overflow="ellipsis", ratio=1)))
        self._p.__enter__()

    def on_epoch_start(self, trainer, phase, epoch) -> None:
        if self._p is not None:
            self._task = self._p.add_task(f"{phase.name} {epoch + 1}/{trainer.phase_epochs(phase)}",
                                          total=trainer.epoch_batches(), completed=trainer.progress["batch"],
                                          losses="")

    def on_log(self, trainer, row) -> None:
        if self._p is not None:
            shown = [(k.split("/")[-1], v) for k, v in row.items()
                     if "/" in k and isinstance(v, float) and math.isfinite(v)]
            self._p.update(self._task, losses="  ".join(f"{k} {v:.4g}" for k, v in shown[:6]))

    def on_batch_end(self, trainer, phase, logs, x) -> None:
        if self._p is not None:
            self._p.update(self._task, completed=trainer.progress["batch"])

    def on_fit_end(self, trainer) -> None:
        if self._p is not None:
            self._p.__exit__(None, None, None)
            self._p = None
