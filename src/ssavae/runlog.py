"""The run log: one JSON object per row (the run directory's ``metrics.jsonl``; the other
trackers are tracking.py). On resume, rows past the checkpoint's step are dropped so the file
tells one consistent history."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional


class MetricsWriter:
    def __init__(self, path: Path, resume_step: Optional[int] = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            kept = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and json.loads(ln).get("step", 0) <= resume_step]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        elif self.path.exists():
            self.path.unlink()
        self._f = open(self.path, "a")

    def write(self, row: dict) -> None:
        self._f.write(json.dumps(row) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read_metrics(path) -> list[dict]:
    """The rows of a run's metrics log (``path``: the run directory or the file); none if absent."""
    from .rundir import RunDir

    path = RunDir(path).metrics if Path(path).is_dir() else Path(path)
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
