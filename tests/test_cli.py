"""The command line, in-process (importing torch per process costs seconds)."""
import json
from pathlib import Path

import numpy as np
import pytest

from ssavae import cli
from ssavae.models import get_model_class, list_models

from conftest import family_settings, tiny_cli


@pytest.mark.parametrize("family", list_models())
def test_train_then_sample_and_report(tmp_path, family, capsys):
    """Every registered family end to end through the CLI (with its class's ``tiny`` settings)."""
    out = tmp_path / family
    args = ["train", *tiny_cli(family, **family_settings(family)), "--out", str(out)]
    assert cli.main(args) == 0
    generative = get_model_class(family).generative
    assert (out / "report.html").exists() and (out / "figures" / "latent_map.png").exists()
    assert (out / "figures" / "samples_final.png").exists() == generative
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == family
    assert "run directory" in capsys.readouterr().out
    code = cli.main(["sample", str(out), "--n", "9", "--out", str(tmp_path / "s.png")])
    assert code == (0 if generative else 2)  # the classifier baseline: "not generative", exit 2
    assert (tmp_path / "s.png").exists() == generative
    (out / "report.html").unlink()
    assert cli.main(["report", str(out)]) == 0 and (out / "report.html").exists()


@pytest.mark.parametrize("argv,needle", [
    (["train", "--model", "vae", "--data", "synthetic", "--train.epoch", "1"], "valid keys"),
    (["train", "--model", "ssavae", "--data", "synthetic", "--model.betta", "1"], "did you mean model.beta?"),
    (["train", "--model", "ssavae", "--data", "synthetic", "--model.gamma", "-1"], "model.gamma must be >= 0, got -1"),
    (["train", "--model", "ssavae", "--data", "synthetic", "--model.graph_alpha", "1"],
     "model.graph_alpha must be > 0 and < 1, got 1"),
    (["train", "--model", "nope", "--data", "synthetic"], "unknown model"),
    (["train", "--model", "vae", "--data", "mnist", "--data-dir", "/nonexistent"], "ssavae download mnist"),
    (["train", "--model", "vae", "--data", "synthetic", "--train.epochs", "x"], "expected an integer"),
    (["train", "--model", "vae", "--data", "synthetic", "--train.epochs", "-1"], "train.epochs must be >= 0"),
    (["train", "--model", "vae", "--data", "synthetic", "--train.lr", "0"], "train.lr must be > 0"),
    (["train", "--model", "vae", "--data", "synthetic", "--train.step_lr", "{vae:0.01}"], "'{vae: 0.01}'"),
    (["train", "--model", "vae", "--data", "synthetic", "--train.step_lr", "{vae: -1}"], "learning rate > 0"),
    (["train", "--model", "vae", "--data", "synthetic", "stray"], "unrecognized argument"),
    (["train", "--resume", "--model", "vae"], "--resume needs --out"),
    (["sample", "/nonexistent/run"], "no checkpoint"),
    (["evaluate", "/nonexistent/run", "--model.beta", "1"], "evaluate takes no config overrides (got --model.beta)"),
    (["report", "/nonexistent/run", "--train.epochs", "1"], "report takes no config overrides"),
    (["list-models", "--seed.x", "1"], "list-models takes no config overrides"),
    (["download", "imagenet"], "no download source"),
])
def test_user_errors_exit_2_with_one_line(argv, needle, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "Traceback" not in err


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "example:" in capsys.readouterr().out


def test_train_help_lists_every_field_with_its_type_default_and_help(capsys):
    """`ssavae train --model ssavae --help`: the family's model fields, then data and train, each
    with its type, its default and its help; without --model the data and train fields."""
    import dataclasses

    from ssavae.config import TrainConfig
    from ssavae.models import get_model_class

    with pytest.raises(SystemExit):
        cli.main(["train", "--model", "ssavae", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--model.beta FLOAT weight of the adversarial loss" in out and "(default: 0.005; >= 0)" in out
    assert "--model.gamma FLOAT weight of the latent loss" in out and "(default: 0.1; >= 0)" in out
    assert "--model.latent_dim INT the paper's K_z" in out and "(default: 100; >= 1)" in out  # limit inherited
    for f in dataclasses.fields(get_model_class("ssavae").Config):
        assert f"--model.{f.name} " in out
    for f in dataclasses.fields(TrainConfig):
        assert f"--train.{f.name} " in out
    assert "--data.labels_per_class INT|null" in out and "--train.precision {auto,32-true,bf16-mixed,16-mixed}" in out
    with pytest.raises(SystemExit):
        cli.main(["compare", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--train.epochs INT" in out and "--model.beta" not in out and "pass --model NAME" in out


def test_print_config_prints_yaml_that_config_takes_back_unchanged(tmp_path, capsys):
    assert cli.main(["train", "--model", "vae", "--print-config"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("model:\n  name: vae\n") and "train:" in first
    (tmp_path / "c.yaml").write_text(first)
    assert cli.main(["train", "--config", str(tmp_path / "c.yaml"), "--print-config"]) == 0
    assert capsys.readouterr().out == first
    assert cli.main(["train", "--config", str(tmp_path / "c.yaml"), "--model.latent_dim", "3", "--print-config"]) == 0
    assert "latent_dim: 3" in capsys.readouterr().out
    assert not list(tmp_path.glob("runs*")) and not (tmp_path / "runs").exists()


def test_list_commands(capsys):
    assert cli.main(["list-models"]) == 0
    out = capsys.readouterr().out
    assert "ssavae" in out and "vae" in out
    assert cli.main(["list-datasets"]) == 0
    out = capsys.readouterr().out
    assert "fashion-mnist" in out and "npz:PATH" in out


@pytest.mark.precision
def test_resume_from_cli_continues_and_refuses_model_changes(tmp_path, capsys):
    out = tmp_path / "r"
    base = ["train", *tiny_cli("vae"), "--out", str(out)]
    assert cli.main(base + ["--train.max_steps", "2"]) == 0
    capsys.readouterr()
    assert cli.main(["train", "--out", str(out), "--resume", "--model.latent_dim", "3"]) == 2
    err = capsys.readouterr().err
    assert "model.latent_dim (saved 20, given 3)" in err and "Traceback" not in err
    # the command that started the run, with --resume appended (the up arrow): accepted
    assert cli.main(base + ["--train.max_steps", "3", "--resume"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 3
    assert cli.main(base + ["--train.max_steps", "4", "--resume", "--seed", "5"]) == 2
    assert "seed (saved 0, given 5)" in capsys.readouterr().err
    assert cli.main(["train", "--out", str(out), "--resume", "--train.max_steps", "4"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 4


def test_demo_trains_ssavae_then_a_vae_on_its_budget_and_compares(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SSAVAE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--data", "synthetic", "--model.arch", "mlp",
            "--model.mlp_hidden", "[64]", "--model.hidden", "32", "--model.vec_epochs", "1",
            "--model.decoder_epochs", "1", "--data.limit_train", "128", "--data.limit_test", "64",
            "--train.progress", "false"]
    assert cli.main(args) == 0
    summary = json.loads((out / "ssavae" / "summary.json").read_text())
    assert summary["model"] == "ssavae" and 0 <= summary["classification.accuracy"] <= 1
    assert (out / "ssavae" / "figures" / "latent_map.png").exists()
    vae_cfg = (out / "vae" / "config.yaml").read_text()
    assert "max_minutes" in vae_cfg and "mlp_hidden:\n  - 64" in vae_cfg  # same budget, same nets
    rows = json.loads((out / "compare.json").read_text())
    assert [r["family"] for r in rows] == ["ssavae", "vae"]
    assert all("generation.frechet_distance" in r for r in rows)
    printed = capsys.readouterr().out
    assert "Frechet" in printed and "report" in printed and "samples.png" in printed


def test_sweep_writes_table_and_figure_and_resumes(tmp_path, monkeypatch):
    from ssavae import runs as run_mod

    monkeypatch.setenv("SSAVAE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "sweep"
    args = ["sweep", *tiny_cli("ssavae", model={"latent_dim": 2}), "--out", str(out),
            "--betas", "0,0.1", "--gammas", "0,0.1"]
    assert cli.main(args) == 0
    table = json.loads((out / "sweep.json").read_text())
    assert [(c["beta"], c["gamma"]) for c in table["cells"]] == [(0, 0), (0.1, 0), (0, 0.1), (0.1, 0.1)]
    for c in table["cells"]:
        assert 0 <= c["reconstruction.class_consistency"] <= 1 and c["reconstruction.pixel_mse"] >= 0
        assert c["reconstruction.encoder_feature_error"] >= 0 and c["generation.frechet_distance"] >= 0
    md = (out / "sweep.md").read_text()
    assert (out / "figure9.png").exists() and "| beta |" in md and "peaks / real" in md
    assert md.count("\n| 0.1 |") == 2 and " - |" not in md  # every cell, every column filled
    # a cell training cannot finish (the stability guard) is reported; the others still are
    from ssavae.engine.guard import GuardError

    def guarded(cfg, d, **k):
        if Path(d).name == "beta=0.1,gamma=0":
            raise GuardError("stability guard: the critic won, so the generator learns nothing")
        return real(cfg, d, **k)

    real = run_mod.train
    monkeypatch.setattr(run_mod, "train", guarded)
    broken = tmp_path / "sweep-guarded"
    assert cli.main(args[:-6] + ["--out", str(broken), "--betas", "0,0.1", "--gammas", "0"]) == 0
    md = (broken / "sweep.md").read_text()
    assert "| 0.1 | 0 | stopped: stability guard: the critic won |" in md and "\n| 0 | 0 | 0." in md
    monkeypatch.setattr(run_mod, "train", real)
    # a finished sweep trains nothing again
    calls = []
    real = run_mod.train
    monkeypatch.setattr(run_mod, "train", lambda *a, **k: calls.append(a))
    assert cli.main(args) == 0 and calls == []
    # a lost cell is trained again, the others are not
    import shutil

    shutil.rmtree(out / "cells" / "beta=0.1,gamma=0.1")
    trained = []
    monkeypatch.setattr(run_mod, "train", lambda cfg, d, **k: trained.append(Path(d).name) or real(cfg, d, **k))
    assert cli.main(args) == 0 and trained == ["beta=0.1,gamma=0.1"]


def test_compare_trains_evaluates_and_resumes(tmp_path, monkeypatch):
    from ssavae import runs as run_mod

    monkeypatch.setenv("SSAVAE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "cmp"
    overrides = tiny_cli("vae", model={"latent_dim": 2})[2:]  # drop --model vae
    args = ["compare", "--models", "vae,ssavae", "--budget", "epochs=1", "--out", str(out),
            "--n", "64", "--iw-samples", "10", *overrides]
    assert cli.main(args) == 0
    rows = json.loads((out / "compare.json").read_text())
    assert [r["family"] for r in rows] == ["vae", "ssavae"]
    assert "classification.accuracy" in rows[1] and "likelihood.iw_nll" in rows[0]
    assert (out / "samples.png").exists() and "<table>" in (out / "compare.html").read_text()
    calls = []
    monkeypatch.setattr(run_mod, "train", lambda *a, **k: calls.append(a))
    assert cli.main(args) == 0 and calls == []
    assert cli.main(["compare", "--models", "vae,nope", "--out", str(out)]) == 2
    assert cli.main([*args[:3], "--budget", "weeks=2", *args[5:]]) == 2


def test_wall_clock_budget_stops_and_splits_between_phases(tmp_path):
    out = tmp_path / "t"
    assert cli.main(["train", *tiny_cli("ssavae"), "--out", str(out), "--train.epochs", "100000",
                     "--train.max_minutes", "0.1"]) == 0
    from ssavae.runlog import read_metrics

    phases = {r["phase"] for r in read_metrics(out)}
    assert phases == {"vec", "decoder"}  # both phases got their share
    assert read_metrics(out)[-1]["time"] < 30


def test_comparison_tables_drop_columns_no_family_has():
    """A metric no compared family has (clustering beside vae and ssavae) is not a column of
    n/a; one that some family has stays, n/a where the others lack it."""
    from ssavae.compare import html_table, markdown_table

    rows = [{"family": "vae", "train_seconds": 3.0, "generation.frechet_distance": 2.5},
            {"family": "classifier", "train_seconds": 2.0, "classification.accuracy": 0.9}]
    md = markdown_table(rows, "epochs=1")
    head = md.splitlines()[2]
    assert "Frechet" in head and "test accuracy" in head and "cluster acc." not in head
    assert md.count("n/a") == 2 and "cluster acc." not in html_table(rows, "epochs=1")


def test_compare_html_marks_the_best_value_of_each_column():
    """Highest accuracy and recall, lowest Frechet distance, the sharpness ratio nearest 1; a column
    with one value, or without a direction (train time), marks nothing."""
    import re

    from ssavae.compare import html_table

    rows = [{"family": "vae", "train_seconds": 3.0, "generation.frechet_distance": 20.0,
             "generation.recall": 0.5, "generation.sharpness_vs_real": 0.4},
            {"family": "vaegan", "train_seconds": 2.0, "generation.frechet_distance": 14.0,
             "generation.recall": 0.7, "generation.sharpness_vs_real": 1.3},
            {"family": "ssavae", "train_seconds": 4.0, "generation.frechet_distance": 30.0,
             "generation.recall": 0.6, "generation.sharpness_vs_real": 0.9, "classification.accuracy": 0.88}]
    page = html_table(rows, "epochs=1")
    best = re.findall(r"<td class='best' title='best'><b>([^<]+)</b></td>", page)
    assert sorted(best) == sorted(["14.0000", "0.7000", "0.9000"])  # accuracy: one value only


def test_resuming_a_finished_run_says_there_is_nothing_to_train(tmp_path, capsys):
    out = tmp_path / "done"
    base = ["train", *tiny_cli("vae"), "--out", str(out)]
    assert cli.main(base) == 0
    steps = json.loads((out / "summary.json").read_text())["steps"]
    assert cli.main(["train", "--out", str(out), "--resume", "--train.epochs", "3"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == steps
    said = capsys.readouterr()
    assert "already finished every phase" in " ".join((said.out + said.err).split())


def test_users_own_table_and_image_folder_train_from_the_command_line(tmp_path, capsys):
    """A CSV with class names, empty cells for unlabeled rows and columns on very different
    scales (standardized, statistics written), and a folder of PNGs with an unlabeled/ folder."""
    from PIL import Image

    rng = np.random.default_rng(0)
    names = ["setosa", "virginica"]
    lines = ["width,weight,species"]
    for i in range(80):
        k = i % 2
        lines.append(f"{rng.normal(k * 3)},{rng.normal(k * 3) * 1000 + 9000},{names[k] if i < 20 else ''}")
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    table = tmp_path / "table"
    args = ["train", "--model", "ssavae", "--data", f"csv:{tmp_path / 't.csv'}", "--data.label_column", "species",
            "--model.latent_dim", "2", "--train.epochs", "2", "--train.batch_size", "16",
            "--train.progress", "false", "--out", str(table)]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    summary = json.loads((table / "summary.json").read_text())
    assert summary["classification.n_labeled"] == 2  # one labeled test row per class (stratified)
    assert f"on {summary['classification.n_labeled']} labeled" in printed
    stats = json.loads((table / "standardization.json").read_text())
    assert stats["mean"][1] > 5000 and stats["scale"][1] > 500

    for k, cls in enumerate(["dark", "light", "unlabeled"]):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for j in range(12):
            level = 40 if k == 0 else 215 if k == 1 else int(rng.choice([40, 215]))
            pixels = np.clip(rng.normal(level, 20, (12, 12)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "imgs" / cls / f"{j}.png")
    folder = tmp_path / "folder"
    assert cli.main(["train", "--model", "ssavae", "--data", f"folder:{tmp_path / 'imgs'}",
                     "--model.latent_dim", "2", "--train.epochs", "1", "--train.batch_size", "16",
                     "--train.progress", "false", "--out", str(folder)]) == 0
    assert not (folder / "standardization.json").exists()  # images are not standardized
    assert json.loads((folder / "summary.json").read_text())["classification.n_labeled"] == 2
