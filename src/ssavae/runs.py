"""Runs: a config becomes a run directory (data, split, model, engine, figures, summary, report),
and a run directory becomes a model again (``load_model``). The layer above engine and eval.

Every run directory has one layout::

    RUN_DIR/config.yaml       the resolved config (re-loadable with --config)
    RUN_DIR/metrics.jsonl     one row per logged step
    RUN_DIR/checkpoints/      last.pt (exact resume), written atomically
    RUN_DIR/figures/          PNG grids and maps
    RUN_DIR/summary.json      test-set numbers of the finished run
    RUN_DIR/standardization.json  a standardized table's column means and scales (tables only)
    RUN_DIR/report.html       all of it on one self-contained page
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from . import checkpoint as ckpt_io
from . import config as config_mod
from .config import RunConfig
from .data import (DataInfo, Dataset, InMemoryLoader, LabeledStream, apply_split, labeled_mask, load_dataset,
                   warn_unscaled)
from .engine import Trainer, make_fabric, resolve_precision
from .engine.launch import launched
from .engine.trainer import PRECISIONS, cpu_has_native_bf16
from .errors import CheckpointError, ConfigError
from .eval.figures import epoch_figures
from .eval.report import write_report
from .eval.infer import Shards
from .eval.summary import final_figures, summarize
from .models import GenerativeModel, get_model_class, model_name_of_config

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    model: GenerativeModel
    dataset: Dataset
    run_dir: Path
    summary: dict


def prepare_data(cfg: RunConfig, dataset: Optional[Dataset] = None) -> tuple[Dataset, np.ndarray]:
    """The dataset (limited as configured) and the training labels with -1 outside the split."""
    d = cfg.data
    ds = dataset if dataset is not None else load_dataset(d.name, d.data_dir, d.label_column, d.unlabeled_marker,
                                                                 d.image_size)
    ds = ds.limit(d.limit_train, d.limit_test)
    if d.validation_size:
        ds = ds.with_validation(d.validation_size, d.split_seed + 1_000, d.evaluate_on)
    elif d.evaluate_on == "validation":
        raise ConfigError("data.evaluate_on validation needs data.validation_size > 0")
    table = ds.x_train.ndim == 2
    standardize = d.standardize if d.standardize is not None else \
        table and d.name.startswith(("csv:", "npz:")) and not ds.info.unit_range
    if standardize:
        ds = ds.standardized()
    elif table and d.name.startswith(("csv:", "npz:")):
        warn_unscaled(ds.x_train, d.name)
    mask = labeled_mask(ds.y_train, d.labels_per_class, d.label_fraction, d.split_seed)
    return ds, apply_split(ds.y_train, mask)


def build_model(cfg: RunConfig, ds: Dataset | DataInfo, parts: Optional[dict] = None) -> GenerativeModel:
    """The family's model for this data; ``parts`` replaces named networks with your own
    ``nn.Module``s (e.g. ``{"enc": MyEncoder()}``, see docs/design.md)."""
    info = ds.info if isinstance(ds, Dataset) else ds
    cls = get_model_class(model_name_of_config(cfg.model))
    try:
        return cls(cfg.model, info, parts=parts)
    except ValueError as e:
        raise ConfigError(str(e)) from e


def load_model(run_dir: str | Path, checkpoint: str = "last.pt",
               map_location: str | torch.device = "cpu",
               parts: Optional[dict] = None) -> tuple[GenerativeModel, RunConfig]:
    """Rebuild a trained model from its run directory: ``model, cfg = load_model(RUN_DIR)``.
    The data is not needed (the checkpoint records its shape and classes) and no pickled module
    is involved; a run trained with your own ``parts`` needs the same parts again."""
    run_dir = Path(run_dir)
    ck = ckpt_io.load(run_dir / "checkpoints" / checkpoint)
    cfg = config_mod.build_run_config(ck["config"])
    saved = run_dir / "config.yaml"
    held = ck["config"]["model"]["name"]
    if saved.exists() and (family := config_mod.load_file(saved).get("model", {}).get("name")) != held:
        raise CheckpointError(f"{run_dir / 'checkpoints' / checkpoint} holds a {held} model but the "
                              f"run directory's config.yaml is of {family}: the checkpoint was copied from "
                              "another run; put back the run's own checkpoint")
    i = ck["data_info"]
    model = build_model(cfg, DataInfo(tuple(i["shape"]), i["num_classes"], i["unit_range"]), parts)
    model.load_state_dict(ck["model"])
    return model.to(map_location).eval(), cfg


def train_or_resume(cfg: RunConfig, run_dir: str | Path,
                    init_from: Optional[str | Path] = None) -> Optional[RunResult]:
    """Idempotent training for sweeps and comparisons: a finished run (it has a summary) is left
    alone, an interrupted one resumes, a missing one starts (from ``init_from`` if given)."""
    run_dir = Path(run_dir)
    if (run_dir / "summary.json").exists():
        log.info("%s: finished earlier, skipped", run_dir)
        return None
    if (run_dir / "checkpoints" / "last.pt").exists():
        return train(cfg, run_dir, resume=True)
    return train(cfg, run_dir, init_from=init_from)


def _init_from(model: GenerativeModel, src_dir: Path) -> list[str]:
    """Load another run's weights for the groups its completed phases trained; returns those
    phases. Networks this config does not have (a discriminator at beta 0) are ignored."""
    src = ckpt_io.load(Path(src_dir) / "checkpoints" / "last.pt")
    if src["family"] != model.name:
        raise ConfigError(f"--init-from {src_dir}: that run trained {src['family']!r}, "
                          f"not {model.name!r}")
    done = list(src["progress"].get("completed", []))
    trained = {g for p in model.phases() if p.name in done for s in p.steps for g in s.groups}
    wanted = tuple(f"{g}." for g in trained)
    state = {k: v for k, v in src["model"].items() if k in model.state_dict()}
    wanted += ("prior.",) if done else ()  # a sampler fitted at the end of a completed phase
    lacking = [k for k in model.state_dict() if k.startswith(wanted) and k not in state]
    if lacking:
        raise ConfigError(f"--init-from {src_dir}: that run has no weights for {lacking[:3]}; "
                          "its config builds other networks or samplers (e.g. model.vec_recon_weight, "
                          "model.sampler): train it with the same model settings")
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise ConfigError(f"--init-from {src_dir}: its networks do not match this config "
                          f"(latent_dim, arch, sizes or model.sampler differ): {e}") from e
    return done


def _check_run_dir(run_dir: Path, resume: bool, init_from) -> Path:
    last = run_dir / "checkpoints" / "last.pt"
    if resume and not last.exists():
        raise ConfigError(f"--resume: no checkpoint in {run_dir / 'checkpoints'}; start a new run")
    if not resume and last.exists():
        raise ConfigError(f"{run_dir} already holds a run; pass --resume to continue it or choose "
                          "another --out")
    if resume and init_from:
        raise ConfigError("use either --resume or --init-from, not both")
    try:  # before any work: a run must be able to write its results
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the run directory {run_dir} ({e.strerror}); choose another --out") from e
    for stale in last.parent.glob(".*.tmp"):  # left by a process killed inside a checkpoint write
        stale.unlink(missing_ok=True)
    return last


def decide_precision(cfg: RunConfig, resume_from: Optional[dict] = None) -> RunConfig:
    """``cfg`` with ``train.precision`` decided once for the whole run: ``auto`` becomes what this
    machine answers (engine ``resolve_precision``), or, when resuming, the precision the run
    trained in, whatever this machine would answer (a run moved to a CPU of the other kind
    continues as it began). An explicit precision is kept, on resume too (with a warning when it
    differs from the run's: the continuation is then not bitwise the uninterrupted run)."""
    saved = ((resume_from or {}).get("config") or {}).get("train", {}).get("precision", "auto")
    if cfg.train.precision == "auto" and saved != "auto":
        chosen = saved
    else:
        chosen = resolve_precision(cfg.train)
        if saved not in ("auto", chosen):
            log.warning("resuming a run that trained in %s in %s, as asked: from here on it does not "
                        "train as the uninterrupted run would", saved, chosen)
    return replace(cfg, train=replace(cfg.train, precision=chosen))


def _precision_reason(asked: str, train, resume_from: Optional[dict]) -> str:
    """Why the run trains in ``train.precision``, for the line printed at its start."""
    if asked != "auto":
        return "train.precision"
    if resume_from is not None:
        return "train.precision auto: as the run being resumed trained"
    if train.precision == "bf16-mixed":
        return "train.precision auto: this CPU has native bf16; --train.precision 32-true for fp32"
    return ("train.precision auto: fp32 on an accelerator" if cpu_has_native_bf16()
            else "train.precision auto: this CPU has no native bf16, so fp32")


def _check_same_precision(fabric, precision: str) -> None:
    """Every process of a distributed run trains in rank 0's precision (machines of a cluster may
    answer ``auto`` differently): otherwise a clear error on every process, not diverging replicas."""
    if fabric.world_size == 1:
        return
    ours = PRECISIONS.index(precision)
    theirs = fabric.broadcast(ours, src=0)
    differs = fabric.all_reduce(torch.tensor(float(ours != theirs), device=fabric.device), reduce_op="sum")
    if float(differs) > 0:
        raise ConfigError(f"the processes of this run chose different precisions (process 0: "
                          f"{PRECISIONS[theirs]}, process {fabric.global_rank}: {precision}); their CPUs "
                          "answer train.precision auto differently: set --train.precision for the run")


def make_streams(cfg: RunConfig, ds: Dataset, y_train: np.ndarray, fabric):
    """The mixed stream (every training example, y = -1 where unlabeled) and the labeled
    stream (the labeled subset, cycled with its own seed); None when nothing is labeled."""
    t = cfg.train
    loader = InMemoryLoader(ds.x_train, y_train, t.batch_size, shuffle=True, seed=cfg.seed,
                            rank=fabric.global_rank, world_size=fabric.world_size,
                            device=fabric.device, limit_batches=t.limit_batches)
    labeled = None
    if (y_train >= 0).any():
        labeled = LabeledStream(loader.x, y_train, t.labeled_batch_size, seed=cfg.seed + 104_729,
                                rank=fabric.global_rank, device=fabric.device)
    return loader, labeled


def train(cfg: RunConfig, run_dir: str | Path, resume: bool = False,
          init_from: Optional[str | Path] = None, fabric=None,
          dataset: Optional[Dataset] = None, parts: Optional[dict] = None,
          on_epoch_end: Optional[Callable] = None) -> RunResult:
    """Train ``cfg`` into ``run_dir``. ``resume`` continues its last checkpoint exactly;
    ``init_from`` starts from another run's weights and skips the phases it completed;
    ``dataset`` gives in-memory data instead of ``cfg.data.name`` (the split still applies);
    ``parts`` replaces named networks with your own modules; ``on_epoch_end(trainer, phase,
    epoch)`` runs after each epoch's figures (e.g. ``engine.EarlyStopping``)."""
    run_dir = Path(run_dir)
    last = _check_run_dir(run_dir, resume, init_from)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    resume_from = ckpt_io.load(last) if resume else None
    asked, cfg = cfg.train.precision, decide_precision(cfg, resume_from)
    fabric = fabric if fabric is not None else make_fabric(cfg.train)
    with launched(fabric):  # the process group, from here to the end of the run
        _check_same_precision(fabric, cfg.train.precision)
        torch.manual_seed(cfg.seed)  # the same initial weights on every process
        ds, y_train = prepare_data(cfg, dataset)
        if cfg.train.batch_size * fabric.world_size > len(y_train) and fabric.global_rank == 0:
            log.warning("train.batch_size %d (x %d processes) is larger than the %d training examples: each "
                        "epoch is one batch of them all", cfg.train.batch_size, fabric.world_size, len(y_train))
        model = build_model(cfg, ds, parts)
        torch.manual_seed(cfg.seed * 7919 + fabric.global_rank)  # different noise per process
        done = _init_from(model, Path(init_from)) if init_from else []
        if fabric.global_rank == 0:
            run_dir.mkdir(parents=True, exist_ok=True)
            config_mod.save(cfg, run_dir / "config.yaml")
            if ds.standardization is not None:  # what new rows need before predict_proba / encode
                (run_dir / "standardization.json").write_text(json.dumps(ds.standardization))
                log.info("%s: columns standardized with the training rows' mean and standard deviation "
                         "(%s); apply the same to new rows", ds.name, run_dir / "standardization.json")
            log.info("%s: %d training examples (%d labeled), %d test; %s with %d parameters",
                     ds.name, len(y_train), int((y_train >= 0).sum()), len(ds.y_test), model.name,
                     sum(p.numel() for p in model.parameters()))
            log.info("precision: %s (%s)", cfg.train.precision, _precision_reason(asked, cfg.train, resume_from))
        loader, labeled = make_streams(cfg, ds, y_train, fabric)
        every = cfg.train.sample_every

        def after_epoch(trainer: Trainer, phase, epoch: int) -> None:
            if every and phase.figures and (epoch + 1) % every == 0:
                epoch_figures(model, ds, run_dir / "figures", f"{phase.name}_epoch{epoch + 1:03d}", cfg.seed)
            if on_epoch_end is not None:
                on_epoch_end(trainer, phase, epoch)

        trainer = Trainer(cfg, run_dir, fabric, on_epoch_end=after_epoch)
        trainer.progress["completed"] = done
        trainer.fit(model, loader, labeled, resume_from=resume_from)
        summary = summarize(model, ds, trainer.progress, Shards(fabric))  # every rank its block
        summary["evaluated_on"] = cfg.data.evaluate_on
        summary["precision"] = cfg.train.precision
        if fabric.global_rank == 0:
            (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
            if cfg.train.report:
                final_figures(model, ds, run_dir, cfg.seed)
                write_report(run_dir)
        return RunResult(model, ds, run_dir, summary)


def evaluate_run(run_dir: str | Path, n: int = 5000, iw_samples: int = 1000,
                 evaluator_epochs: Optional[int] = None, device: Optional[str] = None) -> dict:
    """``ssavae evaluate RUN_DIR``: every metric that applies -> RUN_DIR/eval/metrics.json."""
    from .eval.evaluate import evaluate_model
    from .eval.evaluator import EPOCHS, get_evaluator
    from .fileio import atomic_path

    run_dir = Path(run_dir)
    model, cfg = load_model(run_dir, map_location=device or "cpu")
    ds, _ = prepare_data(cfg)
    evaluator = get_evaluator(ds, epochs=evaluator_epochs or EPOCHS, device=device or "cpu")
    result = evaluate_model(model, ds, evaluator, n=n, iw_samples=iw_samples, seed=cfg.seed)
    with atomic_path(run_dir / "eval" / "metrics.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    return result
