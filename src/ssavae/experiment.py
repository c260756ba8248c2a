"""``ssavae run EXPERIMENT.yaml``: a table of the docs as a file. An experiment is a base config,
variants (named sets of fields, e.g. two families with their own settings), a grid of fields,
seeds and the numbers to report; running it trains (or resumes, or skips when finished) one run
directory per cell and seed and writes the table the docs show::

    name: few-labels
    description: the VEC beside the supervised-only classifier on the same labels
    base:                                  # a run config, as --config takes it
      data: {name: fashion-mnist, split_seed: 0}
      train: {epochs: 10}
    variants:                              # each merged into base (optional)
      classifier: {model: {name: classifier}}
      vec: {model: {name: ssavae, decoder_epochs: 0}}
    grid:                                  # every combination of these fields' values (optional)
      data.labels_per_class: [100, 10]
    seeds: [0, 1, 2]                       # each cell once per seed (the run's ``seed``)
    metrics: [classification.accuracy]     # numbers of summary.json (or of ``ssavae evaluate``)
    evaluate: 0                            # > 0: ``ssavae evaluate --n N`` after each run (optional)
    init_from: {}                          # variant: an earlier variant whose run (same cell and
                                           # seed) it starts from, as ``--init-from`` (optional)

Layout: ``OUT/<cell>/seed<k>/`` (run directories), ``OUT/results.json`` (every number of every
run), ``OUT/results.md`` (the table, mean +- std over the seeds). Running it again trains and
evaluates only what is missing.
"""
from __future__ import annotations

import itertools
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from . import config as config_mod
from .errors import ConfigError
from .fileio import atomic_path
from .rundir import RunDir
from .eval.registry import flatten, is_percent
from .runs import evaluate_run, train_or_resume


@dataclass
class Experiment:
    name: str
    base: dict
    variants: dict[str, dict] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    metrics: list[str] = field(default_factory=lambda: ["classification.accuracy"])
    description: str = ""
    evaluate: int = 0  # > 0: every run is also evaluated on that many test images (eval/metrics.json)
    init_from: dict[str, str] = field(default_factory=dict)  # variant -> an earlier variant it starts from

    def cells(self) -> list[dict]:
        """Each cell as {"variant": name (if any), dotted field: value, ...}, variants outermost."""
        keys = list(self.grid)
        grid = [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))]
        return [{**({"variant": v} if v is not None else {}), **g} for v in (list(self.variants) or [None])
                for g in grid]

    def config(self, cell: dict, seed: int) -> dict:
        raw = json.loads(json.dumps(self.base))  # a deep copy
        if "variant" in cell:
            raw = config_mod.merge(raw, self.variants[cell["variant"]])
        for key, value in cell.items():
            if key != "variant":
                config_mod.apply_override(raw, key, value)
        raw["seed"] = seed
        return raw


def load_experiment(path: str | Path) -> Experiment:
    data = config_mod.load_file(path)
    try:
        exp = config_mod.from_dict(Experiment, {"name": Path(path).stem, **data}, f"experiment {path}")
    except TypeError as e:
        raise ConfigError(f"experiment {path}: {e}") from None
    bad = [k for k, v in exp.grid.items() if not isinstance(v, list) or not v]
    if bad or not exp.seeds:
        raise ConfigError(f"experiment {path}: grid fields need a non-empty list of values ({', '.join(bad)}) "
                          "and seeds at least one seed")
    names = list(exp.variants)
    for v, src in exp.init_from.items():
        if v not in names or src not in names[:names.index(v)]:
            raise ConfigError(f"experiment {path}: init_from {v}: {src}: both must be variants, {src!r} "
                              f"listed before {v!r} (variants: {', '.join(names)})")
    for cell in exp.cells():  # every cell's config is checked before anything trains
        config_mod.build_run_config(exp.config(cell, exp.seeds[0]))
    return exp


def cell_name(cell: dict) -> str:
    return ",".join(f"{k.split('.')[-1]}={v}" for k, v in cell.items()) or "base"


def run_experiment(path: str | Path, out: str | Path) -> Path:
    """Train every cell and seed (resuming what is unfinished), then write the table."""
    exp, out = load_experiment(path), Path(out)
    rows = []
    for cell in exp.cells():
        for seed in exp.seeds:
            rd = RunDir(out / cell_name(cell) / f"seed{seed}")
            src = exp.init_from.get(cell.get("variant"))
            train_or_resume(config_mod.build_run_config(exp.config(cell, seed)), rd,
                            init_from=out / cell_name({**cell, "variant": src}) / f"seed{seed}" if src else None,
                            command=f"ssavae run {path} --out {out}  # cell {cell_name(cell)}, seed {seed}")
            if exp.evaluate and not rd.read_json(rd.evaluation):
                evaluate_run(rd, n=exp.evaluate)
            numbers = {**(rd.read_json(rd.summary) or {}), **flatten(rd.read_json(rd.evaluation) or {})}
            rows.append({"cell": cell, "seed": seed, **numbers})
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps({"experiment": exp.name, "rows": rows}, indent=2))
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(table(exp, rows))
    return out


def mean_std(values: list[float], percent: bool = False) -> str:
    """``84.12 +- 0.31 (3)``: the mean, the sample std, the count (times 100 with ``percent``)."""
    vals = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not vals:
        return "n/a"
    scale, digits = (100, 2) if percent else (1, 4)
    s = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{scale * statistics.fmean(vals):.{digits}f} +- {scale * s:.{digits}f} ({len(vals)})"


def table(exp: Experiment, rows: list[dict]) -> str:
    """Markdown: one row per cell, one column per metric (mean +- std over the seeds)."""
    head = [*(["variant"] if exp.variants else []), *exp.grid, *exp.metrics]
    lines = [f"{exp.description or exp.name}: seeds {', '.join(map(str, exp.seeds))}; "
             "accuracies in percent, mean +- sample std (runs).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cell in exp.cells():
        mine = [r for r in rows if r["cell"] == cell]
        lines.append("| " + " | ".join([str(v) for v in cell.values()] +
                                       [mean_std([r.get(m) for r in mine], is_percent(m)) for m in exp.metrics]) + " |")
    return "\n".join(lines) + "\n"
