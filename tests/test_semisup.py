"""Augmentations, the unlabeled-data terms of the VEC, the classifier baseline, validation split."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssavae import losses
from ssavae.config import build_run_config
from ssavae.data.augment import augment, cutout, hflip, mixup, shift, strong
from ssavae.data.synthetic import make_synthetic
from ssavae.models import Batch
from ssavae.runs import build_model, prepare_data

from conftest import family_raw


def test_shift_moves_each_image_by_at_most_two_pixels_and_pads_with_zeros():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 12, 12)
    x[:, :, 5, 7] = 1.0  # one bright pixel per image
    out = shift(x, 2)
    assert out.shape == x.shape and torch.equal(out.sum((1, 2, 3)), torch.ones(64))
    pos = out[:, 0].flatten(1).argmax(1)
    dy, dx = pos // 12 - 5, pos % 12 - 7
    assert dy.abs().max() <= 2 and dx.abs().max() <= 2 and len(set(zip(dy.tolist(), dx.tolist()))) > 10
    edge = torch.ones(8, 1, 6, 6)
    assert (shift(edge, 2) == 0).any()  # zeros come in from the border


def test_flip_cutout_and_strong_view():
    torch.manual_seed(0)
    x = torch.rand(200, 1, 10, 10)
    f = hflip(x)
    flipped = (f == x.flip(-1)).flatten(1).all(1)
    assert 60 < int(flipped.sum()) < 140 and torch.equal(f[~flipped], x[~flipped])
    holes = (cutout(torch.ones(5, 1, 10, 10), 0.4) == 0).flatten(1).sum(1)
    assert (holes == 16).all()
    s = strong(x, "shift")
    assert s.min() >= 0 and s.max() <= 1 and not torch.equal(s, x)
    v = torch.rand(4, 6)
    assert torch.equal(augment(v, "flip-shift"), v)  # vectors pass through
    assert torch.equal(augment(x, "none"), x)


def test_pseudo_label_ce_keeps_only_confident_targets():
    logits = torch.randn(3, 4, dtype=torch.float64)
    target = torch.tensor([[0.97, 0.01, 0.01, 0.01], [0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]],
                          dtype=torch.float64)
    out = losses.pseudo_label_ce(logits, target, 0.95)
    logp = F.log_softmax(logits, 1)
    assert torch.allclose(out, torch.stack([-logp[0, 0], torch.zeros((), dtype=torch.float64), -logp[2, 3]]))


def _vec_model(**model):
    torch.manual_seed(0)
    return build_model(build_run_config(family_raw("ssavae", model=model)), make_synthetic(64, 16))


def _half_unlabeled():
    ds = make_synthetic(32, 4)
    x = torch.from_numpy(ds.x_train).float() / 255
    y = torch.from_numpy(ds.y_train).clone()
    y[16:] = -1
    return Batch(x, y, x[:8], y[:8])


def test_vec_unlabeled_terms_are_switches_that_change_the_loss_and_train():
    b = _half_unlabeled()
    base = _vec_model(consistency_weight=0.0, consistency_threshold=0.0)
    torch.manual_seed(1)
    plain = base.vec_loss(b)
    assert "entropy" not in plain.logs and "consistency" not in plain.logs  # the paper's VEC
    both = _vec_model(entropy_weight=1.0, consistency_weight=1.0, consistency_threshold=0.0)
    torch.manual_seed(1)
    out = both.vec_loss(b)
    assert out.logs["entropy"] > 0 and out.logs["consistency"] > 0 and out.logs["confident"] == 1.0
    out.loss.backward()
    assert all(p.grad is not None for p in both.cls.parameters())
    strict = _vec_model(consistency_weight=1.0, consistency_threshold=1.0)
    assert strict.vec_loss(b).logs["consistency"] == 0  # no pseudo-label is that confident
    labeled_only = Batch(b.x[:16], b.y[:16], b.x_lab, b.y_lab)
    assert "consistency" not in both.vec_loss(labeled_only).logs  # nothing unlabeled: no term


def test_classifier_baseline_is_the_vecs_networks_on_labels_only():
    cfg = build_run_config(family_raw("classifier", model={"latent_dim": 100}))
    model = build_model(cfg, make_synthetic(64, 16))
    vec = _vec_model(latent_dim=100)
    n = sum(p.numel() for p in model.parameters())
    n_vec = sum(p.numel() for g in ("enc", "cls") for p in vec.groups()[g].parameters())
    assert n_vec - n == 100 * 32 + 100  # the same networks less the logvar head (hidden 32)
    b = _half_unlabeled()
    out = model.cls_loss(Batch(torch.zeros_like(b.x), torch.full_like(b.y, 3), b.x_lab, b.y_lab))
    ref = model.cls_loss(Batch(b.x, b.y, b.x_lab, b.y_lab))
    assert torch.isfinite(out.loss) and out.logs["acc"] <= 1  # the mixed batch is ignored
    assert model.phases()[0].steps[0].data == "labeled" and abs(out.loss.item() - ref.loss.item()) < 1.0


def test_validation_split_is_held_out_and_can_replace_the_test_set():
    raw = family_raw("ssavae", data={"validation_size": 16, "evaluate_on": "validation"})
    ds, y = prepare_data(build_run_config(raw))
    full, _ = prepare_data(build_run_config(family_raw("ssavae")))
    assert len(ds.y_train) == len(full.y_train) - 16 and len(ds.y_test) == 16
    rows = {r.tobytes() for r in full.x_train.reshape(len(full.x_train), -1)}
    val = {r.tobytes() for r in ds.x_test.reshape(16, -1)}
    train = {r.tobytes() for r in ds.x_train.reshape(len(ds.x_train), -1)}
    assert val <= rows and not val & train
    test_mode, _ = prepare_data(build_run_config(family_raw("ssavae", data={"validation_size": 16})))
    assert np.array_equal(test_mode.x_test, full.x_test) and np.array_equal(test_mode.x_train, ds.x_train)
    with pytest.raises(Exception, match="validation_size"):
        prepare_data(build_run_config(family_raw("ssavae", data={"evaluate_on": "validation"})))


def test_mixup_blends_each_row_mostly_with_itself_and_its_ce_is_ce_against_blended_one_hots():
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    mixed, partner, lam = mixup(x, 0.4)
    assert (lam >= 0.5).all() and (lam <= 1).all() and lam.std() > 0.05
    assert torch.allclose(mixed, lam[:, None] * x + (1 - lam[:, None]) * x[partner])
    assert sorted(partner.tolist()) == list(range(64))  # a permutation of the batch
    logits, y = torch.randn(64, 4), torch.randint(0, 4, (64,))
    soft = lam[:, None] * F.one_hot(y, 4) + (1 - lam[:, None]) * F.one_hot(y[partner], 4)
    assert torch.allclose(losses.mixed_cross_entropy(logits, y, y[partner], lam),
                          F.cross_entropy(logits, soft, reduction="none"), atol=1e-6)


@pytest.mark.parametrize("family", ["ssavae", "m2", "aae_semi"])
def test_the_labeled_view_mixes_rows_only_with_model_mixup(family):
    ds = make_synthetic(16, 4)
    x = torch.from_numpy(ds.x_train).float() / 255
    y = torch.from_numpy(ds.y_train)
    for alpha in (0.0, 0.4):
        model = build_model(build_run_config(family_raw(family, model={"mixup": alpha, "augment": "none"})), ds)
        torch.manual_seed(0)
        view, ce = model.labeled_view(x, y)
        logits = torch.randn(16, model.num_classes)
        if alpha == 0:  # exactly the rows and their CE
            assert torch.equal(view, x)
            assert torch.allclose(ce(logits), F.cross_entropy(logits, y, reduction="none"))
        else:
            assert not torch.equal(view, x) and view.shape == x.shape
            assert not torch.allclose(ce(logits), F.cross_entropy(logits, y, reduction="none"))
