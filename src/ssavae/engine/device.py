"""Where and in which precision a run trains: the CPU's bf16 answer, ``train.precision auto``,
the Lightning Fabric (devices, strategy, precision) and the optimizers the engine builds."""
from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import torch

from ..config import TrainConfig
from ..errors import ConfigError
from .launch import destroy_process_group_at_exit


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


def place(model, fabric, train: TrainConfig):
    """The model on the fabric's device; conv weights channels-last where ``train.channels_last``
    says (None: on a CPU). Same values either way."""
    model = model.to(fabric.device)
    if train.channels_last or (train.channels_last is None and fabric.device.type == "cpu"):
        model.to(memory_format=torch.channels_last)
    return model


def base_lr(train: TrainConfig, step) -> float:
    """``train.step_lr[step]`` if set, else ``train.lr`` times the step's own ``lr_scale``."""
    if step.name in train.step_lr:
        return float(train.step_lr[step.name])
    return train.lr * step.lr_scale


def step_lr(train: TrainConfig, step, progress: dict) -> float:
    """The step's learning rate before any schedule: ``base_lr`` times the factor a rollback left
    in ``progress["lr_factors"]`` (``train.on_divergence rollback``)."""
    return base_lr(train, step) * progress.get("lr_factors", {}).get(step.name, 1.0)


def set_step_lrs(model, optimizers: dict, train: TrainConfig, progress: dict) -> None:
    """Every step's optimizer at its ``step_lr`` (after a resume, so a changed ``train.lr`` or
    ``train.step_lr`` applies, and after a rollback); a schedule scales it from there on."""
    for step in (s for phase in model.phases() for s in phase.steps):
        for group in optimizers[step.name].param_groups:
            group["lr"] = step_lr(train, step, progress)


def make_optimizers(model, groups: dict, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
    """One optimizer per update step of ``model`` over its groups' trainable parameters, at
    ``base_lr``; ``train.step_lr`` may name only steps the model has."""
    opts = {}
    for step in (s for phase in model.phases() for s in phase.steps):
        if step.name not in opts:
            params = [p for g in step.groups for p in groups[g] if p.requires_grad]
            opts[step.name] = make_optimizer(params, train, base_lr(train, step))
    unknown = set(train.step_lr) - set(opts)
    if unknown:
        raise ValueError(f"train.step_lr names unknown step(s) {sorted(unknown)}; "
                         f"{model.name}'s steps are {sorted(opts)}")
    return opts


class StepForward(torch.nn.Module):
    """The model, with a forward that computes the loss of the step set in ``pending``: DDP's
    reducer (bucketed all-reduce of the gradients, overlapped with the backward) works through a
    module's forward, and each step's loss is one. The batch is not an argument of the wrapped
    forward, whose input conversion would copy it and the state its steps share."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.pending: Optional[tuple] = None  # (step, batch)
        self.out = None  # the StepOutput of the last forward

    def forward(self) -> torch.Tensor:
        step, batch = self.pending
        self.pending = None
        self.out = step.loss(batch)
        return self.out.loss


def step_output(step, batch, fabric, precision: str, replicated=None):
    """The step's ``StepOutput`` on the batch: through the DDP-wrapped ``StepForward`` when there
    are several processes (its forward arms the gradient reducer), under autocast in a mixed
    precision."""
    if replicated is not None:
        replicated.module.pending = (step, batch)
        replicated()
        return replicated.module.out
    with fabric.autocast() if precision != "32-true" else nullcontext():
        return step.loss(batch)


def means_across(fabric, running: dict) -> dict:
    """Each logged value's mean over its batches (``running``: key -> list of scalars), averaged
    across the processes of a distributed run; rounded for the log."""
    out = {}
    for k, vals in running.items():
        v = torch.stack([torch.as_tensor(x, dtype=torch.float32) for x in vals]).mean()
        if fabric.world_size > 1:
            v = fabric.all_reduce(v.to(fabric.device), reduce_op="mean")
        out[k] = round(float(v), 6)
    return out
