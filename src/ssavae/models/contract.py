"""The contract between a family and the engine: what a step's loss receives (``Batch``) and
returns (``StepOutput``), the update steps and phases a family declares, loss-weight schedules,
and ``check_contract``, which the engine runs on every model before training it.

The family side of the contract (groups, capabilities, inference) is ``GenerativeModel`` in
``base.py``; the engine side is ``engine/trainer.py``. Nothing here imports either.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Callable, Literal, Optional

import torch

from ..errors import TrainingError


@dataclass(frozen=True)
class Batch:
    """What a step's loss receives. ``x, y``: the mixed batch (y = -1 where unlabeled);
    ``x_lab, y_lab``: a batch of the labeled stream (only for steps with ``data="labeled"``);
    ``index``: the mixed batch's rows in the training set (per-example state such as pseudo-labels);
    ``step``: the run's global step, ``phase_step``: steps since this phase began (read-only
    counters for schedules). ``shared``: one dict for all the steps of a phase on this batch, so
    a later step can reuse what an earlier one computed (detached tensors only, never a graph:
    each step backpropagates its own loss alone)."""

    x: torch.Tensor
    y: torch.Tensor
    x_lab: Optional[torch.Tensor] = None
    y_lab: Optional[torch.Tensor] = None
    index: Optional[torch.Tensor] = None  # (B,) rows of the mixed batch in the training set
    step: int = 0
    phase_step: int = 0
    shared: dict = field(default_factory=dict, compare=False, repr=False)

    def labeled(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.x_lab is None:
            raise RuntimeError("this batch has no labeled stream: declare the step with "
                               "data='labeled'")
        return self.x_lab, self.y_lab


@dataclass
class StepOutput:
    loss: torch.Tensor  # scalar, differentiable
    logs: dict[str, torch.Tensor] = field(default_factory=dict)  # detached scalars
    skip: bool = False  # no update on this batch (an equilibrium gate); rank 0 decides for all


@dataclass(frozen=True)
class Step:
    """One optimizer update: its name (logs, optimizer, ``train.step_lr``), the groups it trains,
    its loss, its data, and the groups its loss differentiates *through* without training them
    (a generator's loss through the discriminator). No other group may receive its gradient.

    Each step has its own optimizer: with Adam, a weight on a step's whole loss does not change
    how far the step moves its groups; ``lr_scale`` (times ``train.lr``, unless
    ``train.step_lr`` names the step) does."""

    name: str
    groups: tuple[str, ...]
    loss: Callable[[Batch], StepOutput]
    data: Literal["mixed", "labeled"] = "mixed"
    through: tuple[str, ...] = ()
    lr_scale: float = 1.0


@dataclass(frozen=True)
class Phase:
    """A stretch of training: per batch, run ``steps`` in order; ``frozen`` groups stay fixed
    (eval mode, no gradients)."""

    name: str
    steps: tuple[Step, ...]
    frozen: tuple[str, ...] = ()
    epochs: Optional[int] = None  # None: the run's train.epochs
    figures: bool = True  # sample/reconstruction grids after its epochs (no: nothing decodes yet)


# ---------------------------------------------------------------------------- schedules

SCHEDULE_KINDS = ("linear", "cosine")


def schedule_factor(spec: dict, batch: Batch) -> float:
    """Multiplier in [initial, 1] of a scheduled loss weight at this batch.

    ``spec``: ``{kind: linear | cosine, steps: N, start: 0, initial: 0.0, counter: phase_step | step}``;
    the weight is ``initial`` until ``start``, ramps to 1 over ``steps`` and stays there.
    """
    t = batch.phase_step if spec.get("counter", "phase_step") == "phase_step" else batch.step
    p = min(max((t - spec.get("start", 0)) / spec["steps"], 0.0), 1.0)
    if spec["kind"] == "cosine":
        p = 0.5 * (1 - math.cos(math.pi * p))
    initial = spec.get("initial", 0.0)
    return initial + (1.0 - initial) * p


def check_schedules(cfg) -> None:
    """Each entry of ``model.schedules`` names a float field and a valid ramp."""
    floats = {f.name for f in fields(cfg) if f.type in ("float", float)}
    for name, spec in cfg.schedules.items():
        where = f"model.schedules.{name}"
        if name not in floats:
            raise ValueError(f"{where}: {name!r} is not a loss weight of this family; "
                             f"scheduled weights: {', '.join(sorted(floats))}")
        if not isinstance(spec, dict) or spec.get("kind") not in SCHEDULE_KINDS:
            raise ValueError(f"{where} needs kind: {' or '.join(SCHEDULE_KINDS)} and steps: N")
        unknown = set(spec) - {"kind", "steps", "start", "initial", "counter"}
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; valid: kind, steps, "
                             "start, initial, counter")
        if not isinstance(spec.get("steps"), int) or spec["steps"] < 1:
            raise ValueError(f"{where}.steps must be an integer >= 1")
        if spec.get("counter", "phase_step") not in ("phase_step", "step"):
            raise ValueError(f"{where}.counter must be phase_step or step")



# ---------------------------------------------------------------------------- the check


def check_contract(model, groups: dict[str, list]) -> None:
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


def check_data(model, loader, labeled, phases: list) -> None:
    """The first batch of each stream fits the model, and the steps of ``phases`` (those still
    to train) that train on labeled examples have labeled data of two classes or more."""
    model.check_batch(*next(loader.iterate(0)))
    wants = sorted({s.name for p in phases for s in p.steps if s.data == "labeled"})
    if wants and labeled is None:
        raise TrainingError(f"{model.name}'s step(s) {', '.join(wants)} train on labeled "
                            "examples, but the training data has none: keep some labels "
                            "(data.labels_per_class or data.label_fraction) or use labeled data")
    if wants:
        classes = labeled.y.unique()
        if model.has_classifier and len(classes) < 2:
            raise TrainingError(f"{model.name}'s step(s) {', '.join(wants)} learn to classify, but "
                                f"every labeled example is of class {int(classes[0])}: keep labels of "
                                "at least two classes")
        model.check_batch(*labeled.batch(0))
