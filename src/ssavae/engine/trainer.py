"""The training engine: one loop for every family.

It knows nothing about any model: it asks the model for its phases, update steps and losses,
and owns devices and precision (Lightning Fabric), gradient averaging across processes, seeds,
optimizers, gradient clipping, logging, progress, figures and checkpoints.

Per batch, for each step of the current phase (DESIGN.md, "Engine")::

    only the step's groups require grad -> zero grad -> loss -> backward -> average grads
    across processes -> clip -> optimizer step

No ``retain_graph``, no "all backwards then all steps": each step sees the weights the previous
step of the same batch left.
"""
from __future__ import annotations

import logging
import math
import signal
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable, Optional

import torch

from ..config import RunConfig, TrainConfig
from ..models.base import GenerativeModel, Phase, Step
from . import checkpoint as ckpt_io
from .metrics import MetricsWriter

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message says what to try."""


def make_fabric(train: TrainConfig):
    from lightning_fabric import Fabric

    strategy = train.strategy
    if strategy == "auto" and (train.num_nodes > 1 or (isinstance(train.devices, int) and train.devices > 1)):
        strategy = "ddp"
    return Fabric(accelerator=train.accelerator, devices=train.devices, num_nodes=train.num_nodes,
                  strategy=strategy, precision=train.precision)


def make_optimizer(params: list[torch.nn.Parameter], train: TrainConfig, lr: float):
    if train.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=train.betas, weight_decay=train.weight_decay)
    if train.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=train.betas, weight_decay=train.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=train.betas[0], weight_decay=train.weight_decay)


class Trainer:
    """Trains ``model`` on ``loader`` following ``model.phases()``; writes into ``run_dir``."""

    def __init__(self, cfg: RunConfig, run_dir: str | Path, fabric=None,
                 on_epoch_end: Optional[Callable[["Trainer", Phase, int], None]] = None):
        self.cfg = cfg
        self.train_cfg = cfg.train
        self.run_dir = Path(run_dir)
        self.fabric = fabric if fabric is not None else make_fabric(cfg.train)
        self.on_epoch_end = on_epoch_end
        self._stop_requested = False
        self._deadline: Optional[float] = None  # wall-clock end of the current phase's budget
        self.progress = {"phase": 0, "epoch": 0, "batch": 0, "global_step": 0, "completed": []}

    # ------------------------------------------------------------------ set-up
    def _optimizers(self, model: GenerativeModel) -> dict[str, torch.optim.Optimizer]:
        groups = model.param_groups()
        self._check_groups(model, groups)
        opts = {}
        for phase in model.phases():
            for step in phase.steps:
                if step.name in opts:
                    continue
                params = [p for g in step.groups for p in groups[g] if p.requires_grad]
                lr = float(self.train_cfg.step_lr.get(step.name, self.train_cfg.lr))
                opts[step.name] = make_optimizer(params, self.train_cfg, lr)
        unknown = set(self.train_cfg.step_lr) - set(opts)
        if unknown:
            raise ValueError(f"train.step_lr names unknown step(s) {sorted(unknown)}; "
                             f"{model.name}'s steps are {sorted(opts)}")
        return opts

    @staticmethod
    def _check_groups(model: GenerativeModel, groups: dict[str, list]) -> None:
        seen: dict[int, str] = {}
        for name, params in groups.items():
            for p in params:
                if id(p) in seen:
                    raise AssertionError(f"parameter in groups {seen[id(p)]!r} and {name!r}")
                seen[id(p)] = name
        missing = [n for n, p in model.named_parameters() if id(p) not in seen]
        assert not missing, f"parameters in no group: {missing}"
        for phase in model.phases():
            for step in phase.steps:
                for g in step.groups + phase.frozen:
                    assert g in groups, f"phase {phase.name} names unknown group {g!r}"

    # ------------------------------------------------------------------ stopping
    @contextmanager
    def _graceful_stop(self):
        """Ctrl-C / SIGTERM finish the current batch, write a checkpoint, then stop."""
        def handler(signum, frame):
            if self._stop_requested:  # second signal: stop now
                raise KeyboardInterrupt
            log.warning("stop requested: finishing this batch and writing a checkpoint "
                        "(press Ctrl-C again to abort at once)")
            self._stop_requested = True

        previous = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: no handlers
            pass
        try:
            yield
        finally:
            for sig, h in previous.items():
                signal.signal(sig, h)

    def request_stop(self) -> None:
        self._stop_requested = True

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, model, optimizers, name: str = "last.pt") -> Optional[Path]:
        state = ckpt_io.make(model, optimizers, self.progress, self.cfg.to_dict())
        path = self.run_dir / "checkpoints" / name
        if self.fabric.global_rank == 0:
            ckpt_io.save_atomic(state, path)
        self.fabric.barrier()
        return path

    def restore(self, model, optimizers, ckpt: dict) -> None:
        model.load_state_dict(ckpt["model"])
        for name, state in ckpt["optimizers"].items():
            if name in optimizers:
                optimizers[name].load_state_dict(state)
        self.progress = dict(ckpt["progress"])
        self.progress["completed"] = list(self.progress.get("completed", []))
        ckpt_io.set_rng_state(ckpt["rng"])

    # ------------------------------------------------------------------ the loop
    def fit(self, model: GenerativeModel, loader, resume_from: Optional[dict] = None) -> GenerativeModel:
        """Train through every phase; ``resume_from`` a checkpoint dict continues exactly."""
        fabric, tc = self.fabric, self.train_cfg
        model.to(fabric.device)
        optimizers = self._optimizers(model)
        if resume_from is not None:
            self.restore(model, optimizers, resume_from)
        fab_opts = {k: fabric.setup_optimizers(o) for k, o in optimizers.items()}
        step_params = {k: [p for g in o.param_groups for p in g["params"]]
                       for k, o in optimizers.items()}
        all_params = list(model.parameters())
        phases = model.phases()
        metrics = MetricsWriter(self.run_dir, self.progress["global_step"] if resume_from else None,
                                tc.tensorboard) if fabric.global_rank == 0 else None
        model.check_batch(next(loader.iterate(0)))
        fixed = self._fixed_batches(loader, tc.overfit_batches) if tc.overfit_batches else None
        start = time.time()
        bar = _Progress(enabled=tc.progress and fabric.global_rank == 0)
        try:
            with self._graceful_stop(), bar:
                for pi in range(self.progress["phase"], len(phases)):
                    phase = phases[pi]
                    if phase.name in self.progress["completed"]:
                        continue
                    epochs = self._phase_epochs(phase)
                    if epochs == 0:  # skipped, not completed: --init-from can train it later
                        continue
                    if self.progress["phase"] != pi:
                        self.progress.update(phase=pi, epoch=0, batch=0)
                    if tc.max_minutes is not None:  # this phase's share of what is left
                        todo = sum(1 for p in phases[pi:] if p.name not in self.progress["completed"]
                                   and self._phase_epochs(p) > 0)
                        left = 60 * tc.max_minutes - (time.time() - start)
                        self._deadline = time.time() + max(left, 0.0) / max(todo, 1)
                    if self.progress["epoch"] == 0 and self.progress["batch"] == 0:
                        model.on_phase_start(phase.name)
                    self._set_modes(model, phase)
                    log.info("phase %s: %d epoch(s), steps %s", phase.name, epochs,
                             ", ".join(s.name for s in phase.steps))
                    while self.progress["epoch"] < epochs:
                        epoch = self.progress["epoch"]
                        loader.epoch_key = pi * 100_003 + epoch
                        n_batches = len(loader)
                        if tc.fast_dev_run:
                            n_batches = min(n_batches, 2)
                        if fixed is not None:
                            n_batches = len(fixed)
                        bar.start_epoch(f"{phase.name} {epoch + 1}/{epochs}", n_batches,
                                        self.progress["batch"])
                        running: dict[str, list[torch.Tensor]] = {}
                        source = fixed[self.progress["batch"]:] if fixed is not None \
                            else loader.iterate(self.progress["batch"])
                        for bi, batch in enumerate(source, start=self.progress["batch"]):
                            if bi >= n_batches or self._out_of_steps() or self._phase_time_up():
                                break
                            if tc.lr_schedule == "cosine":
                                t = (epoch * n_batches + bi) / max(1, epochs * n_batches)
                                self._scale_lr(phase, fab_opts, 0.5 * (1 + math.cos(math.pi * t)))
                            for step in phase.steps:
                                logs = self._update(model, step, batch, fab_opts[step.name],
                                                    step_params[step.name], all_params)
                                for k, v in logs.items():
                                    running.setdefault(f"{step.name}/{k}", []).append(v)
                            self.progress["batch"] = bi + 1
                            self.progress["global_step"] += 1
                            gs = self.progress["global_step"]
                            if gs % tc.log_every == 0 or bi + 1 == n_batches:
                                row = self._row(running, phase, epoch, start)
                                running = {}
                                bar.update(bi + 1, row)
                                if metrics:
                                    metrics.write(row)
                            else:
                                bar.update(bi + 1)
                            if gs % tc.checkpoint_every == 0:
                                self.save_checkpoint(model, optimizers)
                            if self._agree(self._stop_requested):
                                self.save_checkpoint(model, optimizers)
                                raise KeyboardInterrupt
                        if (self._out_of_steps() or self._phase_time_up()) \
                                and self.progress["batch"] < n_batches:
                            break
                        self.progress.update(epoch=epoch + 1, batch=0)
                        self.save_checkpoint(model, optimizers)
                        if self.on_epoch_end and fabric.global_rank == 0:
                            self.on_epoch_end(self, phase, epoch)
                    if self._out_of_steps() and self.progress["epoch"] < epochs:
                        break
                    self.progress["completed"].append(phase.name)
                    self.progress.update(phase=pi + 1, epoch=0, batch=0)
                    self.save_checkpoint(model, optimizers)
                if self._out_of_steps():  # stopped by train.max_steps: resumable with more
                    self.save_checkpoint(model, optimizers)
        finally:
            if metrics:
                metrics.close()
            model.eval()
        return model

    def _phase_epochs(self, phase: Phase) -> int:
        tc = self.train_cfg
        if phase.epochs == 0:
            return 0
        if tc.fast_dev_run:
            return 1
        return phase.epochs if phase.epochs is not None else tc.epochs

    def _scale_lr(self, phase: Phase, optimizers: dict, factor: float) -> None:
        """Set each of the phase's optimizers to its base learning rate times ``factor``."""
        for step in phase.steps:
            base = float(self.train_cfg.step_lr.get(step.name, self.train_cfg.lr))
            for group in optimizers[step.name].param_groups:
                group["lr"] = base * factor

    def _out_of_steps(self) -> bool:
        """train.max_steps reached: the run stops (resumable with a larger max_steps)."""
        ms = self.train_cfg.max_steps
        return ms is not None and self.progress["global_step"] >= ms

    def _phase_time_up(self) -> bool:
        """This phase's share of train.max_minutes is spent: the phase ends, the next begins."""
        return self._deadline is not None and self._agree(time.time() >= self._deadline)

    def _agree(self, flag: bool) -> bool:
        """Rank 0's decision on every process, so all run the same steps (no collective hangs)."""
        if self.fabric.world_size > 1:
            return bool(self.fabric.broadcast(flag, src=0))
        return flag

    @staticmethod
    def _fixed_batches(loader, n: int) -> list:
        """The first n batches of epoch 0's order, fetched once (train.overfit_batches)."""
        key, loader.epoch_key = loader.epoch_key, 0
        batches = [b for _, b in zip(range(n), loader.iterate(0))]
        loader.epoch_key = key
        return batches

    @staticmethod
    def _set_modes(model: GenerativeModel, phase: Phase) -> None:
        model.train()
        for g in phase.frozen:
            model.groups()[g].eval()

    def _update(self, model, step: Step, batch, optimizer, params, all_params) -> dict:
        fabric, tc = self.fabric, self.train_cfg
        trainable = {id(p) for p in params}
        for p in all_params:
            p.requires_grad_(id(p) in trainable)
        optimizer.zero_grad(set_to_none=True)
        autocast = fabric.autocast() if tc.precision != "32-true" else nullcontext()
        with autocast:
            out = model.step_loss(step.name, batch)
        if not torch.isfinite(out.loss):
            raise TrainingError(
                f"step {step.name!r} produced a non-finite loss ({out.loss.item()}) at global step "
                f"{self.progress['global_step']}; lower train.lr, set train.grad_clip, or check "
                "the data for extreme values")
        fabric.backward(out.loss)
        if fabric.world_size > 1:
            _average_gradients(params, fabric.world_size)
        if tc.grad_clip:
            fabric.clip_gradients(model, optimizer, max_norm=tc.grad_clip)
        optimizer.step()
        return out.logs

    def _row(self, running: dict, phase: Phase, epoch: int, start: float) -> dict:
        row = {"step": self.progress["global_step"], "phase": phase.name, "epoch": epoch,
               "time": round(time.time() - start, 3)}
        for k, vals in running.items():
            v = torch.stack([torch.as_tensor(x, dtype=torch.float32) for x in vals]).mean()
            v = self.fabric.all_reduce(v.to(self.fabric.device), reduce_op="mean") \
                if self.fabric.world_size > 1 else v
            row[k] = round(float(v), 6)
        return row


def _average_gradients(params: list[torch.nn.Parameter], world_size: int) -> None:
    """All-reduce the gradients of one update step in a single flat buffer (mean over processes).

    Done here rather than by DDP's reducer because each step trains a different subset of
    the model, which DDP's fixed bucket layout does not support.
    """
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


class _Progress:
    """A rich progress bar with the latest logged losses; silent when disabled."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._p = None
        self._task = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self._p = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                               MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                               TextColumn("{task.fields[losses]}"))
            self._p.__enter__()
        return self

    def __exit__(self, *exc):
        if self._p is not None:
            self._p.__exit__(*exc)

    def start_epoch(self, title: str, total: int, done: int) -> None:
        if self._p is None:
            return
        if self._task is not None:
            self._p.update(self._task, visible=True)
        self._task = self._p.add_task(title, total=total, completed=done, losses="")

    def update(self, done: int, row: Optional[dict] = None) -> None:
        if self._p is None:
            return
        fields = {}
        if row:
            shown = [(k.split("/")[-1] if k.count("/") else k, v) for k, v in row.items()
                     if "/" in k and isinstance(v, float) and math.isfinite(v)]
            fields["losses"] = "  ".join(f"{k} {v:.4g}" for k, v in shown[:6])
        self._p.update(self._task, completed=done, **fields)
