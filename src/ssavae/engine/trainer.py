"""The training engine: one loop for every family.

It knows nothing about any model: it asks the model for its phases, update steps and losses,
and owns devices and precision (Lightning Fabric), gradient averaging across processes, seeds,
optimizers, gradient clipping, logging, progress, figures and checkpoints.

Per batch, for each step of the current phase (DESIGN.md, "Engine")::

    only the step's groups require grad -> zero grad -> loss(Batch) -> backward (across
    processes: DDP's bucketed all-reduce, overlapped with it) -> clip -> optimizer step

A step with ``data="labeled"`` also receives batch ``global_step`` of the labeled stream.

No ``retain_graph``, no "all backwards then all steps": each step sees the weights the previous
step of the same batch left.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable, Optional

import torch

from .. import checkpoint as ckpt_io
from ..config import RunConfig, TrainConfig
from ..errors import ConfigError, TrainingError
from ..fileio import atomic_path
from ..models.base import Batch, GenerativeModel, Phase, Step
from ..runlog import MetricsWriter
from .guard import GuardError, StabilityGuard
from .launch import destroy_process_group_at_exit

log = logging.getLogger(__name__)


NATIVE_BF16_ENV = "SSAVAE_NATIVE_BF16"
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")  # what train.precision auto can become, and the rest


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX flags). Without them bf16
    is emulated and runs slower than fp32 (about 10x on an AVX2 CPU, docs/performance.md).

    ``SSAVAE_NATIVE_BF16=1`` (or ``0``) makes the answer yes (or no) whatever the CPU, so that a
    machine of one kind can run the suite, or a run, as the other kind would (docs/design.md)."""
    forced = os.environ.get(NATIVE_BF16_ENV, "").strip().lower()
    if forced:
        if forced not in ("0", "1", "true", "false", "yes", "no"):
            raise ConfigError(f"{NATIVE_BF16_ENV}={os.environ[NATIVE_BF16_ENV]!r}: expected 1 (answer as a CPU with "
                              "native bf16) or 0 (as one without); unset it to read the CPU's flags")
        return forced in ("1", "true", "yes")
    try:
        flags = Path(cpuinfo).read_text()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_bf16", "amx_bf16"))


def resolve_precision(train: TrainConfig) -> str:
    """``train.precision`` with ``auto`` decided: bf16 autocast where the run is on a CPU with
    native bf16, fp32 everywhere else (accelerators included: not measured here). The run layer
    decides it once, before the first process starts, and writes the answer into the run's
    config, so every process and every resume trains in the same precision."""
    if train.precision != "auto":
        return train.precision
    on_cpu = train.accelerator == "cpu" or (train.accelerator == "auto" and not torch.cuda.is_available()
                                             and not torch.backends.mps.is_available())
    return "bf16-mixed" if on_cpu and cpu_has_native_bf16() else "32-true"


def make_fabric(train: TrainConfig):
    from lightning_fabric import Fabric

    strategy = train.strategy
    if strategy == "auto" and (train.num_nodes > 1 or (isinstance(train.devices, int) and train.devices > 1)):
        strategy = "ddp"
    if strategy == "ddp":
        from lightning_fabric.strategies import DDPStrategy

        destroy_process_group_at_exit()  # whoever launches it (engine/launch.py)

        # each step trains a subset of the model: the others' buckets are reduced as unused
        strategy = DDPStrategy(find_unused_parameters=True, broadcast_buffers=False)
    return Fabric(accelerator=train.accelerator, devices=train.devices, num_nodes=train.num_nodes,
                  strategy=strategy, precision=resolve_precision(train))


def make_optimizer(params: list[torch.nn.Parameter], train: TrainConfig, lr: float):
    if train.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=train.betas, weight_decay=train.weight_decay)
    if train.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=train.betas, weight_decay=train.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=train.betas[0], weight_decay=train.weight_decay)


class Trainer:
    """Trains a model following ``model.phases()``; writes checkpoints and metrics into ``run_dir``.

    ``on_epoch_end(trainer, phase, epoch)`` runs on rank 0 after each epoch's checkpoint (the
    run layer draws its figures there); the engine restores the phase's train/eval modes after it.
    A callback may call ``trainer.end_phase()``: the phase then ends after this epoch, as if its
    schedule had (early stopping).
    """

    def __init__(self, cfg: RunConfig, run_dir: str | Path, fabric=None,
                 on_epoch_end: Optional[Callable[["Trainer", Phase, int], None]] = None):
        self.cfg = cfg
        self.train_cfg = cfg.train
        self.run_dir = Path(run_dir)
        self.fabric = fabric if fabric is not None else make_fabric(cfg.train)
        self.precision = resolve_precision(cfg.train)
        self.on_epoch_end = on_epoch_end
        self._stop_requested = False
        self._end_phase = False  # set by end_phase(): the current phase ends after this epoch
        self._epoch_sums: dict = {}  # train.best_metric: this epoch's (sum, count) of each logged value
        self._epoch_means: dict = {}  # and the last finished epoch's means
        self._deadline: Optional[float] = None  # wall-clock end of the current phase's budget
        self._guard: Optional[StabilityGuard] = None  # set by fit (train.guard)
        self.progress = {"phase": 0, "epoch": 0, "batch": 0, "global_step": 0, "phase_step": 0,
                         "completed": []}

    # ------------------------------------------------------------------ set-up
    def setup(self, model: GenerativeModel, resume_from: Optional[dict] = None) -> None:
        """Check the model's contract, move it to the device, build one optimizer per step
        and, with ``resume_from`` (a checkpoint dict), restore everything exactly."""
        self.model = model.to(self.fabric.device)
        cl = self.train_cfg.channels_last
        if cl or (cl is None and self.fabric.device.type == "cpu"):
            model.to(memory_format=torch.channels_last)  # conv weights only; same values
        # parameters the user froze stay frozen; the others are restored after fit
        self._trainable = {id(p) for p in model.parameters() if p.requires_grad}
        groups = model.param_groups()
        check_contract(model, groups)
        self.optimizers = self._optimizers(model, groups)
        if resume_from is not None:
            self.restore(resume_from)
        self._fab_opts = {k: self.fabric.setup_optimizers(o) for k, o in self.optimizers.items()}
        self._step_params = {k: [p for g in o.param_groups for p in g["params"]]
                             for k, o in self.optimizers.items()}
        self._all_params = list(model.parameters())
        # several processes: every step's loss is the forward of one DDP-wrapped module
        self._replicated = self.fabric.setup_module(_StepForward(self.model)) \
            if self.fabric.world_size > 1 else None

    def _optimizers(self, model, groups) -> dict[str, torch.optim.Optimizer]:
        opts = {}
        for phase in model.phases():
            for step in phase.steps:
                if step.name not in opts:
                    params = [p for g in step.groups for p in groups[g] if p.requires_grad]
                    opts[step.name] = make_optimizer(params, self.train_cfg, self.base_lr(step))
        unknown = set(self.train_cfg.step_lr) - set(opts)
        if unknown:
            raise ValueError(f"train.step_lr names unknown step(s) {sorted(unknown)}; "
                             f"{model.name}'s steps are {sorted(opts)}")
        return opts

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

    def end_phase(self) -> None:
        """End the current phase after the epoch that is finishing (from ``on_epoch_end``)."""
        self._end_phase = True

    def request_stop(self) -> None:
        self._stop_requested = True

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, name: str = "last.pt") -> Optional[Path]:
        """Write the checkpoint atomically; not while the stability guard is alarmed (the last
        one on disk then stays the last sound state); never with ``train.checkpoints false``."""
        if not self.train_cfg.checkpoints:
            return None
        if self._guard is not None and self._agree(self._guard.alarmed):
            log.warning("stability guard alarmed: checkpoint %s not written", name)
            return None
        state = ckpt_io.make(self.model, self.optimizers, self.progress, self.cfg.to_dict())
        path = self.run_dir / "checkpoints" / name
        if self.fabric.global_rank == 0:
            try:
                ckpt_io.save_atomic(state, path)
            except OSError as e:  # a full disk, a quota, a vanished folder: the previous file stands
                raise TrainingError(f"cannot write the checkpoint {path} ({e.strerror or e}); the previous "
                                    "checkpoint is intact: free space (or fix the folder) and continue "
                                    "with --resume") from e
        self.fabric.barrier()
        return path

    def _track_best(self, phase: Phase, means: dict) -> bool:
        """Whether this epoch's mean of train.best_metric is the best so far (then recorded, with
        the epoch, in progress["best"], which the epoch's checkpoint carries)."""
        tc = self.train_cfg
        if tc.best_metric is None:
            return False
        if tc.best_metric not in means:
            raise TrainingError(f"train.best_metric {tc.best_metric!r} is not logged by {self.model.name} in phase "
                                f"{phase.name}; logged: {', '.join(sorted(means))}")
        value, best = means[tc.best_metric], self.progress.get("best")
        if best is not None and not (value < best["value"] if tc.best_mode == "min" else value > best["value"]):
            return False
        self.progress["best"] = {"metric": tc.best_metric, "value": value, "phase": phase.name,
                                 "epoch": self.progress["epoch"]}
        return True

    def _keep_epoch_copies(self, phase: Phase, best: bool) -> None:
        """After an epoch's checkpoint: a copy kept as epoch-STEP-PHASE-EPOCH.pt (the last
        train.keep_checkpoints of them), and one as best.pt when the epoch is the best."""
        if self.fabric.global_rank != 0:
            return
        keep, last = self.train_cfg.keep_checkpoints, self.run_dir / "checkpoints" / "last.pt"
        if keep:
            name = f"epoch-{self.progress['global_step']:08d}-{phase.name}-{self.progress['epoch']:03d}.pt"
            _copy_atomic(last, last.with_name(name))
            for old in sorted(last.parent.glob("epoch-*.pt"))[:-keep]:  # oldest first
                old.unlink()
        if best:
            _copy_atomic(last, last.with_name("best.pt"))

    def restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        for name, state in ckpt["optimizers"].items():
            if name in self.optimizers:
                self.optimizers[name].load_state_dict(state)
        self.progress = {**self.progress, **ckpt["progress"]}
        self.progress["completed"] = list(self.progress["completed"])
        ckpt_io.set_rng_state(ckpt["rng"])

    # ------------------------------------------------------------------ the loop
    def fit(self, model: GenerativeModel, loader, labeled=None,
            resume_from: Optional[dict] = None) -> GenerativeModel:
        """Train through every phase. ``loader``: the mixed stream (``InMemoryLoader``);
        ``labeled``: the labeled stream (``LabeledStream``), needed by steps with
        ``data="labeled"``; ``resume_from``: a checkpoint dict to continue exactly."""
        self.setup(model, resume_from)
        self.loader, self.labeled = loader, labeled
        self._check_data()
        tc = self.train_cfg
        self._fixed = _fixed_batches(loader, tc.overfit_batches) if tc.overfit_batches else None
        self._metrics = MetricsWriter(self.run_dir, self.progress["global_step"] if resume_from
                                      else None, tc.tensorboard) if self.fabric.global_rank == 0 else None
        self._start = time.time()
        self._bar = _Progress(enabled=tc.progress and self.fabric.global_rank == 0)
        self._guard = StabilityGuard(tc, model, lambda: self._set_modes(self._phase)) \
            if tc.guard else None
        if resume_from and all(p.name in self.progress["completed"] or self._phase_epochs(p) == 0
                               for p in model.phases()):
            log.warning("%s had already finished every phase: nothing more to train (a finished "
                        "phase is not extended: its schedule has ended); for more epochs, start a "
                        "new run with them", self.run_dir)
        try:
            with self._graceful_stop(), self._bar:
                phases = model.phases()
                for pi, phase in enumerate(phases):
                    if pi >= self.progress["phase"] and not self._run_phase(pi, phase, phases):
                        break
                if self._out_of_steps():  # stopped by train.max_steps: resumable with more
                    self.save_checkpoint()
        finally:
            if self._metrics:
                self._metrics.close()
            for p in self._all_params:  # update() toggled them step by step
                p.requires_grad_(id(p) in self._trainable)
            model.eval()
        return model

    def _check_data(self) -> None:
        """The first batch of each stream fits the model; labeled steps have labeled data."""
        self.model.check_batch(*next(self.loader.iterate(0)))
        wants = sorted({s.name for p in self.model.phases() for s in p.steps if s.data == "labeled"
                        and self._phase_epochs(p) > 0 and p.name not in self.progress["completed"]})
        if wants and self.labeled is None:
            raise TrainingError(f"{self.model.name}'s step(s) {', '.join(wants)} train on labeled "
                                "examples, but the training data has none: keep some labels "
                                "(data.labels_per_class or data.label_fraction) or use labeled data")
        if wants:
            classes = self.labeled.y.unique()
            if self.model.has_classifier and len(classes) < 2:
                raise TrainingError(f"{self.model.name}'s step(s) {', '.join(wants)} learn to classify, but "
                                    f"every labeled example is of class {int(classes[0])}: keep labels of "
                                    "at least two classes")
            self.model.check_batch(*self.labeled.batch(0))

    def _run_phase(self, pi: int, phase: Phase, phases: list[Phase]) -> bool:
        """Train one phase to its end; False when the run must stop (train.max_steps)."""
        epochs = self._phase_epochs(phase)
        if phase.name in self.progress["completed"] or epochs == 0:
            return True  # a 0-epoch phase is skipped, not completed: --init-from trains it later
        if self.progress["phase"] != pi:
            self.progress.update(phase=pi, epoch=0, batch=0, phase_step=0)
        self._set_deadline(pi, phases)
        if self.progress["epoch"] == 0 and self.progress["batch"] == 0:
            self.model.on_phase_start(phase.name)
        self._phase = phase
        self._set_modes(phase)
        log.info("phase %s: %d epoch(s), steps %s", phase.name, epochs,
                 ", ".join(s.name for s in phase.steps))
        ended = False
        while self.progress["epoch"] < epochs:
            if not self._run_epoch(pi, phase, epochs):
                break  # out of steps or of this phase's time
            self.progress.update(epoch=self.progress["epoch"] + 1, batch=0)
            previous = self.progress.get("best")
            improved = self._track_best(phase, self._epoch_means)
            if self.save_checkpoint() is not None:
                self._keep_epoch_copies(phase, improved)
            elif improved:  # not saved (the stability guard): this epoch is not the best on disk
                self.progress["best"] = previous
            if self.on_epoch_end and self.fabric.global_rank == 0:
                self.on_epoch_end(self, phase, self.progress["epoch"] - 1)
                self._set_modes(phase)  # a callback may have switched modes to draw figures
            ended, self._end_phase = self._agree(self._end_phase), False
            if ended:
                log.info("phase %s ended early, after epoch %d of %d", phase.name, self.progress["epoch"], epochs)
                break
        if self._out_of_steps() and self.progress["epoch"] < epochs and not ended:
            return False
        self.model.on_phase_end(phase.name, self.loader.full_pass)
        self.progress["completed"].append(phase.name)
        self.progress.update(phase=pi + 1, epoch=0, batch=0, phase_step=0)
        self.save_checkpoint()
        return True

    def _set_deadline(self, pi: int, phases: list[Phase]) -> None:
        """With train.max_minutes: this phase gets an equal share of the time left."""
        if self.train_cfg.max_minutes is None:
            return
        todo = sum(1 for p in phases[pi:] if p.name not in self.progress["completed"]
                   and self._phase_epochs(p) > 0)
        left = 60 * self.train_cfg.max_minutes - (time.time() - self._start)
        self._deadline = time.time() + max(left, 0.0) / max(todo, 1)

    def _run_epoch(self, pi: int, phase: Phase, epochs: int) -> bool:
        """Train the rest of the current epoch; False if it was cut short."""
        epoch, first = self.progress["epoch"], self.progress["batch"]
        self.loader.epoch_key = pi * 100_003 + epoch
        n_batches = self._epoch_batches()
        self._bar.start_epoch(f"{phase.name} {epoch + 1}/{epochs}", n_batches, first)
        if first == 0:
            logs = self.model.on_epoch_start(phase.name, epoch, self.loader.full_pass)
            if logs:
                log.info("phase %s epoch %d: %s", phase.name, epoch + 1,
                         ", ".join(f"{k} {v:.4g}" for k, v in logs.items()))
            self._set_modes(phase)
        source = self._fixed[first:] if self._fixed is not None else self.loader.iterate(first, with_index=True)
        running: dict[str, list[torch.Tensor]] = {}
        for bi, (x, y, rows) in enumerate(source, start=first):
            if bi >= n_batches or self._out_of_steps() or self._phase_time_up():
                break
            if self.train_cfg.lr_schedule == "cosine":
                t = (epoch * n_batches + bi) / max(1, epochs * n_batches)
                self._scale_lr(phase, 0.5 * (1 + math.cos(math.pi * t)))
            self._run_batch(phase, x, y, running, rows)
            self._accumulate(running)
            self.progress["batch"] = bi + 1
            self._after_batch(phase, epoch, bi + 1 == n_batches, running)
        return self.progress["batch"] >= n_batches

    def _accumulate(self, running: dict) -> None:
        """The epoch's running sums of this batch's logged values (for train.best_metric)."""
        if self.train_cfg.best_metric is None:
            return
        sums = self._epoch_sums
        for k, vals in running.items():
            total, n = sums.get(k, (0.0, 0))
            sums[k] = (total + float(vals[-1]), n + 1)
        if self.progress["batch"] + 1 == self._epoch_batches():
            self._epoch_means = {k: t / n for k, (t, n) in sums.items()}
            sums.clear()

    def _epoch_batches(self) -> int:
        if self._fixed is not None:
            return len(self._fixed)
        n = len(self.loader)
        return min(n, 2) if self.train_cfg.fast_dev_run else n

    def _run_batch(self, phase: Phase, x: torch.Tensor, y: torch.Tensor, running: dict,
                   rows: Optional[torch.Tensor] = None) -> None:
        """Every step of the phase on one batch, in order; each sees the previous step's update."""
        p = self.progress
        x_lab = y_lab = None
        if any(s.data == "labeled" for s in phase.steps):
            x_lab, y_lab = self.labeled.batch(p["global_step"])
        shared: dict = {}  # Batch.shared: what one step hands to the next on this batch
        step_logs = {}
        for step in phase.steps:
            labeled = step.data == "labeled"
            batch = Batch(x, y, x_lab if labeled else None, y_lab if labeled else None, index=rows,
                          step=p["global_step"], phase_step=p["phase_step"], shared=shared)
            step_logs[step.name] = self.update(step, batch)
            for k, v in step_logs[step.name].items():
                running.setdefault(f"{step.name}/{k}", []).append(v)
        p["global_step"] += 1
        p["phase_step"] += 1
        self._batch_logs = (step_logs, x)  # for the stability guard, once the row is logged

    def _after_batch(self, phase: Phase, epoch: int, last: bool, running: dict) -> None:
        """Log, checkpoint and honour stop requests at the batch boundary."""
        gs, tc = self.progress["global_step"], self.train_cfg
        if gs % tc.log_every == 0 or last:
            row = self._row(running, phase, epoch)
            running.clear()
            self._bar.update(self.progress["batch"], row)
            if self._metrics:
                self._metrics.write(row)
        else:
            self._bar.update(self.progress["batch"])
        if self._guard is not None:
            stop = self._guard.after_batch(*self._batch_logs, self.progress["phase_step"])
            if self._agree(stop is not None):
                if self._metrics and not (gs % tc.log_every == 0 or last):
                    self._metrics.write(self._row(running, phase, epoch))  # the batch that stopped it
                raise GuardError(stop or "stopped by the stability guard of process 0")
        if gs % tc.checkpoint_every == 0:
            self.save_checkpoint()
        if self._agree(self._stop_requested):
            self.save_checkpoint()
            raise KeyboardInterrupt

    def update(self, step: Step, batch: Batch) -> dict:
        """One optimizer update of ``step``: only its groups trainable, zero grad, loss,
        backward, average across processes, clip, step. Returns the step's logs."""
        fabric, tc = self.fabric, self.train_cfg
        params, optimizer = self._step_params[step.name], self._fab_opts[step.name]
        trainable = {id(p) for p in params}
        for p in self._all_params:
            p.requires_grad_(id(p) in trainable)
        optimizer.zero_grad(set_to_none=True)
        if self._replicated is not None:  # DDP: this forward arms the gradient reducer
            self._replicated.module.pending = (step, batch)
            self._replicated()
            out = self._replicated.module.out
        else:
            with fabric.autocast() if self.precision != "32-true" else nullcontext():
                out = step.loss(batch)
        if not torch.isfinite(out.loss):
            raise TrainingError(
                f"step {step.name!r} produced a non-finite loss ({out.loss.item()}) at global step "
                f"{self.progress['global_step']}; lower train.lr, set train.grad_clip, or check "
                "the data for extreme values")
        if self._agree(out.skip):  # the step declined this batch: no backward, no step
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
        return self._phase_epochs(phase)

    def _phase_epochs(self, phase: Phase) -> int:
        if phase.epochs == 0:
            return 0
        if self.train_cfg.fast_dev_run:
            return 1
        return phase.epochs if phase.epochs is not None else self.train_cfg.epochs

    def base_lr(self, step) -> float:
        """``train.step_lr[step]`` if set, else ``train.lr`` times the step's own ``lr_scale``."""
        if step.name in self.train_cfg.step_lr:
            return float(self.train_cfg.step_lr[step.name])
        return self.train_cfg.lr * step.lr_scale

    def _scale_lr(self, phase: Phase, factor: float) -> None:
        """Set each of the phase's optimizers to its base learning rate times ``factor``."""
        for step in phase.steps:
            base = self.base_lr(step)
            for group in self._fab_opts[step.name].param_groups:
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

    def _set_modes(self, phase: Phase) -> None:
        self.model.train()
        groups = self.model.groups()
        for g in phase.frozen:
            groups[g].eval()

    def _row(self, running: dict, phase: Phase, epoch: int) -> dict:
        row = {"step": self.progress["global_step"], "phase": phase.name, "epoch": epoch,
               "time": round(time.time() - self._start, 3)}
        for k, vals in running.items():
            v = torch.stack([torch.as_tensor(x, dtype=torch.float32) for x in vals]).mean()
            v = self.fabric.all_reduce(v.to(self.fabric.device), reduce_op="mean") \
                if self.fabric.world_size > 1 else v
            row[k] = round(float(v), 6)
        return row


def _copy_atomic(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def check_contract(model: GenerativeModel, groups: dict[str, list]) -> None:
    """Groups are disjoint and cover every parameter; phases name only known groups; every
    group is trained by some step (a group no step trains is a family bug, refused here)."""
    seen: dict[int, str] = {}
    for name, params in groups.items():
        for p in params:
            if id(p) in seen:
                raise TrainingError(f"{model.name}: a parameter is in groups {seen[id(p)]!r} and {name!r}")
            seen[id(p)] = name
    missing = [n for n, p in model.named_parameters() if id(p) not in seen]
    if missing:
        raise TrainingError(f"{model.name}: parameters in no group: {missing[:5]}")
    trained = set()
    for phase in model.phases():
        for step in phase.steps:
            trained |= set(step.groups)
            for g in step.groups + step.through + phase.frozen:
                if g not in groups:
                    raise TrainingError(f"{model.name}: phase {phase.name} names unknown group {g!r}")
    idle = sorted(g for g in groups if g not in trained and groups[g])
    if idle:
        raise TrainingError(f"{model.name}: group(s) {', '.join(idle)} are trained by no step")


def _fixed_batches(loader, n: int) -> list:
    """The first n batches of epoch 0's order, fetched once (train.overfit_batches)."""
    key, loader.epoch_key = loader.epoch_key, 0
    batches = [b for _, b in zip(range(n), loader.iterate(0, with_index=True))]
    loader.epoch_key = key
    return batches


class _StepForward(torch.nn.Module):
    """The model, with a forward that computes the loss of the step set in ``pending``: DDP's
    reducer (bucketed all-reduce of the gradients, overlapped with the backward) works through a
    module's forward, and each step's loss is one. The batch is not an argument of the wrapped
    forward, whose input conversion would copy it and the state its steps share."""

    def __init__(self, model: GenerativeModel):
        super().__init__()
        self.model = model
        self.pending: Optional[tuple[Step, Batch]] = None
        self.out = None  # the StepOutput of the last forward

    def forward(self) -> torch.Tensor:
        step, batch = self.pending
        self.pending = None
        self.out = step.loss(batch)
        return self.out.loss


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

            from rich.table import Column

            # on a narrow terminal the losses are cut short, never the phase and epoch
            self._p = Progress(TextColumn("[bold]{task.description}",
                                          table_column=Column(no_wrap=True, min_width=16)),
                               BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                               TextColumn("{task.fields[losses]}", table_column=Column(
                                   no_wrap=True, overflow="ellipsis", ratio=1)))
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
