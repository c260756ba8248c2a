"""Trackers (``train.loggers``): a run's config, metrics by step and figures reach TensorBoard and
MLflow, read back here with each tracker's own reader; a tracker that fails costs one warning
and no step."""
import json
import logging
import sys
import types

import pytest

from ssavae import cli
from ssavae.errors import ConfigError
from ssavae.runlog import read_metrics

from conftest import tiny_cli


def tiny_run(tmp_path, *extra):
    """A 2-epoch vae run through the CLI (whose logging set-up is skipped, so caplog sees the records)."""
    out = tmp_path / "run"
    argv = ["train", *tiny_cli("vae", train={"epochs": 2, "sample_every": 1}), "--out", str(out), *extra]
    setup, cli._setup_logging = cli._setup_logging, lambda verbose: None
    try:
        assert cli.main(argv) == 0
    finally:
        cli._setup_logging = setup
    return out


def test_tensorboard_and_mlflow_get_the_config_the_metrics_by_step_and_the_figures(tmp_path, monkeypatch):
    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    out = tiny_run(tmp_path, "--train.loggers", "jsonl,tensorboard,mlflow", "--train.tracking_uri", uri,
                   "--model.latent_dim", "3")
    logged = [r["step"] for r in read_metrics(out)]
    assert logged and [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]

    ea = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    ea.Reload()
    assert [e.step for e in ea.Scalars("vae/loss")] == logged  # every logged row, by step
    assert any(t.startswith("samples_train_epoch") for t in ea.Tags()["images"])
    assert any(t.startswith("samples_final") for t in ea.Tags()["images"])
    content = ea.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["model.latent_dim"].number_value == 3 and hparams["model.name"].string_value == "vae"

    client = MlflowClient(uri)
    run_id = json.loads((out / "trackers.json").read_text())["mlflow"]["run_id"]
    run = client.get_run(run_id)
    assert run.data.params["model.latent_dim"] == "3" and run.data.params["train.loggers"].startswith("[")
    assert [m.step for m in client.get_metric_history(run_id, "vae/loss")] == logged
    assert "summary/reconstruction.pixel_mse" in run.data.metrics and run.info.status == "FINISHED"
    figures = [a.path for a in client.list_artifacts(run_id, "figures")]
    assert "figures/samples_final.png" in figures and "figures/samples_train_epoch001.png" in figures
    assert "report.html" in [a.path for a in client.list_artifacts(run_id)]
    monkeypatch.setenv("SSAVAE_CACHE", str(tmp_path / "cache"))  # ssavae evaluate: to the same run, later
    assert cli.main(["evaluate", str(out), "--n", "32", "--iw-samples", "4"]) == 0
    evaluated = json.loads((out / "eval" / "metrics.json").read_text())
    run = client.get_run(run_id)
    assert run.data.metrics["eval/n_test"] == evaluated["n_test"] == 32
    assert run.data.metrics["eval/reconstruction.pixel_mse"] == evaluated["reconstruction"]["pixel_mse"]
    assert json.loads((out / "trackers.json").read_text())["mlflow"]["run_id"] == run_id


def test_an_unreachable_tracker_costs_one_warning_and_no_step(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with caplog.at_level(logging.WARNING, logger="ssavae.tracking"):
        out = tiny_run(tmp_path, "--train.loggers", "jsonl,mlflow", "--train.tracking_uri", "http://127.0.0.1:9")
    warnings = [r for r in caplog.records if r.name == "ssavae.tracking"]
    assert len(warnings) == 1 and "mlflow" in warnings[0].getMessage()
    assert [r["step"] for r in read_metrics(out)] == [1, 2, 3, 4, 5, 6, 7, 8]  # log_every 1: no step lost
    assert (out / "summary.json").exists() and (out / "report.html").exists()


def test_a_tracker_that_fails_midway_is_dropped_after_one_warning(tmp_path, monkeypatch, caplog):
    """A stand-in wandb whose log() fails from the third call on (a full disk, a dropped
    connection): one warning, the run finishes, the calls before the failure went through."""
    calls = []

    class Run:
        id, logs = "abc", 0

        def log(self, values, step=None):
            calls.append(step)
            self.logs += 1
            if self.logs >= 3:
                raise OSError("No space left on device")

        def save(self, *a, **k):
            calls.append("save")

        def finish(self, exit_code=0):
            calls.append(("finish", exit_code))

    fake = types.SimpleNamespace(init=lambda **kw: calls.append(("init", kw["mode"], kw["config"]["model"]["name"]))
                                 or Run(), Image=lambda path: path, api=None)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: object())
    with caplog.at_level(logging.WARNING, logger="ssavae.tracking"):
        out = tiny_run(tmp_path, "--train.loggers", "jsonl,wandb")
    assert calls[0] == ("init", "offline", "vae") and calls[1:3] == [1, 2] and len(calls) == 4  # then dropped
    assert len([r for r in caplog.records if r.name == "ssavae.tracking"]) == 1
    assert len(read_metrics(out)) == 8 and (out / "summary.json").exists()


def test_a_tracker_that_is_not_installed_is_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'ssavae\[wandb\]'"):
        from ssavae.tracking import check_installed
        check_installed(["jsonl", "wandb"])
    assert cli.main(["train", *tiny_cli("vae"), "--out", str(tmp_path / "r"), "--train.loggers", "jsonl,wandb"]) == 2
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_a_saved_config_with_train_tensorboard_reads_as_the_tensorboard_logger():
    from ssavae.config import build_run_config, upgrade

    raw = {"model": {"name": "vae"}, "train": {"tensorboard": True}}
    assert build_run_config(upgrade(raw)).train.loggers == ["jsonl", "tensorboard"]
    with pytest.raises(ConfigError, match="train.loggers"):
        build_run_config(raw)
