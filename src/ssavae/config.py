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
import difflib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from .errors import ConfigError
from .fields import check_limits, opt
from .models import get_model_class


@dataclass
class DataConfig:
    """Which data, and which of its labels the models may see."""

    name: str = opt("fashion-mnist", "a registered dataset, or npz:PATH, csv:PATH, folder:PATH")
    label_column: str = opt("label", "csv: the column of labels (numbers or names); absent: no labels")
    unlabeled_marker: str = opt("", "csv: a label cell meaning \"unlabeled\" (besides an empty cell and -1)")
    image_size: Optional[int] = opt(None, "folder: resize every image to N x N (else all must match)", ge=1)
    data_dir: Optional[str] = opt(None, "searched first; then ~/.cache/ssavae, then system paths")
    labels_per_class: Optional[int] = opt(None, "keep this many labels per class, the rest get y = -1", ge=1)
    label_fraction: Optional[float] = opt(None, "or keep this fraction of the labels (stratified)", gt=0, le=1)
    split_seed: int = opt(0, "seed of the labeled subset only: every family sees the same labels")
    limit_train: Optional[int] = opt(None, "use only the first N training examples (quick runs)", ge=1)
    limit_test: Optional[int] = opt(None, "use only the first N test examples", ge=1)
    validation_size: int = opt(0, "hold this many training examples out (seeded by split_seed)", ge=0)
    evaluate_on: Literal["test", "validation"] = opt("test", "validation: they replace the test set")
    standardize: Optional[bool] = opt(None, "tables: each column -> (x - mean) / std of the training rows "
                                            "(RUN_DIR/standardization.json); null: for csv:/npz: tables not already "
                                            "within [0, 1]")


@dataclass
class TrainConfig:
    """How the engine trains any family (devices, optimizers, schedule, logging)."""

    epochs: int = opt(10, "epochs of each phase that does not set its own (see the family's config)", ge=0)
    batch_size: int = opt(128, "per process", ge=1)
    max_steps: Optional[int] = opt(None, "stop after this many batches in total (all phases)", ge=1)
    max_minutes: Optional[float] = opt(None, "wall-clock budget of this process, split equally by phases", gt=0)
    labeled_batch_size: int = opt(64, "batch of the labeled stream, for steps with data=\"labeled\"", ge=1)
    limit_batches: Optional[int] = opt(None, "batches per epoch (debugging)", ge=1)
    overfit_batches: int = opt(0, ">0: train on these first N batches only, unshuffled", ge=0)
    fast_dev_run: bool = opt(False, "one epoch of 2 batches per phase, then stop")
    optimizer: Literal["adam", "adamw", "sgd"] = opt("adam", "the optimizer of every update step")
    lr: float = opt(1e-3, "learning rate of every update step (times the step's lr_scale; train.step_lr sets one "
                          "step's)", gt=0)
    betas: tuple[float, float] = opt((0.9, 0.999), "Adam's (beta1, beta2); sgd takes beta1 as its momentum")
    weight_decay: float = opt(0.0, "weight decay (decoupled with adamw)", ge=0)
    step_lr: dict = opt(factory=dict, help="per update step learning rate, e.g. {disc: 2e-4}; else lr x the step's "
                                           "lr_scale")
    lr_schedule: Literal["constant", "cosine"] = opt("constant", "cosine: decay to 0 over each phase")
    grad_clip: Optional[float] = opt(10.0, "max global grad norm per step; null disables", gt=0)
    accelerator: str = opt("auto", "cpu, cuda, mps, auto")
    devices: Union[int, str] = opt(1, "processes per node (\"auto\" = all GPUs)")
    num_nodes: int = opt(1, "machines of a distributed run", ge=1)
    strategy: str = opt("auto", "auto, ddp (gradients averaged across processes)")
    channels_last: Optional[bool] = opt(None, "networks' 4-D weights in channels-last memory; null: on a CPU (a conv "
                                              "batch 0.71-0.89x the time, docs/performance.md), off elsewhere (not "
                                              "measured)")
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = opt("auto", "auto: bf16-mixed on a CPU with "
                                                                                  "native bf16 arithmetic (AVX512-BF16 "
                                                                                  "or AMX), else 32-true")
    threads: Optional[int] = opt(None, "torch CPU threads; null = torch default", ge=0)
    log_every: int = opt(50, "steps between metric rows", ge=1)
    checkpoint_every: int = opt(500, "steps between periodic checkpoints (plus one per epoch)", ge=1)
    keep_checkpoints: int = opt(0, "also keep the last N epoch-end checkpoints (epoch-STEP-PHASE-EPOCH.pt)", ge=0)
    best_metric: Optional[str] = opt(None, "e.g. \"vae/loss\": best.pt = the epoch with the best mean of it")
    best_mode: Literal["min", "max"] = opt("min", "whether a lower (min) or higher (max) train.best_metric is better")
    sample_every: int = opt(1, "epochs between sample/reconstruction grids; 0 disables", ge=0)
    progress: bool = opt(True, "rich progress bar with the live losses")
    loggers: list[Literal["jsonl", "tensorboard", "mlflow", "wandb"]] = opt(
        help="where the config, training metrics, final numbers and figures also go (tracking.py): jsonl "
        "(RUN_DIR/metrics.jsonl, always written), tensorboard, mlflow, wandb (each an extra: pip install "
        "'ssavae[mlflow]'); a tracker that fails warns once and the run goes on", factory=lambda: ["jsonl"])
    tracking_uri: Optional[str] = opt(None, "mlflow: the tracking server or store (default: MLFLOW_TRACKING_URI, "
                                      "else the file store ./mlruns)")
    experiment: Optional[str] = opt(None, "the mlflow experiment / wandb project (default: ssavae-FAMILY)")
    guard: bool = opt(True, "the stability guard of adversarial training (engine/guard.py)")
    guard_patience: int = opt(200, "batches in a row a critic may win outright before the run stops", ge=1)
    guard_margin: float = opt(0.05, "\"outright\": d_real - d_fake >= 1 - 2 * margin", ge=0, lt=0.5)
    guard_every: int = opt(500, "phase steps between sample-collapse probes; 0: no probes", ge=0)
    guard_collapse: float = opt(0.05, "sample spread / real spread below this (twice) is a collapse", ge=0)
    on_divergence: Literal["stop", "rollback"] = opt(
        "stop", "after a non-finite loss or the guard's stop: stop (resumable from the last checkpoint), or "
        "rollback: back to the end of the last epoch, the learning rate of the step to blame halved")
    max_rollbacks: int = opt(3, "rollbacks a run may make before it stops (train.on_divergence rollback)", ge=1)

    def validate(self) -> None:
        for step, lr in self.step_lr.items():
            if lr is None and ":" in str(step):  # YAML reads {cls:0.003} as the key "cls:0.003"
                raise ValueError(f"train.step_lr: {{{step}}} has no value; write a space after "
                                 f"the colon: '{{{str(step).replace(':', ': ', 1)}}}'")
            if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
                raise ValueError(f"train.step_lr.{step} must be a learning rate > 0, got {lr!r}")


@dataclass
class RunConfig:
    """Everything needed to reproduce a run; saved as config.yaml in the run directory."""

    model: Any  # the family's config dataclass
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    family: str = ""  # the registered family's name (saved as model.name)

    def to_dict(self) -> dict:
        return {
            "model": {"name": self.family, **to_dict(self.model)},
            "data": to_dict(self.data),
            "train": to_dict(self.train),
            "seed": self.seed,
        }


# --------------------------------------------------------------------------------------------
# conversion between dicts and dataclasses, with types checked


def flat_dict(config: dict, prefix: str = "") -> dict[str, Any]:
    """{"model": {"beta": 0.005}} -> {"model.beta": 0.005}; lists and None as text (tracker parameters)."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out.update(flat_dict(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


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
        if isinstance(value, str) and "," in value:  # --train.loggers jsonl,mlflow
            value = [v.strip() for v in value.split(",") if v.strip()]
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
        close = {k: difflib.get_close_matches(k, fields, 1) for k in unknown}
        hint = "".join(f" (did you mean {where}.{c[0]}?)" for k, c in close.items() if c)
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}{hint}; valid keys are: {', '.join(fields)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    try:
        check_limits(obj, where)  # the limits the fields declare, then the cross-field rules
    except ValueError as e:
        raise ConfigError(str(e)) from None
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
        family=name,
    )


# keys earlier versions wrote into a run's config that mean nothing now: dropped when a saved
# run is read back, an error (with the reason) when a user gives them
RETIRED = {"train.checkpoints": "an in-memory fit (runs.fit, the estimator) writes no checkpoint; a run "
                                "directory always has them",
           "train.report": "a run directory always gets its figures and report; runs.fit writes none",
           "train.tensorboard": "TensorBoard is one of the trackers now: train.loggers [jsonl, tensorboard]"}


def upgrade(raw: dict) -> dict:
    """A saved run's config (config.yaml, a checkpoint's) without the ``RETIRED`` keys."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    if isinstance(out.get("train"), dict) and out["train"].get("tensorboard"):
        out["train"]["loggers"] = [*out["train"].get("loggers", ["jsonl"]), "tensorboard"]
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
