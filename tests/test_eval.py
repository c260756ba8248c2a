import base64
import re

import numpy as np
import torch
import torch.nn.functional as F

from ssavae.data.synthetic import make_synthetic
from ssavae.eval.evaluator import get_evaluator
from ssavae.eval.figures import image_grid
from ssavae.eval.metrics import accuracy, pixel_mse, sharpness
from ssavae.eval.summary import project_2d


def test_sharpness_ranks_blur_below_edges():
    ds = make_synthetic(16, 4)
    x = torch.from_numpy(ds.x_train).float() / 255
    blurred = F.avg_pool2d(x, 3, 1, 1)
    assert (sharpness(blurred) < sharpness(x)).all()
    assert torch.allclose(sharpness(torch.full((2, 1, 8, 8), 0.3)), torch.zeros(2))


def test_accuracy_and_mse_on_hand_cases():
    assert accuracy(torch.tensor([1, 2, 3]), torch.tensor([1, 2, 3])) == 1.0
    assert accuracy(torch.tensor([1, 0, 3]), torch.tensor([1, 2, -1])) == 0.5
    a = torch.zeros(2, 1, 2, 2)
    assert torch.allclose(pixel_mse(a, a + 0.5), torch.full((2,), 0.25))


def test_evaluator_learns_is_cached_and_deterministic(tmp_path):
    ds = make_synthetic(1000, 100)
    ev = get_evaluator(ds, epochs=5, cache=tmp_path)
    assert ev.test_accuracy > 0.6  # chance is 0.25: a judge that cannot tell shapes is useless
    files = list(tmp_path.glob("*.pt"))
    assert len(files) == 1
    again = get_evaluator(ds, epochs=5, cache=tmp_path)
    x = torch.from_numpy(ds.x_test[:20]).float() / 255
    assert torch.equal(ev.logits(x), again.logits(x)) and again.test_accuracy == ev.test_accuracy


def test_grid_layout_and_projection():
    imgs = torch.zeros(5, 1, 4, 4)
    imgs[3] = 1.0
    g = image_grid(imgs, nrow=2, pad=1)
    assert g.shape == (3 * 5 + 1, 2 * 5 + 1, 1)
    assert g[1 + 5 * 1: 1 + 5 * 1 + 4, 1 + 5:1 + 5 + 4].min() == 255  # cell (row 1, col 1)
    codes = np.random.default_rng(0).normal(size=(100, 5)) * [10, 1, 1, 1, 0.1]
    p, axes = project_2d(codes)
    assert p.shape == (100, 2) and axes == ("PC1", "PC2") and p[:, 0].std() > 5


def test_report_is_self_contained(tmp_path):
    from ssavae.config import build_run_config
    from ssavae.engine.run import train

    from conftest import tiny_raw

    r = train(build_run_config(tiny_raw("vae")), tmp_path / "r")
    html = (r.run_dir / "report.html").read_text()
    assert "test_neg_elbo" in html and "http://" not in html and "https://" not in html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) >= 3
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
