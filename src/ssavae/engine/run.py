"""A training run from a config: data, split, model, engine, figures and summary in one folder.

Every run directory has one layout::

    RUN_DIR/config.yaml       the resolved config (re-loadable with --config)
    RUN_DIR/metrics.jsonl     one row per logged step
    RUN_DIR/checkpoints/      last.pt (exact resume), written atomically
    RUN_DIR/figures/          PNG grids and maps
    RUN_DIR/summary.json      test-set numbers of the finished run
    RUN_DIR/report.html       all of it on one self-contained page
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .. import config as config_mod
from ..config import ConfigError, RunConfig
from ..data import DataInfo, Dataset, InMemoryLoader, apply_split, labeled_mask, load_dataset, to_float
from ..models.base import GenerativeModel
from ..registry import get_model_class, model_name_of_config
from . import checkpoint as ckpt_io
from .trainer import Trainer, make_fabric

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
    ds = dataset if dataset is not None else load_dataset(d.name, d.data_dir)
    ds = ds.limit(d.limit_train, d.limit_test)
    mask = labeled_mask(ds.y_train, d.labels_per_class, d.label_fraction, d.split_seed)
    return ds, apply_split(ds.y_train, mask)


def build_model(cfg: RunConfig, ds: Dataset) -> GenerativeModel:
    cls = get_model_class(model_name_of_config(cfg.model))
    try:
        return cls(cfg.model, ds.info)
    except ValueError as e:
        raise ConfigError(str(e)) from e


def load_model(run_dir: str | Path, checkpoint: str = "last.pt",
               map_location: str | torch.device = "cpu") -> tuple[GenerativeModel, RunConfig]:
    """Rebuild a trained model from its run directory; the data is not needed (the checkpoint
    records its shape and classes), and no pickled module is involved."""
    run_dir = Path(run_dir)
    ck = ckpt_io.load(run_dir / "checkpoints" / checkpoint)
    cfg = config_mod.build_run_config(ck["config"])
    if "data_info" in ck:
        i = ck["data_info"]
        info = DataInfo(tuple(i["shape"]), i["num_classes"], i["unit_range"])
    else:  # checkpoints of ssavae 0.1.0 before data_info: ask the data itself
        info = prepare_data(cfg)[0].info
    model = get_model_class(ck["family"])(cfg.model, info)
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


def epoch_figures(model: GenerativeModel, ds: Dataset, figures: Path, tag: str,
                  seed: int = 0) -> None:
    """Samples from the prior and test reconstructions (inputs beside outputs)."""
    from ..eval.figures import interleave, save_grid

    if not ds.info.is_image:
        return
    model.eval()
    x = to_float(ds.x_test[:32]).to(model.device)
    g = torch.Generator().manual_seed(seed)
    save_grid(figures / f"samples_{tag}.png", model.sample(64, generator=g), nrow=8)
    save_grid(figures / f"reconstructions_{tag}.png", interleave(x, model.reconstruct(x)), nrow=8)


def train(cfg: RunConfig, run_dir: str | Path, resume: bool = False,
          init_from: Optional[str | Path] = None, fabric=None,
          dataset: Optional[Dataset] = None) -> RunResult:
    """Train ``cfg`` into ``run_dir``. ``resume`` continues its last checkpoint exactly;
    ``init_from`` starts from another run's weights and skips the phases it completed;
    ``dataset`` gives in-memory data instead of ``cfg.data.name`` (the split still applies)."""
    run_dir = Path(run_dir)
    last = run_dir / "checkpoints" / "last.pt"
    if resume and not last.exists():
        raise ConfigError(f"--resume: no checkpoint in {run_dir / 'checkpoints'}; start a new run")
    if not resume and last.exists():
        raise ConfigError(f"{run_dir} already holds a run; pass --resume to continue it or choose "
                          "another --out")
    if resume and init_from:
        raise ConfigError("use either --resume or --init-from, not both")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)

    fabric = fabric if fabric is not None else make_fabric(cfg.train)
    fabric.launch()
    torch.manual_seed(cfg.seed)  # the same initial weights on every process
    ds, y_train = prepare_data(cfg, dataset)
    model = build_model(cfg, ds)
    torch.manual_seed(cfg.seed * 7919 + fabric.global_rank)  # different noise per process

    resume_from = ckpt_io.load(last) if resume else None
    if init_from:
        src = ckpt_io.load(Path(init_from) / "checkpoints" / "last.pt")
        if src["family"] != model.name:
            raise ConfigError(f"--init-from {init_from}: that run trained {src['family']!r}, "
                              f"not {model.name!r}")
        try:
            model.load_state_dict(src["model"])
        except RuntimeError as e:
            raise ConfigError(f"--init-from {init_from}: its networks do not match this config "
                              f"(latent_dim, arch or sizes differ): {e}") from e
    if fabric.global_rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        config_mod.save(cfg, run_dir / "config.yaml")
        n_lab = int((y_train >= 0).sum())
        log.info("%s: %d training examples (%d labeled), %d test; %s with %d parameters",
                 ds.name, len(y_train), n_lab, len(ds.y_test), model.name,
                 sum(p.numel() for p in model.parameters()))
    loader = InMemoryLoader(ds.x_train, y_train, cfg.train.batch_size, shuffle=True,
                            seed=cfg.seed, rank=fabric.global_rank, world_size=fabric.world_size,
                            device=fabric.device, limit_batches=cfg.train.limit_batches)
    figures = run_dir / "figures"
    every = cfg.train.sample_every

    def on_epoch_end(trainer: Trainer, phase, epoch: int) -> None:
        if every and phase.figures and (epoch + 1) % every == 0:
            epoch_figures(model, ds, figures, f"{phase.name}_epoch{epoch + 1:03d}", cfg.seed)
            model.train()
            Trainer._set_modes(model, phase)

    trainer = Trainer(cfg, run_dir, fabric, on_epoch_end=on_epoch_end)
    if init_from:
        trainer.progress["completed"] = list(src["progress"].get("completed", []))
    trainer.fit(model, loader, resume_from=resume_from)

    summary = {}
    if fabric.global_rank == 0:
        from ..eval.summary import final_figures, summarize

        summary = summarize(model, ds, trainer.progress)
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        final_figures(model, ds, run_dir, cfg.seed)
        from ..eval.report import write_report

        write_report(run_dir)
    return RunResult(model, ds, run_dir, summary)
