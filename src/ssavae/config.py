"""Strict dataclass configuration: load/save YAML or JSON, dotted command-line overrides.

A run is described by one :class:`RunConfig`::

    model: {name: ssavae, latent_dim: 100, ...}   # the family's own dataclass (see models/)
    data:  {name: fashion-mnist, labels_per_class: null, ...}
    train: {epochs: 10, batch_size: 128, ...}
    seed: 0

Unknown keys are errors that name the valid keys; values are checked against the field types,
so ``--train.epochs ten`` fails at once instead of deep inside the training loop.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from .errors import ConfigError
from .models import get_model_class, model_name_of_config


@dataclass
class DataConfig:
    """Which data, and which of its labels the models may see."""

    name: str = "fashion-mnist"  # a registered dataset, or npz:PATH, csv:PATH, folder:PATH
    label_column: str = "label"  # csv: the column of labels (numbers or names); absent: no labels
    unlabeled_marker: str = ""  # csv: a label cell meaning "unlabeled" (besides an empty cell and -1)
    image_size: Optional[int] = None  # folder: resize every image to N x N (else all must match)
    data_dir: Optional[str] = None  # searched first; then ~/.cache/ssavae, then system paths
    labels_per_class: Optional[int] = None  # keep this many labels per class, the rest get y = -1
    label_fraction: Optional[float] = None  # or keep this fraction of the labels (stratified)
    split_seed: int = 0  # seed of the labeled subset only: every family sees the same labels
    limit_train: Optional[int] = None  # use only the first N training examples (quick runs)
    limit_test: Optional[int] = None  # use only the first N test examples
    validation_size: int = 0  # hold this many training examples out (seeded by split_seed)
    evaluate_on: Literal["test", "validation"] = "test"  # validation: they replace the test set
    # tables: each column -> (x - mean) / std of the training rows (RUN_DIR/standardization.json);
    # null: for csv:/npz: tables not already within [0, 1]
    standardize: Optional[bool] = None


@dataclass
class TrainConfig:
    """How the engine trains any family (devices, optimizers, schedule, logging)."""

    epochs: int = 10  # epochs of each phase that does not set its own (see the family's config)
    batch_size: int = 128  # per process
    max_steps: Optional[int] = None  # stop after this many batches in total (all phases)
    max_minutes: Optional[float] = None  # wall-clock budget of this process, split equally by phases
    labeled_batch_size: int = 64  # batch of the labeled stream, for steps with data="labeled"
    limit_batches: Optional[int] = None  # batches per epoch (debugging)
    overfit_batches: int = 0  # >0: train on these first N batches only, unshuffled
    fast_dev_run: bool = False  # one epoch of 2 batches per phase, then stop
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    # per update step learning rate, e.g. {disc: 2e-4}; else lr x the step's lr_scale
    step_lr: dict = field(default_factory=dict)
    lr_schedule: Literal["constant", "cosine"] = "constant"  # cosine: decay to 0 over each phase
    grad_clip: Optional[float] = 10.0  # max global grad norm per step; null disables
    accelerator: str = "auto"  # cpu, cuda, mps, auto
    devices: Union[int, str] = 1  # processes per node ("auto" = all GPUs)
    num_nodes: int = 1
    strategy: str = "auto"  # auto, ddp (gradients averaged across processes)
    # networks' 4-D weights in channels-last memory; null: on a CPU (a conv batch 0.71-0.89x the
    # time, docs/performance.md), off elsewhere (not measured)
    channels_last: Optional[bool] = None
    # auto: bf16-mixed on a CPU with native bf16 arithmetic (AVX512-BF16 or AMX), else 32-true
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto"
    threads: Optional[int] = None  # torch CPU threads; null = torch default
    log_every: int = 50  # steps between metric rows
    checkpoint_every: int = 500  # steps between periodic checkpoints (plus one per epoch)
    keep_checkpoints: int = 0  # also keep the last N epoch-end checkpoints (epoch-STEP-PHASE-EPOCH.pt)
    best_metric: Optional[str] = None  # e.g. "vae/loss": best.pt = the epoch with the best mean of it
    best_mode: Literal["min", "max"] = "min"
    sample_every: int = 1  # epochs between sample/reconstruction grids; 0 disables
    progress: bool = True  # rich progress bar with the live losses
    tensorboard: bool = False  # also log to TensorBoard (needs the [tensorboard] extra)
    # the stability guard of adversarial training (engine/guard.py)
    guard: bool = True
    guard_patience: int = 200  # batches in a row a critic may win outright before the run stops
    guard_margin: float = 0.05  # "outright": d_real - d_fake >= 1 - 2 * margin
    guard_every: int = 500  # phase steps between sample-collapse probes; 0: no probes
    guard_collapse: float = 0.05  # sample spread / real spread below this (twice) is a collapse

    def validate(self) -> None:
        at_least = {"epochs": 0, "batch_size": 1, "labeled_batch_size": 1, "overfit_batches": 0,
                    "log_every": 1, "checkpoint_every": 1, "sample_every": 0, "num_nodes": 1,
                    "keep_checkpoints": 0}
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise ValueError(f"train.{name} must be >= {low}, got {getattr(self, name)}")
        for name in ("max_steps", "limit_batches"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1 or null, got {getattr(self, name)}")
        for name in ("max_minutes", "grad_clip"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ValueError(f"train.{name} must be > 0 or null, got {getattr(self, name)}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(f"train.lr must be > 0 and train.weight_decay >= 0, got {self.lr}, "
                             f"{self.weight_decay}")
        for step, lr in self.step_lr.items():
            if lr is None and ":" in str(step):  # YAML reads {cls:0.003} as the key "cls:0.003"
                raise ValueError(f"train.step_lr: {{{step}}} has no value; write a space after "
                                 f"the colon: '{{{str(step).replace(':', ': ', 1)}}}'")
            if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
                raise ValueError(f"train.step_lr.{step} must be a learning rate > 0, got {lr!r}")
        if self.guard_patience < 1 or self.guard_every < 0:
            raise ValueError("train.guard_patience must be >= 1 and train.guard_every >= 0")
        if not 0 <= self.guard_margin < 0.5 or self.guard_collapse < 0:
            raise ValueError("train.guard_margin must be in [0, 0.5) and train.guard_collapse >= 0")


@dataclass
class RunConfig:
    """Everything needed to reproduce a run; saved as config.yaml in the run directory."""

    model: Any  # the family's config dataclass (has a ``name`` via the registry)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0

    def to_dict(self) -> dict:
        return {
            "model": {"name": model_name_of_config(self.model), **to_dict(self.model)},
            "data": to_dict(self.data),
            "train": to_dict(self.train),
            "seed": self.seed,
        }


# --------------------------------------------------------------------------------------------
# conversion between dicts and dataclasses, with types checked


def to_dict(obj: Any) -> dict:
    """Dataclass -> plain dict of YAML-safe values (tuples become lists)."""

    def plain(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(obj)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


_SCALARS = {bool: ((bool,), "true or false"), int: ((int,), "an integer"),
            float: ((int, float), "a number"), str: ((str,), "a string")}


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; convert the few safe cases (int -> float)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: {value!r} is not a valid {_type_name(tp)}")
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{where}: {value!r} is not one of the allowed values: {allowed}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp in _SCALARS:
        accepted, what = _SCALARS[tp]
        # bool is an int subclass in Python; only a bool field takes true/false
        if not isinstance(value, accepted) or (tp is not bool and isinstance(value, bool)):
            raise ConfigError(f"{where}: expected {what}, got {value!r}")
        return float(value) if tp is float else value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    return value


def from_dict(cls: type, data: Any, where: str = "config") -> Any:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types are ConfigErrors."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of fields, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    for k in unknown:
        if f"{where}.{k}" in RETIRED:
            raise ConfigError(f"{where}.{k} no longer exists: {RETIRED[f'{where}.{k}']}")
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid keys are: {', '.join(fields)}"
        )
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        try:
            check()
        except ConfigError:
            raise
        except ValueError as e:  # a family's validate() speaks of its fields by name
            raise ConfigError(str(e)) from None
    return obj


# --------------------------------------------------------------------------------------------
# files and command-line overrides


def load_file(path: str | Path) -> dict:
    """Read a YAML or JSON config file into a dict (not yet checked)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid {path.suffix[1:].upper()}: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def parse_value(text: str) -> Any:
    """A command-line value: YAML scalars and lists (``2``, ``0.1``, ``true``, ``null``, ``[1,2]``)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_override(data: dict, dotted: str, value: Any) -> None:
    """Set ``data['a']['b'] = value`` for ``dotted = 'a.b'``, creating mappings on the way."""
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"cannot set {dotted}: {k} is not a section")
        node = nxt
    node[keys[-1]] = value


def merge(base: dict, update: dict) -> dict:
    """Recursive dict merge; ``update`` wins."""
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def build_run_config(data: dict) -> RunConfig:
    """Check a raw dict (file + overrides) and build the RunConfig with the family's dataclass."""
    data = dict(data)
    allowed = {"model", "data", "train", "seed"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(
            f"config: unknown section(s) {', '.join(unknown)}; valid: {', '.join(sorted(allowed))}"
        )
    model = data.get("model") or {}
    if isinstance(model, str):
        model = {"name": model}
    model = dict(model)
    name = model.pop("name", None)
    if name is None:
        raise ConfigError("config: no model chosen; pass --model NAME (see `ssavae list-models`)")
    cls = get_model_class(name)
    return RunConfig(
        model=from_dict(cls.Config, model, "model"),
        data=from_dict(DataConfig, data.get("data"), "data"),
        train=from_dict(TrainConfig, data.get("train"), "train"),
        seed=_coerce(data.get("seed", 0), int, "seed"),
    )


# keys earlier versions wrote into a run's config that mean nothing now: dropped when a saved
# run is read back, an error (with the reason) when a user gives them
RETIRED = {"train.checkpoints": "an in-memory fit (runs.fit, the estimator) writes no checkpoint; a run "
                                "directory always has them",
           "train.report": "a run directory always gets its figures and report; runs.fit writes none"}


def upgrade(raw: dict) -> dict:
    """A saved run's config (config.yaml, a checkpoint's) without the ``RETIRED`` keys."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for dotted in RETIRED:
        section, key = dotted.split(".")
        if isinstance(out.get(section), dict):
            out[section].pop(key, None)
    return out


def save(cfg: RunConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def load(path: str | Path) -> RunConfig:
    """A run's saved config (``RunDir.config``), read as this version reads it (``upgrade``)."""
    return build_run_config(upgrade(load_file(path)))
