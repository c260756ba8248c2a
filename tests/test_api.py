import numpy as np
import pytest

from ssavae.api import Estimator
from ssavae.errors import CapabilityError
from ssavae.data.synthetic import make_synthetic


def test_estimator_fit_predict_transform_sample(tmp_path):
    ds = make_synthetic(256, 16)
    names = np.array(["square", "disc", "cross", "bar"])
    y = names[ds.y_train].astype(object)
    y[::2] = -1  # half unlabeled
    est = Estimator("ssavae", model={"arch": "mlp", "hidden": 32, "mlp_hidden": [64], "latent_dim": 2},
                    train={"epochs": 1, "batch_size": 64, "sample_every": 0}, run_dir=str(tmp_path / "r"))
    with pytest.raises(RuntimeError, match="not fitted"):
        est.predict(ds.x_test)
    assert est.fit(ds.x_train[:, 0], y) is est  # (N, H, W) uint8 accepted
    assert set(est.classes_) == set(names)
    assert set(est.predict(ds.x_test)) <= set(names)
    p = est.predict_proba(ds.x_test)
    assert p.shape == (16, 4) and np.allclose(p.sum(1), 1, atol=1e-5)
    z = est.transform(ds.x_test)
    assert z.shape == (16, 2)
    assert est.inverse_transform(z).shape == (16, 1, 28, 28)
    assert est.sample(3, y="disc").shape == (3, 1, 28, 28)
    assert 0 <= est.score(ds.x_test, names[ds.y_test]) <= 1
    assert (tmp_path / "r" / "checkpoints" / "last.pt").exists()


def test_estimator_vae_has_no_classifier():
    x = np.random.default_rng(0).random((64, 5)).astype(np.float32)
    est = Estimator("vae", model={"latent_dim": 2, "mlp_hidden": [16], "hidden": 8},
                    train={"epochs": 1, "batch_size": 32, "sample_every": 0}).fit(x)
    assert est.transform(x).shape == (64, 2)
    with pytest.raises(CapabilityError, match="no classifier"):
        est.predict(x)
