import base64
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssavae.data.synthetic import make_synthetic
from ssavae.eval.evaluator import get_evaluator
from ssavae.eval.figures import image_grid
from ssavae.eval.metrics import accuracy, pixel_mse, sharpness
from ssavae.eval.run_figures import project_2d
from ssavae.models import list_models


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


def test_wilson_interval_on_published_cases():
    from ssavae.eval.metrics import wilson_interval

    lo, hi = wilson_interval(1.0, 10)  # 10 of 10 right: [0.722, 1]
    assert lo == pytest.approx(0.7225, abs=1e-3) and hi == 1.0
    lo, hi = wilson_interval(0.5, 100)  # [0.404, 0.596]
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    assert all(v != v for v in wilson_interval(0.5, 0))


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
    from ssavae.runs import train

    from conftest import tiny_raw

    r = train(build_run_config(tiny_raw("vae")), tmp_path / "r")
    html = (r.run_dir / "report.html").read_text()
    assert "likelihood.neg_elbo" in html and "http://" not in html and "https://" not in html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) >= 3
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)


def test_frechet_distance_zero_for_identical_sets_and_grows_with_shift():
    from ssavae.eval.metrics import frechet_distance

    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 8))
    assert frechet_distance(a, a) < 1e-6
    near = frechet_distance(a, rng.normal(size=(2000, 8)))
    far = frechet_distance(a, rng.normal(size=(2000, 8)) + 1.0)
    assert near < 0.1 and abs(far - 8.0) < 0.5  # a unit shift in 8 dims: ||dmu||^2 = 8


def test_precision_recall_knn_and_silhouette_hand_cases():
    from ssavae.eval.metrics import knn_accuracy, precision_recall, silhouette

    g = torch.Generator().manual_seed(0)
    real = torch.randn(300, 4, generator=g)
    assert precision_recall(real, real.clone()) == (1.0, 1.0)
    p, r = precision_recall(real, real[:30] * 0.1)  # collapsed samples: precise, poor recall
    assert p == 1.0 and r < 0.3
    p, _ = precision_recall(real, real + 50)
    assert p == 0.0
    y = torch.arange(300) % 3
    z = torch.stack([y.float() * 10, torch.zeros(300)], 1) + 0.1 * torch.randn(300, 2, generator=g)
    assert knn_accuracy(z, y, z, y) == 1.0
    assert silhouette(z, y) > 0.9
    assert silhouette(torch.randn(300, 2, generator=g), y) < 0.1


@pytest.mark.parametrize("family", list_models())
def test_evaluate_run_writes_every_applicable_metric(tmp_path, monkeypatch, family):
    import json

    from ssavae import cli
    from ssavae.models import get_model_class
    from ssavae.runs import load_model
    from conftest import family_settings, tiny_cli

    monkeypatch.setenv("SSAVAE_CACHE", str(tmp_path / "cache"))
    cls = get_model_class(family)
    out = tmp_path / family
    sections = {**family_settings(family), "model": {**family_settings(family).get("model", {}), "latent_dim": 2}}
    assert cli.main(["train", *tiny_cli(family, **sections), "--out", str(out)]) == 0
    assert cli.main(["evaluate", str(out), "--n", "64", "--iw-samples", "20"]) == 0
    m = json.loads((out / "eval" / "metrics.json").read_text())
    assert "latent" in m
    assert ({"reconstruction", "generation"} <= set(m)) == cls.generative
    assert ("likelihood" in m) == cls.has_likelihood
    assert ("classification" in m) == cls.has_classifier
    if cls.generative:
        assert ("conditional_accuracy" in m["generation"]) == (cls.conditional or cls.class_sampling)
    if cls.has_likelihood:
        # the IWAE bound is at least the ELBO on average: NLL_iw <= -ELBO
        elbo = json.loads((out / "summary.json").read_text())["likelihood.neg_elbo"]
        assert m["likelihood"]["iw_nll"] <= elbo + 1.0
    if cls.has_classifier:
        assert np.array(m["classification"]["confusion"]).sum() == 64
    model, _ = load_model(out)
    assert ("silhouette" in m["latent"]) == (model.code_dim == 2)  # aae_semi's codes are (y, z)
    assert ("clustering" in m) == cls.clusters
    if cls.clusters:
        assert 0 < m["clustering"]["accuracy"] <= 1 and 1 <= m["clustering"]["used"] <= 6
        k = model.cluster_proba(torch.rand(1, 1, 28, 28)).shape[1]
        assert ("accuracy_hungarian" in m["clustering"]) == (k == 4)  # as many as classes
        assert (out / "figures" / "samples_per_cluster.png").exists() == (not model.class_sampling)
    assert ("frechet" in (out / "report.html").read_text()) == cls.generative


def test_interpolations_start_and_end_at_the_endpoints_codes():
    from ssavae.config import build_run_config
    from ssavae.runs import build_model
    from ssavae.eval.run_figures import interpolations

    from conftest import tiny_raw

    ds = make_synthetic(16, 16)
    model = build_model(build_run_config(tiny_raw("vae")), ds).eval()
    x = torch.from_numpy(ds.x_test).float() / 255
    path = interpolations(model, x[:3], x[3:6], steps=5).view(3, 5, 1, 28, 28)
    assert torch.allclose(path[:, 0], model.reconstruct(x[:3]), atol=1e-6)
    assert torch.allclose(path[:, -1], model.reconstruct(x[3:6]), atol=1e-6)


def test_spectral_peaks_flag_periodic_patterns_not_blur():
    """A plaid grid (period 4, the upsampling lattice of a 7x7 -> 28x28 decoder) must stand out
    from the real-vs-real floor; a blur changes the spectrum smoothly and must not."""
    from ssavae.eval.metrics import spectral_peaks

    ds = make_synthetic(400, 4)
    x = torch.from_numpy(ds.x_train).float() / 255
    ref, other = x[:200], x[200:]
    floor = spectral_peaks(other, ref)
    r = torch.arange(28)
    grid = ((r[:, None] % 4 == 0) | (r[None, :] % 4 == 0)).float()
    plaid = (other + 0.2 * grid).clamp(0, 1)
    blurred = F.avg_pool2d(F.avg_pool2d(other, 3, 1, 1), 3, 1, 1)
    assert spectral_peaks(plaid, ref) > 3 * floor
    assert spectral_peaks(blurred, ref) < spectral_peaks(plaid, ref) / 2
    assert spectral_peaks(ref, ref) == 0.0  # identical spectra: no peak at all


def test_high_frequency_power_flags_checkerboards_and_blur():
    from ssavae.eval.metrics import high_frequency_power

    ds = make_synthetic(16, 4)
    x = torch.from_numpy(ds.x_train).float() / 255
    checker = (torch.arange(28)[:, None] + torch.arange(28)[None, :]) % 2  # (28, 28)
    textured = (x + 0.3 * checker).clamp(0, 1)
    blurred = F.avg_pool2d(x, 3, 1, 1)
    real, tex, blur = (high_frequency_power(v) for v in (x, textured, blurred))
    assert (tex > 3 * real).all() and (blur < real).all()
    assert torch.allclose(high_frequency_power(checker[None, None].float()), torch.ones(1))
    assert torch.allclose(high_frequency_power(torch.full((2, 1, 8, 8), 0.4)), torch.zeros(2))


def test_the_encoder_feature_error_is_ssavae_step_2_reconstruction_loss_on_test_images():
    """The registry's reconstruction.encoder_feature_error (the sweep's "feature error") equals
    the decoder step's own L_rec computed by hand over the test images; families without frozen
    feature layers do not get it."""
    import torch

    from ssavae import losses
    from ssavae.config import build_run_config
    from ssavae.data import to_float
    from ssavae.eval.registry import Context, METRICS
    from ssavae.runs import build_model, prepare_data

    from conftest import family_raw

    cfg = build_run_config(family_raw("ssavae"))
    ds, _ = prepare_data(cfg)
    model = build_model(cfg, ds).eval()
    ctx = Context(model, ds)
    metric = METRICS["reconstruction.encoder_feature_error"]
    assert metric.applies(ctx)
    with torch.no_grad():
        x = to_float(ds.x_test)
        fx, fr = model.enc(x, return_features=True)[2], model.enc(model.reconstruct(x), return_features=True)[2]
        by_hand = losses.feature_distance([fx[j] for j in model.feature_layers], [fr[j] for j in model.feature_layers],
                                          model.cfg.feature_weights, model.cfg.feature_reduction).mean()
    assert abs(metric.fn(ctx) - float(by_hand)) < 1e-4 * max(1.0, float(by_hand))
    vae_cfg = build_run_config(family_raw("vae"))
    assert not metric.applies(Context(build_model(vae_cfg, ds), ds))


def test_the_completion_baseline_is_a_metric_of_every_image_autoencoder_that_does_not_complete():
    """completion.nearest_code_missing_mse: the top half of each test image given, the bottom half
    from the nearest decoded training code, scored on the bottom half only (by hand here);
    cvae_completion and the conditional families do not get it."""
    from ssavae.config import build_run_config
    from ssavae.data import to_float
    from ssavae.eval.completion import nearest_code_completion
    from ssavae.eval.registry import Context, METRICS
    from ssavae.runs import build_model, prepare_data

    from conftest import family_raw

    metric = METRICS["completion.nearest_code_missing_mse"]
    cfg = build_run_config(family_raw("vae"))
    ds, _ = prepare_data(cfg)
    model = build_model(cfg, ds).eval()
    ctx = Context(model, ds)
    assert metric.applies(ctx)
    x = ctx.x
    top = torch.zeros(len(x), 1, 28, 28)
    top[:, :, :14] = 1
    done = nearest_code_completion(model, x, top, to_float(ds.x_train[:20000]))
    by_hand = float(((done - x)[:, :, 14:] ** 2).flatten(1).mean(1).mean())
    assert abs(metric.fn(ctx) - by_hand) < 1e-6 * max(1.0, by_hand)
    assert metric.fn(ctx) > 0 and torch.equal(ctx.nearest_code[0][:, :, :14], x[:, :, :14])  # the top is kept
    for family in ("cvae_completion", "cvae"):
        other = build_model(build_run_config(family_raw(family)), ds)
        assert not metric.applies(Context(other, ds))


def test_the_report_reads_as_a_person_needs_it(tmp_path, monkeypatch):
    """report.html opens with the command, the run's settings and versions; numbers are formatted
    (72.6 %, 71.7-73.4 %) beside their labels; every figure has a title and what to look for; the
    per-class grid names its rows and the reconstruction grid its columns (drawn into the PNG)."""
    import json
    import re

    import numpy as np
    from PIL import Image

    from ssavae import cli
    from ssavae.eval.report import fmt

    from conftest import tiny_cli

    monkeypatch.setenv("SSAVAE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert cli.main(["train", *tiny_cli("ssavae", model={"latent_dim": 2}), "--out", str(out)]) == 0
    assert cli.main(["evaluate", str(out), "--n", "64", "--iw-samples", "4"]) == 0
    page = (out / "report.html").read_text()
    text = re.sub(r"<[^>]+>", " ", page)
    assert "ssavae train --model ssavae" in text and "settings changed from the defaults" in text
    assert "model.latent_dim = 2" in text and "report by ssavae" in text
    summary = json.loads((out / "summary.json").read_text())
    acc, (lo, hi) = summary["classification.accuracy"], summary["classification.accuracy_ci95"]
    assert f"{100 * acc:.1f} %" in text and f"{100 * lo:.1f}-{100 * hi:.1f} %" in text
    assert "test accuracy" in text and "0.7169707555471805" not in fmt("x.accuracy_ci95", [0.7169707555471805, 0.73])
    assert fmt("x.accuracy_ci95", [0.7169707555471805, 0.734455779993703]) == "71.7-73.4 %"
    assert fmt("classification.accuracy", 0.7261) == "72.6 %" and fmt("n_test", 10000) == "10,000"
    for title in ("Samples.", "Reconstructions.", "Samples per class.", "Code map.", "Training curves."):
        assert f"<b>{title}</b>" in page
    assert "a test image, then its reconstruction" in text and "named on the left" in text

    def ink(img, box):  # dark pixels in a region: drawn text
        return int((np.asarray(img.convert("L").crop(box)) < 128).sum())

    per_class = Image.open(out / "figures" / "samples_per_class.png")
    plain = Image.open(out / "figures" / "samples_final.png")
    assert per_class.width > 10 * 56 + 20 and ink(per_class, (0, 0, 30, per_class.height)) > 50  # row names
    recon = Image.open(out / "figures" / "reconstructions_final.png")
    assert recon.height > plain.height and ink(recon, (0, 0, recon.width, 14)) > 50  # "input", "recon." above
