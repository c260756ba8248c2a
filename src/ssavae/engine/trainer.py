"""The training loop, one for every family: it asks the model for its phases, update steps and
losses, and owns the optimizers, gradient averaging across processes, clipping and the progress
counters. All else (checkpoints, logs, the bar, the time budget, the guard, figures, early
stopping, rollback) is a callback (``callbacks.py``); devices and precision are ``device.py``.

Per batch, for each step of the current phase (docs/design.md, "The engine"): only the step's
groups require grad -> zero grad -> loss(Batch) -> backward (across processes: DDP's all-reduce)
-> clip -> optimizer step; a ``data="labeled"`` step also gets the labeled stream's batch. No
``retain_graph``: each step sees the weights the previous step of the same batch left.
"""
from __future__ import annotations

import logging
import time
from typing import Optional, Sequence

import torch

from .. import checkpoint as ckpt_io
from ..config import TrainConfig
from ..errors import DivergenceError, TrainingError
from ..models.contract import Batch, Phase, Step, check_contract, check_data
from .callbacks import Callback, from_settings
from .device import (StepForward, make_fabric, make_optimizers, means_across, place, resolve_precision, set_step_lrs,
                     step_output)
from .rollback import Rollback

log = logging.getLogger(__name__)


class Trainer:
    """Trains a model following ``model.phases()`` with the settings ``train`` (a ``TrainConfig``),
    on ``fabric`` (default: ``make_fabric(train)``), calling the callbacks the settings ask for
    (``from_settings``), then ``callbacks``, then ``Rollback`` (``train.on_divergence``). It knows
    no directory and writes nothing: checkpoints and logs are callbacks a caller adds (``runs.train``).
    ``progress`` (phase, epoch, batch, global_step, phase_step, completed phases), ``optimizers``
    and the model are the whole state a checkpoint holds."""

    def __init__(self, train: TrainConfig, fabric=None, callbacks: Sequence[Callback] = ()):
        self.train_cfg = train
        self.fabric = fabric if fabric is not None else make_fabric(train)
        self.precision = resolve_precision(train)
        self.callbacks = from_settings(train) + list(callbacks)
        self.callbacks += [Rollback(train.max_rollbacks)] if train.on_divergence == "rollback" else []
        self.progress = {"phase": 0, "epoch": 0, "batch": 0, "global_step": 0, "phase_step": 0, "completed": []}
        self._stop_requested = self._end_phase = self._end_now = False  # end_phase(): after the epoch / now

    @property
    def is_main(self) -> bool:
        return self.fabric.global_rank == 0

    def _emit(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    # ------------------------------------------------------------------ set-up
    def setup(self, model, resume_from: Optional[dict] = None) -> None:
        """Check the model's contract, move it to the device, build one optimizer per step
        and, with ``resume_from`` (a checkpoint dict), restore everything exactly."""
        self.model = place(model, self.fabric, self.train_cfg)
        self._trainable = {id(p) for p in model.parameters() if p.requires_grad}  # the user's frozen stay so
        groups = model.param_groups()
        check_contract(model, groups)
        self.optimizers = make_optimizers(model, groups, self.train_cfg)
        if resume_from is not None:
            self.progress = ckpt_io.restore(resume_from, model, self.optimizers, self.progress)
            set_step_lrs(model, self.optimizers, self.train_cfg, self.progress)
        self._fab_opts = {k: self.fabric.setup_optimizers(o) for k, o in self.optimizers.items()}
        self._step_params = {k: [p for g in o.param_groups for p in g["params"]] for k, o in self.optimizers.items()}
        self._all_params = list(model.parameters())  # several processes: each step's loss is one DDP forward
        self._replicated = self.fabric.setup_module(StepForward(self.model)) if self.fabric.world_size > 1 else None

    # ------------------------------------------------------------------ stopping
    def end_phase(self, now: bool = False) -> None:
        """End the current phase after the epoch that is finishing, or (``now``) before the next batch."""
        self._end_now |= now
        self._end_phase = True

    def request_stop(self) -> None:
        """Stop after the current batch: ``on_stop`` (a checkpoint), then ``KeyboardInterrupt``."""
        self._stop_requested = True

    # ------------------------------------------------------------------ the loop
    def fit(self, model, loader, labeled=None, resume_from: Optional[dict] = None):
        """Train through every phase. ``loader``: the mixed stream (``InMemoryLoader``); ``labeled``: the
        labeled stream (``LabeledStream``); ``resume_from``: a checkpoint dict to continue exactly."""
        self.setup(model, resume_from)
        self.loader, self.labeled = loader, labeled
        check_data(self.model, loader, labeled, [p for p in model.phases() if self.phase_epochs(p) > 0
                                                 and p.name not in self.progress["completed"]])
        n = self.train_cfg.overfit_batches
        self._fixed, self._start, phases = loader.first_batches(n) if n else None, time.time(), model.phases()
        try:
            self._emit("on_fit_start", resume_from is not None)
            self._run_phases(phases)
            if self._out_of_steps():  # stopped by train.max_steps: resumable with more
                self._emit("on_stop")
        finally:
            self._emit("on_fit_end")
            for p in self._all_params:  # update() toggled them step by step
                p.requires_grad_(id(p) in self._trainable)
            self._replicated = None  # the DDP wrapper holds the process group until it is collected
            model.eval()
        return model

    def _run_phases(self, phases: list[Phase]) -> None:
        """The phases from ``progress`` on, until one says stop (train.max_steps); after a divergence a
        callback rolled back, on again from there."""
        while True:
            try:
                all(pi < self.progress["phase"] or self._run_phase(pi, phase) for pi, phase in enumerate(phases))
                return
            except DivergenceError as e:
                if not any(cb.on_divergence(self, e) for cb in self.callbacks):
                    raise
                self._end_phase = self._end_now = False
                self._emit("on_fit_start", True)

    def _run_phase(self, pi: int, phase: Phase) -> bool:
        """Train one phase to its end; False when the run must stop (train.max_steps)."""
        epochs = self.phase_epochs(phase)
        if phase.name in self.progress["completed"] or epochs == 0:
            return True  # a 0-epoch phase is skipped, not completed: --init-from trains it later
        if self.progress["phase"] != pi:
            self.progress.update(phase=pi, epoch=0, batch=0, phase_step=0)
        if self.progress["epoch"] == 0 and self.progress["batch"] == 0:
            self.model.on_phase_start(phase.name)
        self.model.train_phase(phase)
        log.info("phase %s: %d epoch(s), steps %s", phase.name, epochs, ", ".join(s.name for s in phase.steps))
        self._emit("on_phase_start", phase)
        ended = False
        while self.progress["epoch"] < epochs:
            if not self._run_epoch(pi, phase, epochs):
                ended = self.agree(self._end_now)
                break  # out of steps, or ended at once (the time budget)
            self.progress.update(epoch=self.progress["epoch"] + 1, batch=0)
            self._emit("on_epoch_end", phase, self.progress["epoch"] - 1)
            self.model.train_phase(phase)  # a callback may have switched modes to draw figures
            ended = self.agree(self._end_phase)
            if ended:
                log.info("phase %s ended early, after epoch %d of %d", phase.name, self.progress["epoch"], epochs)
                break
        self._end_phase = self._end_now = False
        if self._out_of_steps() and self.progress["epoch"] < epochs and not ended:
            return False
        self.model.on_phase_end(phase.name, self.loader.full_pass)
        self.progress["completed"].append(phase.name)
        self.progress.update(phase=pi + 1, epoch=0, batch=0, phase_step=0)
        self._emit("on_phase_end", phase)
        return True

    def _run_epoch(self, pi: int, phase: Phase, epochs: int) -> bool:
        """Train the rest of the current epoch; False if it was cut short."""
        epoch, first = self.progress["epoch"], self.progress["batch"]
        self.loader.epoch_key = pi * 100_003 + epoch
        n_batches = self.epoch_batches()
        if first == 0:
            for k, v in (self.model.on_epoch_start(phase.name, epoch, self.loader.full_pass) or {}).items():
                log.info("phase %s epoch %d: %s %.4g", phase.name, epoch + 1, k, v)
            self.model.train_phase(phase)
        self._emit("on_epoch_start", phase, epoch)
        source = self._fixed[first:] if self._fixed is not None else self.loader.iterate(first, with_index=True)
        running: dict[str, list[torch.Tensor]] = {}
        for bi, (x, y, rows) in enumerate(source, start=first):
            if bi >= n_batches or self._out_of_steps() or self.agree(self._end_now):
                break
            logs = self._run_batch(phase, x, y, running, rows)
            self.progress["batch"] = bi + 1
            self._after_batch(phase, epoch, bi + 1 == n_batches, running, logs, x)
        return self.progress["batch"] >= n_batches

    def _run_batch(self, phase: Phase, x: torch.Tensor, y: torch.Tensor, running: dict,
                   rows: Optional[torch.Tensor] = None) -> dict:
        """Every step of the phase on one batch, in order; each sees the previous step's update."""
        p = self.progress
        wanted = any(s.data == "labeled" for s in phase.steps)
        x_lab, y_lab = self.labeled.batch(p["global_step"]) if wanted else (None, None)
        shared: dict = {}  # Batch.shared: what one step hands to the next on this batch
        step_logs = {}
        for step in phase.steps:
            labeled = step.data == "labeled"
            batch = Batch(x, y, x_lab if labeled else None, y_lab if labeled else None, index=rows,
                          step=p["global_step"], phase_step=p["phase_step"], shared=shared)
            step_logs[step.name] = self.update(step, batch)
            for k, v in step_logs[step.name].items():
                running.setdefault(f"{step.name}/{k}", []).append(v)
        p.update(global_step=p["global_step"] + 1, phase_step=p["phase_step"] + 1)
        return step_logs

    def _after_batch(self, phase: Phase, epoch: int, last: bool, running: dict, logs: dict, x) -> None:
        """Log, run the callbacks and honour stop requests at the batch boundary."""
        logged = self.progress["global_step"] % self.train_cfg.log_every == 0 or last
        if logged:
            self._emit("on_log", self._row(running, phase, epoch))
            running.clear()
        try:
            self._emit("on_batch_end", phase, logs, x)
        except TrainingError:
            if not logged:  # the batch that stopped the run is in the log
                self._emit("on_log", self._row(running, phase, epoch))
            raise
        if self.agree(self._stop_requested):
            self._emit("on_stop")
            raise KeyboardInterrupt

    def update(self, step: Step, batch: Batch) -> dict:
        """One optimizer update of ``step``: only its groups trainable, zero grad, loss,
        backward, average across processes, clip, step. Returns the step's logs."""
        fabric, tc, optimizer = self.fabric, self.train_cfg, self._fab_opts[step.name]
        trainable = {id(p) for p in self._step_params[step.name]}
        for p in self._all_params:
            p.requires_grad_(id(p) in trainable)
        optimizer.zero_grad(set_to_none=True)
        out = step_output(step, batch, fabric, self.precision, self._replicated)
        if not torch.isfinite(out.loss):
            raise DivergenceError(f"step {step.name!r} produced a non-finite loss ({out.loss.item()}) at global step "
                                  f"{self.progress['global_step']}; lower train.lr, set train.grad_clip, set "
                                  "train.on_divergence rollback, or check the data for extreme values", step.name)
        if self.agree(out.skip):  # the step declined this batch: no backward, no step
            return out.logs
        fabric.backward(out.loss)
        if tc.grad_clip:
            fabric.clip_gradients(self.model, optimizer, max_norm=tc.grad_clip)
        optimizer.step()
        self.model.after_update(step)
        return out.logs

    # ------------------------------------------------------------------ helpers
    def phase_epochs(self, phase: Phase) -> int:
        """The epochs ``phase`` trains for in this run."""
        if phase.epochs == 0 or self.train_cfg.fast_dev_run:
            return int(phase.epochs != 0)
        return phase.epochs if phase.epochs is not None else self.train_cfg.epochs

    def epoch_batches(self) -> int:
        if self._fixed is not None:
            return len(self._fixed)
        return min(len(self.loader), 2) if self.train_cfg.fast_dev_run else len(self.loader)

    def _out_of_steps(self) -> bool:
        """train.max_steps reached: the run stops (resumable with a larger max_steps)."""
        return self.train_cfg.max_steps is not None and self.progress["global_step"] >= self.train_cfg.max_steps

    def agree(self, flag: bool) -> bool:
        """Rank 0's decision on every process, so all run the same steps (no collective hangs)."""
        return bool(self.fabric.broadcast(flag, src=0)) if self.fabric.world_size > 1 else flag

    def _row(self, running: dict, phase: Phase, epoch: int) -> dict:  # counters, time, means since the last row
        return {"step": self.progress["global_step"], "phase": phase.name, "epoch": epoch,
                "time": round(time.time() - self._start, 3), **means_across(self.fabric, running)}
