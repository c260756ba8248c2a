"""Real-data runs (minutes): ``python -m pytest -m slow``. They need Fashion-MNIST on disk
(Debian's dataset-fashion-mnist, or ``ssavae download fashion-mnist``) and skip otherwise."""
import pytest

from ssavae.config import build_run_config
from ssavae.data import DataError, load_dataset
from ssavae.runs import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fashion():
    try:
        return load_dataset("fashion-mnist")
    except DataError as e:
        pytest.skip(f"Fashion-MNIST not available: {e.args[0].splitlines()[0]}")


def _run(tmp_path, model, **train_fields):
    raw = {"model": model, "data": {"name": "fashion-mnist", "limit_train": 20000, "limit_test": 2000},
           "train": {"epochs": 1, "progress": False, "sample_every": 0, **train_fields}}
    return train(build_run_config(raw), tmp_path / model["name"])


def test_vae_learns_fashion_mnist(tmp_path, fashion):
    s = _run(tmp_path, {"name": "vae", "latent_dim": 20}).summary
    assert s["likelihood.neg_elbo"] < 270  # 543 nats at init; ~239 after 10 full epochs


def test_ssavae_vec_classifies_fashion_mnist(tmp_path, fashion):
    raw = {"name": "ssavae", "latent_dim": 100, "vec_epochs": 3, "decoder_epochs": 0}
    s = _run(tmp_path, raw).summary
    assert s["classification.accuracy"] > 0.8
