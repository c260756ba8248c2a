"""Experiments as files: ``ssavae run FILE`` trains every cell and seed into its run directory
(resuming, never retraining a finished run), then writes the table from the runs' summaries."""
import json
import statistics

import pytest
import yaml

from ssavae import cli
from ssavae.errors import ConfigError
from ssavae.experiment import load_experiment, mean_std

from conftest import TINY


def write(tmp_path, **fields):
    exp = {"name": "tiny", "description": "a tiny experiment",
           "base": {"data": {**TINY["data"], "labels_per_class": 4},
                    "model": {k: v for k, v in TINY["model"].items()}, "train": TINY["train"]},
           "variants": {"classifier": {"model": {"name": "classifier"}},
                        "vec": {"model": {"name": "ssavae", "decoder_epochs": 0}}},
           "grid": {"data.labels_per_class": [4, 8]}, "seeds": [0, 1],
           "metrics": ["classification.accuracy"], **fields}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(exp, sort_keys=False))
    return path


def test_an_experiment_file_trains_each_cell_and_seed_once_and_tabulates_them(tmp_path, capsys, monkeypatch):
    path = write(tmp_path)
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out)]) == 0
    runs = sorted(p.parent.relative_to(out).as_posix() for p in out.glob("*/seed*/summary.json"))
    assert runs == [f"variant={v},labels_per_class={n}/seed{s}" for v in ("classifier", "vec") for n in (4, 8)
                    for s in (0, 1)]
    results = json.loads((out / "results.json").read_text())["rows"]
    vec8 = [r["classification.accuracy"] for r in results if r["cell"] == {"variant": "vec",
                                                                           "data.labels_per_class": 8}]
    saved = yaml.safe_load((out / "variant=vec,labels_per_class=8" / "seed1" / "config.yaml").read_text())
    assert len(vec8) == 2 and saved["seed"] == 1 and saved["model"]["name"] == "ssavae"
    assert saved["data"]["labels_per_class"] == 8 and saved["model"]["decoder_epochs"] == 0
    run = out / "variant=vec,labels_per_class=8" / "seed1"
    assert (run / "command.txt").read_text().startswith(f"ssavae run {path} --out {out}")  # for its report
    table = (out / "results.md").read_text()
    assert f"| vec | 8 | {mean_std(vec8, percent=True)} |" in table
    mean, std = 100 * statistics.fmean(vec8), 100 * statistics.stdev(vec8)
    assert mean_std(vec8, True) == f"{mean:.2f} +- {std:.2f} (2)"
    assert table in capsys.readouterr().out
    import ssavae.runs

    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(ssavae.runs, "train", no_training)
    assert cli.main(["run", str(path), "--out", str(out)]) == 0  # everything finished: only the table


def test_an_experiment_can_evaluate_each_run_and_tabulate_the_evaluation(tmp_path, monkeypatch):
    """``evaluate: N``: each run is evaluated once (eval/metrics.json) and its numbers join the
    summary's; a second run of the file evaluates nothing again."""
    from ssavae import experiment

    path = write(tmp_path, variants={"vae": {"model": {"name": "vae"}}}, grid={}, seeds=[0], evaluate=32,
                 metrics=["reconstruction.pixel_mse", "generation.frechet_distance"])
    out = experiment.run_experiment(path, tmp_path / "out")
    row = json.loads((out / "results.json").read_text())["rows"][0]
    assert row["cell"] == {"variant": "vae"} and row["generation.frechet_distance"] >= 0  # from the evaluation
    assert (out / "variant=vae" / "seed0" / "eval" / "metrics.json").exists()
    table = (out / "results.md").read_text()
    assert "n/a" not in table and f"| vae | {mean_std([row['reconstruction.pixel_mse']])} |" in table  # not in percent

    def no_evaluation(*a, **k):
        raise AssertionError("an evaluated run was evaluated again")

    monkeypatch.setattr(experiment, "evaluate_run", no_evaluation)
    experiment.run_experiment(path, out)


def test_a_variant_can_start_from_an_earlier_variants_run_of_the_same_cell_and_seed(tmp_path):
    """``init_from``: SSAVAE's decoders from one shared VEC (the validation of step 2): the decoder run
    skips the VEC phase and starts from that run's encoder, for each seed its own."""
    import torch
    from ssavae import experiment
    from ssavae.runs import load_model

    vec = {"model": {"name": "ssavae", "decoder_epochs": 0}}
    path = write(tmp_path, variants={"vec": vec, "dec": {"model": {"name": "ssavae", "vec_epochs": 3}}},
                 init_from={"dec": "vec"}, grid={}, seeds=[0, 1])
    out = experiment.run_experiment(path, tmp_path / "out")
    for s in (0, 1):
        a, _ = load_model(out / "variant=vec" / f"seed{s}")
        b, _ = load_model(out / "variant=dec" / f"seed{s}")
        assert all(torch.equal(p, q) for p, q in zip(a.enc.parameters(), b.enc.parameters()))
    seed0 = load_model(out / "variant=vec" / "seed0")[0]
    assert not torch.equal(next(a.enc.parameters()), next(seed0.enc.parameters()))  # each seed its own VEC
    with pytest.raises(ConfigError, match="listed before"):
        load_experiment(write(tmp_path, variants={"dec": vec, "vec": vec}, init_from={"dec": "vec"}))


def test_a_bad_experiment_is_refused_before_anything_trains(tmp_path):
    with pytest.raises(ConfigError, match="did you mean"):
        load_experiment(write(tmp_path, seed=[0]))
    with pytest.raises(ConfigError, match="non-empty list"):
        load_experiment(write(tmp_path, grid={"data.labels_per_class": 4}))
    with pytest.raises(ConfigError, match="unknown key.*latent_dimm"):
        load_experiment(write(tmp_path, grid={"model.latent_dimm": [2]}))
    assert not list(tmp_path.glob("**/summary.json"))


def test_the_docs_experiment_files_are_valid():
    from pathlib import Path

    files = sorted((Path(__file__).parents[1] / "experiments").rglob("*.yaml"))
    assert len(files) >= 10
    for f in files:
        assert load_experiment(f).cells()
