"""Trained models to share: ``ssavae export`` / ``model.save_pretrained`` write safetensors weights,
a JSON config and a model card; ``ssavae.from_pretrained`` gives back the same model, bit for bit,
with no pickle anywhere; a changed file is refused; the commands that read a run read an export."""
import json
import struct
import sys
import types

import numpy as np
import pytest
import torch

import ssavae
from ssavae import cli
from ssavae.errors import CheckpointError, ConfigError
from ssavae.runs import load_model

from conftest import family_settings, tiny_cli


def trained(tmp_path, family="ssavae", evaluate=True):
    run = tmp_path / family
    assert cli.main(["train", *tiny_cli(family, **family_settings(family)), "--out", str(run)]) == 0
    if evaluate:
        assert cli.main(["evaluate", str(run), "--n", "32", "--iw-samples", "4"]) == 0
    return run


def same_outputs(a, b, x):
    g = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    return (torch.equal(a.predict_proba(x), b.predict_proba(x)) and torch.equal(a.encode(x), b.encode(x))
            and torch.equal(a.sample(16, generator=g()), b.sample(16, generator=g())))


def test_export_then_from_pretrained_is_the_same_model_with_no_pickle_in_the_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("SSAVAE_CACHE", str(tmp_path / "cache"))
    run = trained(tmp_path)
    out = tmp_path / "shared"
    assert cli.main(["export", str(run), "--out", str(out)]) == 0
    model = ssavae.from_pretrained(out)
    original, _ = load_model(run)
    x = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert same_outputs(model, original, x)
    assert cli.main(["sample", str(out), "--n", "4", "--out", str(tmp_path / "s.png")]) == 0  # the CLI reads it too
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert {"model.safetensors", "config.json", "README.md", "summary.json", "eval/metrics.json"} <= set(files)
    for f in out.rglob("*"):  # every file: no pickle (protocol 2+ opens with 0x80), no torch.save zip
        if f.is_file():
            head = f.read_bytes()[:4]
            assert head[:1] != b"\x80" and head != b"PK\x03\x04", f
    raw = (out / "model.safetensors").read_bytes()  # safetensors: 8-byte length, a JSON header, raw tensors
    header = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
    assert set(header) - {"__metadata__"} == set(original.state_dict())
    meta = json.loads((out / "config.json").read_text())
    assert meta["family"] == "ssavae" and meta["library_version"] == ssavae.__version__
    card = (out / "README.md").read_text()
    evaluated = json.loads((run / "eval" / "metrics.json").read_text())
    assert "ssavae train --model ssavae" in card and f"| n_test | {evaluated['n_test']} |" in card
    assert f"{evaluated['classification']['accuracy']:.4g}" in card
    # save_pretrained from the model itself loads back the same way
    model.save_pretrained(tmp_path / "again")
    assert same_outputs(ssavae.from_pretrained(tmp_path / "again"), original, x)
    with pytest.raises(ConfigError, match="not empty"):  # nothing is overwritten
        ssavae.export_run(run, out)


def test_a_changed_export_is_refused_in_one_line(tmp_path, capsys):
    run = trained(tmp_path, evaluate=False)
    out = tmp_path / "shared"
    assert cli.main(["export", str(run), "--out", str(out)]) == 0
    weights = out / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))
    capsys.readouterr()
    assert cli.main(["sample", str(out), "--n", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not match the checksum" in err
    # a file that is not safetensors at all, with a checksum to match: a parse error, nothing run
    import hashlib
    weights.write_bytes(b"\x80\x04garbage")
    meta = json.loads((out / "config.json").read_text())
    meta["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (out / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        ssavae.from_pretrained(out)


def test_the_commands_that_read_a_run_read_an_export(tmp_path, monkeypatch):
    """complete, evaluate and report on an exported cvae_completion (sample: the first test)."""
    monkeypatch.setenv("SSAVAE_CACHE", str(tmp_path / "cache"))
    run = trained(tmp_path, "cvae_completion", evaluate=False)
    out = tmp_path / "shared"
    assert cli.main(["export", str(run), "--out", str(out)]) == 0
    assert cli.main(["complete", str(out), "--count", "2", "--draws", "2", "--out", str(tmp_path / "c.png")]) == 0
    assert cli.main(["evaluate", str(out), "--n", "32", "--iw-samples", "4"]) == 0
    assert cli.main(["report", str(out)]) == 0
    assert (tmp_path / "c.png").exists()
    assert (out / "eval" / "metrics.json").exists() and (out / "report.html").exists()
    assert cli.main(["export", str(out), "--out", str(tmp_path / "x")]) == 2  # an export is not a run


def test_a_standardized_table_model_takes_raw_rows_after_export(tmp_path):
    """Trained from a CSV whose columns were standardized by the command: the loaded and the
    exported model take raw rows and give what the run's own model gives on the standardized rows."""
    from ssavae.data import load_dataset

    rng = np.random.default_rng(0)
    lines = ["width,weight,label"] + [f"{rng.normal(i % 2 * 3)},{rng.normal(i % 2 * 3) * 1000 + 9000},{i % 2}"
                                      for i in range(80)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    run, out = tmp_path / "table", tmp_path / "shared"
    assert cli.main(["train", "--model", "ssavae", "--data", f"csv:{tmp_path / 't.csv'}", "--model.latent_dim", "2",
                     "--train.epochs", "1", "--train.batch_size", "16", "--train.progress", "false",
                     "--out", str(run)]) == 0
    assert cli.main(["export", str(run), "--out", str(out)]) == 0
    raw = load_dataset(f"csv:{tmp_path / 't.csv'}")
    prepared = raw.standardized()
    inner, _ = load_model(run, raw_inputs=False)
    for model in (ssavae.from_pretrained(out), load_model(run)[0]):
        assert model.preprocess is not None
        assert torch.equal(model.predict_proba(torch.from_numpy(raw.x_test)),
                           inner.predict_proba(torch.from_numpy(prepared.x_test)))
        assert torch.equal(model.encode(raw.x_test), inner.encode(torch.from_numpy(prepared.x_test)))
        back = model.reconstruct(torch.from_numpy(raw.x_test))  # in the rows' own units again
        assert abs(float(back[:, 1].mean()) - 9000) < 3000 and float(back[:, 1].std()) > 100
    assert inner.preprocess is None and json.loads((out / "config.json").read_text())["preprocess"]["scale"][1] > 500


def test_a_hub_repo_id_is_downloaded_then_loaded_and_an_export_can_be_pushed(tmp_path, monkeypatch):
    """With huggingface_hub installed (the ``hub`` extra; here a stand-in module): from_pretrained
    takes a repo id, push_to_hub uploads the checked directory."""
    run = trained(tmp_path, evaluate=False)
    out = tmp_path / "shared"
    assert cli.main(["export", str(run), "--out", str(out)]) == 0
    calls = []

    class HfApi:
        def create_repo(self, repo_id, private, exist_ok):
            calls.append(("create", repo_id))

        def upload_folder(self, folder_path, repo_id, commit_message):
            calls.append(("upload", folder_path, repo_id))

    hub = types.SimpleNamespace(snapshot_download=lambda repo_id, revision=None: calls.append(("get", repo_id))
                                or str(out), HfApi=HfApi)
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    model = ssavae.from_pretrained("someone/tiny-ssavae")
    assert calls == [("get", "someone/tiny-ssavae")]
    assert same_outputs(model, load_model(run)[0], torch.rand(8, 1, 28, 28))
    assert cli.main(["export", str(run), "--out", str(tmp_path / "pushed"), "--push-to", "someone/x"]) == 0
    assert calls[1:] == [("create", "someone/x"), ("upload", str(tmp_path / "pushed"), "someone/x")]
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # not installed
    with pytest.raises(CheckpointError, match=r"ssavae\[hub\]"):
        ssavae.from_pretrained("someone/elsewhere")


def test_likelihoods_of_raw_rows_carry_the_standardization_jacobian():
    """log p(raw row) = log p(standardized row) - sum(log scale): densities stay densities."""
    from ssavae.config import build_run_config
    from ssavae.data import DataInfo, Standardization
    from ssavae.runs import build_model

    from conftest import tiny_raw

    model = build_model(build_run_config(tiny_raw("vae", model={"likelihood": "gaussian"})),
                        DataInfo((3,), 2, False)).eval()
    st = Standardization([10.0, -5.0, 0.0], [2.0, 0.5, 4.0])
    raw = np.random.default_rng(0).normal([10, -5, 0], [2, 0.5, 4], (6, 3)).astype(np.float32)
    torch.manual_seed(0)
    plain = model.negative_elbo(torch.from_numpy(st(raw)))
    model.preprocess = st
    torch.manual_seed(0)
    assert torch.allclose(model.negative_elbo(torch.from_numpy(raw)), plain + float(np.log([2.0, 0.5, 4.0]).sum()))
