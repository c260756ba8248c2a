"""``ssavae demo``: the main job. SSAVAE with its defaults on Fashion-MNIST, sized to finish
within about 10 minutes on a 2-core CPU, ending with the run directory, figures and report."""
from __future__ import annotations

from .config import apply_override, build_run_config
from .runs import RunResult, train

# Defaults of the model; only the schedule is shortened so the demo fits its time budget.
DEMO = {
    "model": {"name": "ssavae", "vec_epochs": 4, "decoder_epochs": 2},
    "data": {"name": "fashion-mnist"},
    "train": {"batch_size": 128, "log_every": 50, "checkpoint_every": 200},
}


def run_demo(out: str, data: str = "fashion-mnist", data_dir: str | None = None,
             overrides: list | None = None) -> RunResult:
    raw = {k: dict(v) for k, v in DEMO.items()}
    raw["data"]["name"] = data
    if data_dir:
        raw["data"]["data_dir"] = data_dir
    for key, value in overrides or []:
        apply_override(raw, key, value)
    from pathlib import Path

    out_dir = Path(out)
    resume = (out_dir / "checkpoints" / "last.pt").exists() and not (out_dir / "summary.json").exists()
    if (out_dir / "summary.json").exists():
        import time

        out_dir = out_dir.with_name(out_dir.name + time.strftime("-%Y%m%d-%H%M%S"))
    return train(build_run_config(raw), out_dir, resume=resume)
