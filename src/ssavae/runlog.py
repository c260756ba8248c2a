"""The run log: ``metrics.jsonl`` in the run directory (one JSON object per row), optionally
TensorBoard too. On resume, rows past the checkpoint's step are dropped so the file tells one
consistent history."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional


class MetricsWriter:
    def __init__(self, run_dir: Path, resume_step: Optional[int] = None, tensorboard: bool = False):
        self.path = Path(run_dir) / "metrics.jsonl"
        if resume_step is not None and self.path.exists():
            kept = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and json.loads(ln).get("step", 0) <= resume_step]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        elif self.path.exists():
            self.path.unlink()
        self._f = open(self.path, "a")
        self._tb = None
        if tensorboard:
            try:
                from lightning_fabric.loggers import TensorBoardLogger
            except ImportError as e:  # pragma: no cover
                raise RuntimeError("train.tensorboard needs: pip install 'ssavae[tensorboard]'") from e
            self._tb = TensorBoardLogger(str(run_dir), name="tensorboard", version="")

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


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
