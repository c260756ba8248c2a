"""The run log: one JSON object per row (the run directory's ``metrics.jsonl``), optionally
TensorBoard too. On resume, rows past the checkpoint's step are dropped so the file tells one
consistent history."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional


class MetricsWriter:
    def __init__(self, path: Path, resume_step: Optional[int] = None, tensorboard_dir: Optional[Path] = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            kept = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and json.loads(ln).get("step", 0) <= resume_step]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        elif self.path.exists():
            self.path.unlink()
        self._f = open(self.path, "a")
        self._tb = None
        if tensorboard_dir is not None:
            try:
                from lightning_fabric.loggers import TensorBoardLogger
            except ImportError as e:  # pragma: no cover
                raise RuntimeError("train.tensorboard needs: pip install 'ssavae[tensorboard]'") from e
            self._tb = TensorBoardLogger(str(Path(tensorboard_dir).parent), name=Path(tensorboard_dir).name, version="")

    def write(self, row: dict) -> None:
        self._f.write(json.dumps(row) + "\n")
        self._f.flush()
        if self._tb is not None:
            scalars = {k: v for k, v in row.items() if isinstance(v, (int, float)) and k != "step"}
            self._tb.log_metrics(scalars, step=row["step"])

    def close(self) -> None:
        self._f.close()
        if self._tb is not None:
            self._tb.finalize("success")


def read_metrics(path) -> list[dict]:
    """The rows of a run's metrics log (``path``: the run directory or the file); none if absent."""
    from .rundir import RunDir

    path = RunDir(path).metrics if Path(path).is_dir() else Path(path)
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
