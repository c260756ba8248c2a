"""The ``ssavae`` command line: a thin layer over the library.

Every config field can be set from the command line with a dotted override, e.g.
``--model.latent_dim 2 --train.epochs 10 --data.labels_per_class 100``. User errors print one
line and exit with status 2.
"""
from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
import traceback
import types
import typing
from pathlib import Path
from typing import Optional

from . import __version__
from .config import apply_override, build_run_config, load_file, merge, parse_value, upgrade
from .rundir import RunDir
from .errors import SsavaeError

log = logging.getLogger("ssavae")

EXAMPLES = {
    "train": "ssavae train --model vae --data fashion-mnist --out runs/vae --model.latent_dim 2 "
             "--train.epochs 10",
    "sample": "ssavae sample runs/vae --n 64 --out samples.png",
    "complete": "ssavae complete runs/completion --count 8 --draws 6 --out completions.png",
    "list-models": "ssavae list-models",
    "list-datasets": "ssavae list-datasets",
    "download": "ssavae download mnist --dest ~/data/mnist",
    "locate": "ssavae locate fashion-mnist",
    "demo": "ssavae demo --out runs/demo",
    "report": "ssavae report runs/vae",
    "evaluate": "ssavae evaluate runs/vae --iw-samples 1000",
    "compare": "ssavae compare --models vae,ssavae --data fashion-mnist --budget epochs=5 --out runs/cmp",
    "sweep": "ssavae sweep --data fashion-mnist --out runs/sweep --model.latent_dim 100",
    "run": "ssavae run experiments/few-labels.yaml --out runs/few-labels",
    "export": "ssavae export runs/vae --out shared/vae   # then ssavae.from_pretrained('shared/vae')",
}


class UserError(SsavaeError):
    """A command-line mistake; printed as one line, exit status 2."""


def _user_errors() -> tuple[type, ...]:
    return (SsavaeError, FileNotFoundError)


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        datefmt="[%X]", handlers=[RichHandler(show_path=False)], force=True)
    for noisy in ("lightning_fabric", "lightning", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def parse_overrides(extra: list[str]) -> list[tuple[str, object]]:
    """``--a.b VALUE`` / ``--a.b=VALUE`` pairs; anything else is an error naming it."""
    pairs, i = [], 0
    while i < len(extra):
        tok = extra[i]
        if not tok.startswith("--") or "." not in tok:
            raise UserError(f"unrecognized argument {tok!r}; config fields are set as "
                            "--section.field VALUE (e.g. --train.epochs 5)")
        key, eq, val = tok[2:].partition("=")
        if not eq:
            if i + 1 >= len(extra):
                raise UserError(f"{tok} needs a value")
            val = extra[i + 1]
            i += 1
        pairs.append((key, parse_value(val)))
        i += 1
    return pairs


def _add_run_args(p: argparse.ArgumentParser, model_default: Optional[str] = None,
                  with_model: bool = True) -> None:
    if with_model:
        p.add_argument("--model", default=model_default, help="model family (ssavae list-models)")
    else:
        p.set_defaults(model=None)
    p.add_argument("--data", default=None,
                   help="dataset name, or npz:PATH, csv:PATH, folder:PATH (ssavae list-datasets)")
    p.add_argument("--data-dir", default=None, help="folder with the dataset's files")
    p.add_argument("--config", default=None, help="YAML or JSON config file")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", default=None, help="run directory (default: runs/MODEL-DATA-TIME)")


def _type_name(tp) -> str:
    """A field's type as --help shows it: INT, FLOAT, {a,b}, [INT,...], INT|null."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return "{" + ",".join(str(a) for a in args) + "}"
    if origin in (typing.Union, types.UnionType):
        return "|".join(_type_name(a) for a in args if a is not type(None)) + ("|null" if type(None) in args else "")
    if origin in (tuple, list):
        more = ",..." if Ellipsis in args or origin is list else ""
        return "[" + (",".join(_type_name(a) for a in args if a is not Ellipsis) or "ANY") + more + "]"
    if origin is dict or tp is dict:
        return "{KEY: VALUE}"
    return getattr(tp, "__name__", str(tp)).upper()


def add_field_help(sp: argparse.ArgumentParser, family: Optional[str]) -> None:
    """Every config field a command takes, in its --help: the model fields of ``family`` (if
    known), then the data and train fields, each with its type, default, limits and help."""
    import dataclasses

    import yaml

    from .config import DataConfig, TrainConfig
    from .fields import meta_of, limits_text
    from .models import get_model_class

    sp.usage = "%(prog)s [options] [--model.FIELD VALUE ...] [--data.FIELD VALUE ...] [--train.FIELD VALUE ...]"
    sections = [("data", DataConfig), ("train", TrainConfig)]
    if family:
        sections.insert(0, ("model", get_model_class(family).Config))
    else:
        sp.add_argument_group("model fields", "pass --model NAME with --help to list that family's fields")
    for section, cls in sections:
        title = f"{section} fields" + (f" ({family})" if section == "model" else "")
        group = sp.add_argument_group(title, f"set with --{section}.FIELD VALUE (YAML: 2, 0.1, true, null, [1,2])")
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            shown = yaml.safe_dump(list(default) if isinstance(default, tuple) else default,
                                   default_flow_style=True).strip().removesuffix("...").strip()
            meta = meta_of(cls, f.name)
            limits = limits_text(meta)
            text = f"{meta.get('help', '')} (default: {shown}" + (f"; {limits}" if limits else "") + ")"
            group.add_argument(f"--{section}.{f.name}", metavar=_type_name(hints[f.name]), default=argparse.SUPPRESS,
                               help=text.replace("%", "%%"))


def _field_help_wanted(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """``COMMAND --help`` of a command that takes config fields: add them to its help first."""
    if not ({"-h", "--help"} & set(argv)):
        return
    command = next((a for a in argv if not a.startswith("-")), None)
    sp = parser.commands.get(command)
    if sp is None or not sp.get_default("takes_overrides"):
        return
    family = sp.get_default("model")
    for i, a in enumerate(argv):
        if a == "--model" and i + 1 < len(argv):
            family = argv[i + 1]
        elif a.startswith("--model="):
            family = a.partition("=")[2]
    from .models import list_models

    add_field_help(sp, family if family in list_models() else None)


def _raw_config(args, overrides, base: Optional[dict] = None) -> dict:
    raw = dict(base or {})
    if args.config:
        raw = merge(raw, load_file(args.config))
    if args.model:
        model = raw.get("model")
        if isinstance(model, dict):
            if model.get("name") not in (None, args.model):
                model = {}  # another family's fields do not carry over
            raw["model"] = {**model, "name": args.model}
        else:
            raw["model"] = {"name": args.model}
    if args.data:
        raw.setdefault("data", {})["name"] = args.data
    if args.data_dir:
        raw.setdefault("data", {})["data_dir"] = args.data_dir
    if args.seed is not None:
        raw["seed"] = args.seed
    for key, value in overrides:
        apply_override(raw, key, value)
    return raw


def _default_out(cfg) -> Path:
    name = cfg.data.name.replace(":", "_").replace("/", "_")
    return Path("runs") / f"{cfg.family}-{name}-{time.strftime('%Y%m%d-%H%M%S')}"


# ---------------------------------------------------------------------------- commands


def cmd_train(args, overrides) -> int:
    from .runs import train

    base = None
    if args.resume:  # the saved config, with what the command line gives (runs.train checks it)
        if not args.out:
            raise UserError("--resume needs --out RUN_DIR (the run to continue)")
        rd = RunDir(args.out)
        if not rd.is_run():
            raise UserError(f"--resume: {rd.config} does not exist; is {args.out} a run directory?")
        base = upgrade(load_file(rd.config))
    cfg = build_run_config(_raw_config(args, overrides, base))
    if args.print_config:  # YAML that --config takes back unchanged
        import yaml

        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    out = Path(args.out) if args.out else _default_out(cfg)
    result = train(cfg, out, resume=args.resume, init_from=args.init_from, command=shlex.join(["ssavae", *args.argv]))
    _print_result(result)
    return 0


def _print_result(result) -> None:
    from rich.console import Console
    from rich.table import Table

    if not result.summary:
        return
    table = Table(title=f"{result.summary['model']} on {result.summary['dataset']} (test set)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in result.summary.items():
        if k == "classification.accuracy" and "classification.n_labeled" in result.summary:
            lo, hi = result.summary.get("classification.accuracy_ci95", [float("nan")] * 2)
            table.add_row(k, f"{v:.4f} on {result.summary['classification.n_labeled']} labeled "
                             f"(95 % CI {lo:.3f}-{hi:.3f})")
        elif isinstance(v, float):
            table.add_row(k, str(v) if isinstance(v, int) else f"{v:.4f}")
    console = Console()
    console.print(table)
    rd = RunDir(result.run_dir)
    console.print(f"run directory: [bold]{rd.root}[/bold]")
    console.print(f"  report: {rd.report}")
    for f in sorted(rd.final_figures(), key=lambda f: "final" not in f.name):
        console.print(f"  figure: {f}")


def cmd_complete(args, overrides) -> int:
    from .eval.figures import save_grid
    from .eval.run_figures import completion_rows
    from .runs import load_model, prepare_data

    model, cfg = load_model(args.run_dir, raw_inputs=False)
    if not model.completes:
        raise UserError(f"{model.name} does not complete images; train --model cvae_completion")
    ds, _ = prepare_data(cfg)
    if not 0 <= args.start < len(ds.y_test) or args.count < 1 or args.draws < 1:
        raise UserError(f"--start must be in 0..{len(ds.y_test) - 1}, --count and --draws >= 1")
    rows = completion_rows(model, ds, args.count, args.draws, args.seed, args.start)
    out = Path(args.out or RunDir(args.run_dir).figure("completions_cli"))
    save_grid(out, rows, nrow=args.draws + 2)
    print(out)
    return 0


def cmd_sample(args, overrides) -> int:
    import torch

    from .runs import load_model
    from .eval.figures import save_grid

    model, cfg = load_model(args.run_dir)
    y = None
    if args.label is not None:
        if not (model.conditional or model.class_sampling):
            raise UserError(f"{model.name} cannot sample a chosen class: --label does not apply")
        if not 0 <= args.label < model.num_classes:
            raise UserError(f"--label must be in 0..{model.num_classes - 1}")
        y = torch.full((args.n,), args.label, dtype=torch.long)
    if y is None and model.conditional:  # one of each class in turn
        from .eval.infer import labels_for

        y = labels_for(model, args.n)
    g = torch.Generator().manual_seed(args.seed)
    x = model.sample(args.n, y=y, generator=g)
    out = Path(args.out or RunDir(args.run_dir).figure("samples_cli"))
    if model.info.is_image:
        save_grid(out, x, nrow=max(1, int(args.n ** 0.5)))
    else:
        import numpy as np

        out = out.with_suffix(".npy")
        np.save(out, x.cpu().numpy())
    print(out)
    return 0


def cmd_list_models(args, overrides) -> int:
    from .models import get_model_class, list_models

    width = max(map(len, list_models()))
    for name in list_models():
        cls = get_model_class(name)
        doc = cls.__doc__ or sys.modules[cls.__module__].__doc__ or ""
        print(f"{name:{width}s}  {doc.strip().splitlines()[0] if doc.strip() else ''}")
    return 0


def cmd_list_datasets(args, overrides) -> int:
    from .data import list_datasets

    for name, desc in list_datasets():
        print(f"{name:14s} {desc}")
    print(f"{'npz:PATH':14s} your arrays: x_train [, y_train, x_test, y_test] (y = -1 unlabeled)")
    print(f"{'csv:PATH':14s} your table: numeric columns, optional 'label' column")
    print(f"{'folder:PATH':14s} your images: PATH/<class>/<image files>")
    return 0


def cmd_download(args, overrides) -> int:
    from .data.download import download

    print(download(args.name, args.dest, force=args.force))
    return 0


def cmd_locate(args, overrides) -> int:
    from .data.datasets import locate

    print(locate(args.name, args.data_dir))
    return 0


def cmd_demo(args, overrides) -> int:
    from rich.console import Console

    from .demo import run_demo

    out = run_demo(args.out, args.data, args.data_dir, overrides)
    console = Console()
    console.print((out / "compare.md").read_text())
    for family in ("ssavae", "vae"):
        rd = RunDir(out / family)
        console.print(f"{family}: report [bold]{rd.report}[/bold]")
        for f in rd.final_figures():
            console.print(f"  figure: {f}")
    console.print(f"both: {out / 'compare.html'}, samples side by side: {out / 'samples.png'}")
    return 0


def cmd_evaluate(args, overrides) -> int:
    from rich.console import Console
    from rich.table import Table

    from .eval.registry import flatten
    from .eval.report import write_report
    from .runs import evaluate_run

    rd = _run_dir(args.run_dir)
    result = evaluate_run(args.run_dir, n=args.n, iw_samples=args.iw_samples, device=args.device)
    write_report(args.run_dir)
    table = Table(title=f"{result['model']} on {result['dataset']} ({result['n_test']} test images)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in flatten(result).items():
        table.add_row(k, str(v) if isinstance(v, int) else f"{v:.4f}")
    Console().print(table)
    print(rd.evaluation)
    return 0


def _run_dir(path: str) -> RunDir:
    rd = RunDir(path)
    if not (rd.is_run() or rd.is_exported()):
        raise UserError(f"{path} is not a run directory (no {rd.config.name}) or an exported model (ssavae export)")
    return rd


def cmd_report(args, overrides) -> int:
    from .eval.report import write_report

    print(write_report(_run_dir(args.run_dir)))
    return 0


def cmd_export(args, overrides) -> int:
    from .pretrained import push_to_hub
    from .runs import export_run

    out = export_run(args.run_dir, args.out, args.checkpoint)
    print(out)
    if args.push_to:
        print(push_to_hub(out, args.push_to))
    return 0


def cmd_compare(args, overrides) -> int:
    from .compare import run_compare

    families = [f.strip() for f in args.models.split(",") if f.strip()]
    from .models import list_models

    unknown = sorted(set(families) - set(list_models()))
    if unknown:
        raise UserError(f"unknown model(s) {', '.join(unknown)}; see `ssavae list-models`")
    raw = _raw_config(args, overrides)
    out = run_compare(families, raw, args.out or "runs/compare", args.budget, n_eval=args.n,
                      iw_samples=args.iw_samples)
    print((out / "compare.md").read_text())
    print(out / "compare.html")
    return 0


def cmd_run(args, overrides) -> int:
    from .experiment import load_experiment, run_experiment

    out = Path(args.out or Path("runs") / load_experiment(args.experiment).name)
    run_experiment(args.experiment, out)
    print((out / "results.md").read_text(), end="")
    print(out / "results.md")
    return 0


def cmd_sweep(args, overrides) -> int:
    from .sweep import run_sweep

    raw = _raw_config(args, overrides)
    betas = [float(v) for v in args.betas.split(",")]
    gammas = [float(v) for v in args.gammas.split(",")]
    out = run_sweep(raw, args.out, betas, gammas)
    print(out)
    return 0


# ---------------------------------------------------------------------------- entry


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ssavae", allow_abbrev=False,
        description="Semi-supervised adversarial VAEs (Zemouri 2020) and the families they are "
                    "compared with. Any config field can be set with --section.field VALUE.",
        epilog="examples:\n  " + "\n  ".join(EXAMPLES.values()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"ssavae {__version__}")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)
    p.commands = {}  # name -> its parser (for the config fields in --help)

    def add(name, help_):
        sp = sub.add_parser(name, help=help_, allow_abbrev=False, epilog=f"example:\n  {EXAMPLES[name]}",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        # also after the command (SUPPRESS: absent here, the global flag's value stands)
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error")
        sp.set_defaults(takes_overrides=name in ("train", "compare", "sweep", "demo"))
        p.commands[name] = sp
        return sp

    t = add("train", "train a model; writes a run directory")
    _add_run_args(t)
    t.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    t.add_argument("--init-from", default=None,
                   help="start from another run's weights, skipping the phases it completed")
    t.add_argument("--print-config", action="store_true",
                   help="print the resolved config (file, flags and defaults) as YAML that --config takes, and exit")
    t.set_defaults(func=cmd_train)

    s = add("sample", "draw samples from a trained run")
    s.add_argument("run_dir")
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--label", type=int, default=None, help="class to sample (conditional models)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default=None, help=f"PNG file (default {RunDir('RUN_DIR').figure('samples_cli')})")
    s.set_defaults(func=cmd_sample)

    c = add("complete", "draw completions of test images' unobserved part (cvae_completion)")
    c.add_argument("run_dir")
    c.add_argument("--count", type=int, default=8, help="test images, one row each")
    c.add_argument("--draws", type=int, default=6, help="completions per image")
    c.add_argument("--start", type=int, default=0, help="index of the first test image")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", default=None, help=f"PNG file (default {RunDir('RUN_DIR').figure('completions_cli')})")
    c.set_defaults(func=cmd_complete)

    add("list-models", "list the registered model families").set_defaults(func=cmd_list_models)
    add("list-datasets", "list the known datasets").set_defaults(func=cmd_list_datasets)

    d = add("download", "download a dataset's official files (checksums verified)")
    d.add_argument("name")
    d.add_argument("--dest", default=None, help="folder (default ~/.cache/ssavae/NAME)")
    d.add_argument("--force", action="store_true")
    d.set_defaults(func=cmd_download)

    lo = add("locate", "print the folder a dataset is read from (exit 2 if it is nowhere)")
    lo.add_argument("name")
    lo.add_argument("--data-dir", default=None)
    lo.set_defaults(func=cmd_locate)

    m = add("demo", "the main job: SSAVAE on Fashion-MNIST beside a VAE on the same budget, ~7 min on 2 cores")
    m.add_argument("--out", default="runs/demo")
    m.add_argument("--data", default="fashion-mnist")
    m.add_argument("--data-dir", default=None)
    m.set_defaults(func=cmd_demo)

    e = add("evaluate", f"every metric that applies to the run's family -> {RunDir('RUN_DIR').evaluation}")
    e.add_argument("run_dir")
    e.add_argument("--n", type=int, default=5000, help="test images to use")
    e.add_argument("--iw-samples", type=int, default=1000, help="importance samples for the NLL")
    e.add_argument("--device", default=None, help="cpu or cuda (default cpu)")
    e.set_defaults(func=cmd_evaluate)

    ex = add("export", "a run's model as a directory to share: safetensors weights, config.json, model card")
    ex.add_argument("run_dir")
    ex.add_argument("--out", required=True, help="a new directory")
    ex.add_argument("--checkpoint", default=None, help="a checkpoint of the run by file name (default last.pt)")
    ex.add_argument("--push-to", default=None, metavar="REPO_ID",
                    help="also upload it to this Hugging Face Hub repo (pip install 'ssavae[hub]'; logged in)")
    ex.set_defaults(func=cmd_export)

    r = add("report", "rebuild a run's self-contained report.html")
    r.add_argument("run_dir")
    r.set_defaults(func=cmd_report)

    c = add("compare", "train several families alike, evaluate them, one table and one figure")
    _add_run_args(c, with_model=False)
    c.add_argument("--models", required=True, help="comma-separated families, e.g. vae,ssavae")
    c.add_argument("--budget", default="epochs=5", help="epochs=N (per phase) or minutes=M (per run)")
    c.add_argument("--n", type=int, default=5000, help="test images for the evaluation")
    c.add_argument("--iw-samples", type=int, default=1000)
    c.set_defaults(func=cmd_compare)

    x = add("run", "run an experiment file (base config x grid x seeds): its runs, then its table")
    x.add_argument("experiment", help="YAML file (experiments/*.yaml)")
    x.add_argument("--out", default=None, help="folder of its runs and table (default runs/NAME)")
    x.set_defaults(func=cmd_run)

    w = add("sweep", "SSAVAE beta/gamma sweep: one VEC, one decoder per cell, Figure 9 + table")
    _add_run_args(w, model_default="ssavae")
    w.add_argument("--betas", default="0,0.001,0.003,0.005,0.01,0.1")
    w.add_argument("--gammas", default="0,0.1")
    w.set_defaults(func=cmd_sweep)
    return p


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    _field_help_wanted(parser, sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    _setup_logging(args.verbose)
    try:
        overrides = parse_overrides(extra)
        if overrides and not args.takes_overrides:
            raise UserError(f"{args.command} takes no config overrides (got --{overrides[0][0]}): it reads the "
                            "run's own config; only train, compare, sweep and demo take --section.field VALUE")
        return args.func(args, overrides)
    except _user_errors() as e:
        if args.debug:
            traceback.print_exc()
        msg = e.args[0] if e.args else str(e)
        print(f"ssavae {args.command}: error: {' '.join(str(msg).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ssavae: interrupted; the last checkpoint can be continued with --resume",
              file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())
