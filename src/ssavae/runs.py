"""Runs: a config becomes a trained model, in memory (``fit``) or in a run directory (``train``:
data, split, model, engine with its callbacks, figures, summary, report); a run directory becomes
a model again (``load_model``). The layer above engine and eval; the directory's layout is
``rundir.RunDir``'s."""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from . import checkpoint as ckpt_io
from . import config as config_mod
from . import __version__, pretrained, tracking
from .config import RunConfig
from .data import (DataInfo, Dataset, InMemoryLoader, LabeledStream, Standardization, apply_split, labeled_mask,
                   load_dataset, warn_unscaled)
from .engine import Callback, Checkpointer, MetricsLog, SignalStop, Trainer, make_fabric, resolve_precision
from .engine.device import PRECISIONS, cpu_has_native_bf16
from .engine.launch import launched
from .errors import CheckpointError, ConfigError
from .eval.figures import epoch_figures
from .eval.report import write_report
from .eval.infer import Shards
from .eval.registry import summarize
from .eval.run_figures import final_figures
from .models import GenerativeModel, get_model_class
from .rundir import RunDir

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    model: GenerativeModel
    dataset: Dataset
    run_dir: Optional[Path]  # None for an in-memory fit
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
    cls = get_model_class(cfg.family)
    try:
        return cls(cfg.model, info, parts=parts)
    except ValueError as e:
        raise ConfigError(str(e)) from e


def load_model(run_dir: str | Path, checkpoint: Optional[str] = None,
               map_location: str | torch.device = "cpu",
               parts: Optional[dict] = None, raw_inputs: bool = True) -> tuple[GenerativeModel, RunConfig]:
    """Rebuild a trained model from its run directory, or from a directory ``ssavae export`` wrote:
    ``model, cfg = load_model(DIR)``. The data is not needed (the checkpoint records its shape and
    classes) and no pickled module is involved; a run trained with your own ``parts`` needs the same
    parts again. With ``raw_inputs`` a model whose table was standardized takes and returns rows as
    the training data came (``GenerativeModel.preprocess``); code that feeds it prepared data
    (``prepare_data``) passes False."""
    rd = RunDir(run_dir)
    if not rd.is_run() and pretrained.is_pretrained(rd.root):
        if checkpoint is not None:
            raise CheckpointError(f"{rd.root} is an exported model: it holds one set of weights, no checkpoints")
        meta = pretrained.read(rd.root)
        cfg = config_mod.build_run_config(config_mod.upgrade(meta["config"]))
        model = build_model(cfg, DataInfo.from_dict(meta["data_info"]), parts)
        model.load_state_dict(meta["state"])
        standardization = meta.get("preprocess")
    else:
        ck = ckpt_io.load(rd.checkpoint(checkpoint))
        cfg = config_mod.build_run_config(config_mod.upgrade(ck["config"]))
        held = ck["config"]["model"]["name"]
        if rd.is_run() and (family := config_mod.load_file(rd.config).get("model", {}).get("name")) != held:
            raise CheckpointError(f"{rd.checkpoint(checkpoint)} holds a {held} model but the "
                                  f"run directory's config.yaml is of {family}: the checkpoint was copied from "
                                  "another run; put back the run's own checkpoint")
        model = build_model(cfg, DataInfo.from_dict(ck["data_info"]), parts)
        model.load_state_dict(ck["model"])
        standardization = rd.read_json(rd.standardization)
    if raw_inputs and standardization:
        model.preprocess = Standardization.from_dict(standardization)
    return model.to(map_location).eval(), cfg


def from_pretrained(source: str | Path, revision: Optional[str] = None,
                    map_location: str | torch.device = "cpu") -> GenerativeModel:
    """``ssavae.from_pretrained(DIR)``: the model ``ssavae export`` (or ``model.save_pretrained``)
    wrote to DIR, or a run directory, ready for raw inputs; no pickle is read. ``source`` may be a
    Hugging Face Hub repo id (``user/name``, with ``pip install 'ssavae[hub]'``; ``revision``: a
    branch, tag or commit): the directory is downloaded (or taken from the local cache) first."""
    path = Path(source)
    if not path.exists():
        if str(source).count("/") != 1 or str(source).startswith((".", "/", "~")):
            raise CheckpointError(f"{source} does not exist (give a directory from ssavae export, or a Hub "
                                  "repo id user/name)")
        try:
            from huggingface_hub import snapshot_download
        except ImportError:
            raise CheckpointError(f"{source} is not a directory here; to load it from the Hugging Face Hub: "
                                  "pip install 'ssavae[hub]'") from None
        path = Path(snapshot_download(repo_id=str(source), revision=revision))
    return load_model(path, map_location=map_location)[0]


def export_run(run_dir: str | Path, out: str | Path, checkpoint: Optional[str] = None) -> Path:
    """``ssavae export RUN_DIR --out OUT``: the run's model as a directory to share
    (``pretrained.py``: safetensors weights, config.json, a model card), with the run's summary,
    evaluation and final figures in the run-directory layout, so the commands that read a run
    (``sample``, ``evaluate``, ``complete``, ``report``) read OUT as well."""
    import shutil

    from .eval.registry import flatten

    rd, dst = RunDir(run_dir), RunDir(out)
    if not rd.is_run():
        raise ConfigError(f"{run_dir} is not a run directory (no {rd.config.name})")
    if dst.root.exists() and any(dst.root.iterdir()):
        raise ConfigError(f"{dst.root} exists and is not empty: export into a new directory")
    model, cfg = load_model(rd, checkpoint)
    summary, evaluation = rd.read_json(rd.summary), rd.read_json(rd.evaluation)
    model.save_pretrained(dst.root, config=cfg.to_dict(), card={
        "command": rd.command.read_text().strip() if rd.command.exists() else None,
        "summary": summary, "evaluation": flatten(evaluation) if evaluation else None})
    for path, data in ((dst.summary, summary), (dst.evaluation, evaluation)):
        if data is not None:
            dst.write_json(path, data)
    for fig in rd.final_figures():
        dst.figures.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(fig, dst.figure(fig.stem))
    return dst.root


def train_or_resume(cfg: RunConfig, run_dir: str | Path, init_from: Optional[str | Path] = None,
                    command: Optional[str] = None) -> Optional[RunResult]:
    """Idempotent training for sweeps, comparisons and experiments: a finished run (it has a
    summary) is left alone, an interrupted one resumes, a missing one starts (from ``init_from``
    if given); ``command``: as ``train`` keeps it."""
    rd = RunDir(run_dir)
    if rd.finished():
        log.info("%s: finished earlier, skipped", run_dir)
        return None
    if rd.resumable():
        return train(cfg, run_dir, resume=True, command=command)
    return train(cfg, run_dir, init_from=init_from, command=command)


def _init_from(model: GenerativeModel, src_dir: Path) -> list[str]:
    """Load another run's weights for the groups its completed phases trained; returns those
    phases. Networks this config does not have (a discriminator at beta 0) are ignored."""
    src = ckpt_io.load(RunDir(src_dir).checkpoint())
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


def _check_run_dir(rd: RunDir, resume: bool, init_from, cfg: RunConfig) -> Optional[dict]:
    """Before any work: the directory can hold this run; with ``resume``, its checkpoint (loaded)
    and a config that changes nothing but ``train.*`` (``check_resume_config``)."""
    if resume and not rd.resumable():
        raise ConfigError(f"--resume: no checkpoint in {rd.checkpoints}; start a new run")
    if not resume and rd.resumable():
        raise ConfigError(f"{rd.root} already holds a run; pass --resume to continue it or choose another --out")
    if resume and init_from:
        raise ConfigError("use either --resume or --init-from, not both")
    if resume and rd.is_run():
        check_resume_config(config_mod.load(rd.config).to_dict(), cfg.to_dict(), rd.config)
    try:  # a run must be able to write its results
        rd.root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the run directory {rd.root} ({e.strerror}); choose another --out") from e
    rd.clean_partial_writes()
    return ckpt_io.load(rd.checkpoint()) if resume else None


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_resume_config(saved: dict, given: dict, path: Path) -> None:
    """A resumed run continues the run that ``path`` (its config) describes: values equal to the
    saved ones are fine, ``train.*`` may change, anything else may not."""
    a, b = _flat(saved), _flat(given)
    changed = [f"{k} (saved {a.get(k)!r}, given {b.get(k)!r})" for k in sorted(set(a) | set(b))
               if not k.startswith("train.") and a.get(k) != b.get(k)]
    if changed:
        raise ConfigError(f"--resume continues the run of {path}; only train.* fields may change, "
                          f"these differ: {'; '.join(changed)}. Leave them out or give the saved "
                          "values, or start a new run in another --out")


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


class EpochFigures(Callback):
    """Sample and reconstruction grids after every ``every`` epochs of a phase that decodes."""

    def __init__(self, ds: Dataset, rd: RunDir, every: int, seed: int):
        self.ds, self.rd, self.every, self.seed = ds, rd, every, seed

    def on_epoch_end(self, trainer, phase, epoch) -> None:
        if trainer.is_main and self.every and phase.figures and (epoch + 1) % self.every == 0:
            epoch_figures(trainer.model, self.ds, self.rd.figures, f"{phase.name}_epoch{epoch + 1:03d}", self.seed)


def _fit(cfg: RunConfig, fabric, dataset: Optional[Dataset], parts: Optional[dict],
         callbacks_for: Callable[[Dataset], list], resume_from=None, init_from=None, before=None):
    """Data, model and trainer of one run, inside its process group; ``callbacks_for(ds)``: the
    callbacks, given the prepared data; ``before(ds, y, model)`` runs on rank 0 just before training."""
    _check_same_precision(fabric, cfg.train.precision)
    torch.manual_seed(cfg.seed)  # the same initial weights on every process
    ds, y_train = prepare_data(cfg, dataset)
    if cfg.train.batch_size * fabric.world_size > len(y_train) and fabric.global_rank == 0:
        log.warning("train.batch_size %d (x %d processes) is larger than the %d training examples: each "
                    "epoch is one batch of them all", cfg.train.batch_size, fabric.world_size, len(y_train))
    model = build_model(cfg, ds, parts)
    torch.manual_seed(cfg.seed * 7919 + fabric.global_rank)  # different noise per process
    done = _init_from(model, Path(init_from)) if init_from else []
    if before is not None and fabric.global_rank == 0:
        before(ds, y_train, model)
    loader, labeled = make_streams(cfg, ds, y_train, fabric)
    trainer = Trainer(cfg.train, fabric, callbacks_for(ds))
    trainer.progress["completed"] = done
    trainer.fit(model, loader, labeled, resume_from=resume_from)
    return model, ds, trainer


def fit(cfg: RunConfig, dataset: Optional[Dataset] = None, parts: Optional[dict] = None,
        callbacks: tuple[Callback, ...] = (), fabric=None) -> RunResult:
    """Train ``cfg`` in memory: no directory, no checkpoint, no figures, no summary; the
    callbacks ``train.*`` asks for (``engine.callbacks.from_settings``), then ``callbacks``."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    cfg = decide_precision(cfg)
    fabric = fabric if fabric is not None else make_fabric(cfg.train)
    with launched(fabric):
        model, ds, _ = _fit(cfg, fabric, dataset, parts, lambda ds: list(callbacks))
    return RunResult(model, ds, None, {})


def train(cfg: RunConfig, run_dir: str | Path, resume: bool = False,
          init_from: Optional[str | Path] = None, fabric=None,
          dataset: Optional[Dataset] = None, parts: Optional[dict] = None,
          callbacks: tuple[Callback, ...] = (), command: Optional[str] = None) -> RunResult:
    """Train ``cfg`` into ``run_dir``. ``resume`` continues its last checkpoint exactly (refused
    when ``cfg`` changes more than ``train.*``); ``init_from`` starts from another run's weights
    and skips the phases it completed; ``dataset`` gives in-memory data instead of
    ``cfg.data.name`` (the split still applies); ``parts`` replaces named networks with your own
    modules; ``callbacks`` run after the run's own (e.g. ``engine.EarlyStopping``); ``command``:
    the command line, kept in the run (``RunDir.command``) for its report and model card."""
    rd = RunDir(run_dir)
    resume_from = _check_run_dir(rd, resume, init_from, cfg)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    asked, cfg = cfg.train.precision, decide_precision(cfg, resume_from)
    fabric = fabric if fabric is not None else make_fabric(cfg.train)

    def before(ds: Dataset, y_train: np.ndarray, model: GenerativeModel) -> None:
        config_mod.save(cfg, rd.config)
        if command:  # the command line that started (or resumed) it, for the report and model card
            with open(rd.command, "a") as f:
                f.write(command + "\n")
        if ds.standardization is not None:  # what new rows need before predict_proba / encode
            rd.write_json(rd.standardization, ds.standardization)
            log.info("%s: columns standardized with the training rows' mean and standard deviation "
                     "(%s); apply the same to new rows", ds.name, rd.standardization)
        log.info("%s: %d training examples (%d labeled), %d test; %s with %d parameters",
                 ds.name, len(y_train), int((y_train >= 0).sum()), len(ds.y_test), model.name,
                 sum(p.numel() for p in model.parameters()))
        log.info("precision: %s (%s)", cfg.train.precision, _precision_reason(asked, cfg.train, resume_from))
        if resume_from and all(p.name in resume_from["progress"]["completed"] or p.epochs == 0 for p in model.phases()):
            log.warning("%s had already finished every phase: nothing more to train (a finished phase is not "
                        "extended: its schedule has ended); for more epochs, start a new run with them", rd.root)

    t = cfg.train
    tracking.check_installed(t.loggers)
    trackers = tracking.Trackers(rd, cfg.to_dict(), t.loggers)

    def callbacks_for(ds: Dataset) -> list[Callback]:  # after the trainer's own (guard, ...)
        return [SignalStop(), MetricsLog(rd.metrics),
                Checkpointer(rd.last, rd.best, cfg.to_dict(), t.checkpoint_every, t.keep_checkpoints,
                             t.best_metric, t.best_mode),
                EpochFigures(ds, rd, t.sample_every, cfg.seed), trackers, *callbacks]

    with launched(fabric):  # the process group, from here to the end of the run
        try:
            model, ds, trainer = _fit(cfg, fabric, dataset, parts, callbacks_for, resume_from, init_from, before)
            summary = summarize(model, ds, trainer.progress, Shards(fabric))  # every rank its block
            summary["evaluated_on"] = cfg.data.evaluate_on
            summary["precision"] = cfg.train.precision
            summary["ssavae_version"] = __version__
            if fabric.global_rank == 0:
                rd.write_json(rd.summary, summary)
                final_figures(model, ds, rd, cfg.seed)
                write_report(rd)
        except BaseException:
            trackers.close(None, ok=False)
            raise
        trackers.close(summary, ok=True)
        return RunResult(model, ds, rd.root, summary)


def evaluate_run(run_dir: str | Path, n: int = 5000, iw_samples: int = 1000,
                 evaluator_epochs: Optional[int] = None, device: Optional[str] = None) -> dict:
    """``ssavae evaluate RUN_DIR``: every metric that applies -> RUN_DIR/eval/metrics.json."""
    from .eval.registry import evaluate_model
    from .eval.evaluator import EPOCHS, get_evaluator

    rd = RunDir(run_dir)
    model, cfg = load_model(rd, map_location=device or "cpu", raw_inputs=False)
    ds, _ = prepare_data(cfg)
    evaluator = get_evaluator(ds, epochs=evaluator_epochs or EPOCHS, device=device or "cpu")
    result = evaluate_model(model, ds, evaluator, n=n, iw_samples=iw_samples, seed=cfg.seed)
    rd.write_json(rd.evaluation, result)
    if rd.is_run():  # to the trackers the run trained with (an export has none)
        from .eval.registry import flatten

        tracking.send_evaluation(rd, cfg.to_dict(), flatten(result))
    return result
