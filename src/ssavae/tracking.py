"""Experiment trackers (``train.loggers``): a run's config, training metrics, final numbers and
figures also go to the trackers a team uses, each through its own client library::

    jsonl        RUN_DIR/metrics.jsonl (always written: the report, resume and read_metrics use it)
    tensorboard  RUN_DIR/tensorboard/, Lightning Fabric's TensorBoardLogger (pip install 'ssavae[tensorboard]')
    mlflow       an MLflow run (pip install 'ssavae[mlflow]'); train.tracking_uri, by default
                 MLFLOW_TRACKING_URI or the file store ./mlruns
    wandb        a Weights & Biases run (pip install 'ssavae[wandb]'), offline unless you are logged in

Each gets the resolved config as parameters, every logged training row by step, the per-epoch
grids as they are drawn, the run's summary numbers, its final figures and report.html, in one run
of its own (a resumed run continues the same one: ``RunDir.trackers`` keeps the ids). A tracker
that is asked for but not installed is refused before training; one that fails later (a server
down, a full disk) warns once and is dropped: the run goes on, and its own files lose nothing. An
MLflow server that does not answer costs, once, the client's own retries before that warning
(MLFLOW_HTTP_REQUEST_MAX_RETRIES and MLFLOW_HTTP_REQUEST_TIMEOUT set how long). ``ssavae
evaluate`` sends its numbers to the same runs later (``send_evaluation``: ``eval/KEY``).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

from .config import flat_dict
from .engine.callbacks import Callback
from .errors import ConfigError
from .rundir import RunDir

log = logging.getLogger(__name__)

EXTRAS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}  # logger -> module it needs


def numbers(row: dict) -> dict[str, float]:
    return {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and k != "step"}


class TensorBoard:
    def __init__(self, rd: RunDir, config: dict, name: str, state: dict):
        from lightning_fabric.loggers import TensorBoardLogger

        self.tb = TensorBoardLogger(str(rd.tensorboard.parent), name=rd.tensorboard.name, version="")
        self.tb.log_hyperparams(flat_dict(config))
        self.state: dict = {}

    def metrics(self, values: dict, step: int) -> None:
        self.tb.log_metrics(values, step=step)

    def images(self, paths: list[Path], step: int) -> None:
        import numpy as np
        from PIL import Image

        for p in paths:
            self.tb.experiment.add_image(p.stem, np.asarray(Image.open(p).convert("RGB")), step, dataformats="HWC")

    def artifact(self, path: Path) -> None:
        self.tb.experiment.add_text(path.name, f"`{path}`")

    def finish(self, ok: bool) -> None:
        self.tb.finalize("success" if ok else "failed")


class MLflow:
    def __init__(self, rd: RunDir, config: dict, name: str, state: dict):
        from mlflow import MlflowClient
        from mlflow.entities import Param

        uri = config["train"].get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI") or \
            Path("mlruns").resolve().as_uri()
        if uri.startswith("file:") or "://" not in uri:  # MLflow 3 keeps the file store behind a switch
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(uri)
        self.state = dict(state)
        if "run_id" not in self.state:
            exp = config["train"].get("experiment") or name
            found = self.client.get_experiment_by_name(exp)
            exp_id = found.experiment_id if found else self.client.create_experiment(exp)
            self.state["run_id"] = self.client.create_run(exp_id, run_name=rd.root.name).info.run_id
            params = [Param(k, str(v)[:500]) for k, v in flat_dict(config).items()]
            for i in range(0, len(params), 100):  # MLflow takes at most 100 per batch
                self.client.log_batch(self.state["run_id"], params=params[i:i + 100])
        self.run_id = self.state["run_id"]

    def metrics(self, values: dict, step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def images(self, paths: list[Path], step: int) -> None:
        for p in paths:
            self.client.log_artifact(self.run_id, str(p), p.parent.name)  # as in the run: figures/NAME.png

    def artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def finish(self, ok: bool) -> None:
        self.client.set_terminated(self.run_id, "FINISHED" if ok else "FAILED")


class WandB:
    def __init__(self, rd: RunDir, config: dict, name: str, state: dict):
        import wandb

        self.wandb = wandb
        logged_in = bool(os.environ.get("WANDB_API_KEY") or getattr(getattr(wandb, "api", None), "api_key", None))
        mode = os.environ.get("WANDB_MODE") or ("online" if logged_in else "offline")
        self.run = wandb.init(project=config["train"].get("experiment") or name, name=rd.root.name,
                              dir=str(rd.root), config=config, mode=mode, id=state.get("id"), resume="allow")
        self.state = {"id": self.run.id}

    def metrics(self, values: dict, step: int) -> None:
        self.run.log(values, step=step)

    def images(self, paths: list[Path], step: int) -> None:
        self.run.log({p.stem: self.wandb.Image(str(p)) for p in paths}, step=step)

    def artifact(self, path: Path) -> None:
        self.run.save(str(path), base_path=str(path.parent), policy="now")

    def finish(self, ok: bool) -> None:
        self.run.finish(exit_code=0 if ok else 1)


KINDS = {"tensorboard": TensorBoard, "mlflow": MLflow, "wandb": WandB}


def check_installed(loggers: list[str]) -> None:
    """Refuse, before anything trains, a tracker whose client library is missing."""
    import importlib.util

    for name in loggers:
        if name in EXTRAS and importlib.util.find_spec(EXTRAS[name]) is None:
            raise ConfigError(f"train.loggers {name} needs its client library: pip install 'ssavae[{name}]' "
                              f"(or drop {name} from train.loggers)")


class Trackers(Callback):
    """The run's trackers as one callback (process 0 only): started with the fit, fed every
    logged row and the epoch grids; ``close`` (from ``runs.train``, after the summary, figures and
    report exist) sends those and ends each run. Every call is guarded: a failure warns once and
    drops that tracker."""

    def __init__(self, rd: RunDir, config: dict, loggers: list[str]):
        self.rd, self.config, self.wanted = rd, config, [n for n in loggers if n in KINDS]
        self.active: dict[str, object] = {}
        self._sent: set[Path] = set()
        self.step = 0

    def _guard(self, name: str, what: str, fn, *args) -> None:
        if name not in self.active:
            return
        try:
            fn(*args)
        except Exception as e:  # whatever the client raises: the run must not die of it
            log.warning("train.loggers %s: %s failed (%s: %s); the run goes on without %s", name, what,
                        type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "", name)
            self.active.pop(name, None)

    def on_fit_start(self, trainer, resumed) -> None:
        if trainer.is_main and not self.active:  # (again after a rollback: the trackers are running)
            self.start()

    def start(self) -> None:
        """Start (or, with the ids in RunDir.trackers, continue) the run in every tracker."""
        saved = self.rd.read_json(self.rd.trackers) or {}
        self._sent = set(self.rd.epoch_figures()) if saved else set()  # a resumed run sent those already
        name = self.config["train"].get("experiment") or f"ssavae-{self.config['model']['name']}"
        for kind in self.wanted:
            try:
                self.active[kind] = KINDS[kind](self.rd, self.config, name, saved.get(kind, {}))
            except Exception as e:
                log.warning("train.loggers %s: could not start (%s: %s); the run goes on without %s", kind,
                            type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "", kind)
        if self.wanted:
            self.rd.write_json(self.rd.trackers, {k: t.state for k, t in self.active.items()})

    def on_log(self, trainer, row) -> None:
        self.step = row["step"]
        for name, t in list(self.active.items()):
            self._guard(name, "logging metrics", t.metrics, numbers(row), row["step"])

    def on_epoch_end(self, trainer, phase, epoch) -> None:
        self._send_figures(self.rd.epoch_figures(), trainer.progress["global_step"])

    def _send_figures(self, paths: list[Path], step: int) -> None:
        new = [p for p in paths if p not in self._sent]
        self._sent |= set(new)
        for name, t in list(self.active.items()):
            if new:
                self._guard(name, "sending figures", t.images, new, step)

    def close(self, summary: Optional[dict], ok: bool, prefix: str = "summary", files: bool = True) -> None:
        """The run's end: its summary numbers (as ``prefix/KEY``), final figures and report, then
        each run ends."""
        if summary:
            for name, t in list(self.active.items()):
                self._guard(name, f"logging the {prefix}", t.metrics,
                            {f"{prefix}/{k}": v for k, v in numbers(summary).items()}, self.step)
        if files:
            self._send_figures(self.rd.final_figures(), self.step)
        for name, t in list(self.active.items()):
            if files and self.rd.report.exists():
                self._guard(name, "sending the report", t.artifact, self.rd.report)
            self._guard(name, "finishing", t.finish, ok)
        self.active.clear()


def send_evaluation(rd: RunDir, config: dict, result: dict) -> None:
    """``ssavae evaluate``'s numbers (flattened) to the trackers the run trained with, in the same
    runs (RunDir.trackers), as ``eval/KEY`` at the run's last logged step."""
    from .runlog import read_metrics

    trackers = Trackers(rd, config, config["train"].get("loggers", []))
    if not trackers.wanted:
        return
    trackers.start()
    rows = read_metrics(rd.metrics)
    trackers.step = rows[-1]["step"] if rows else 0
    trackers.close(result, ok=True, prefix="eval", files=False)
