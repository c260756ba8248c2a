"""M2 and M2+GAN: the enumerated unlabeled bound against an explicit loop
over classes, its gradient in float64, the likelihood summed over classes, the split of M2+GAN's
updates (the contract tests of test_models.py cover gradient ownership through the engine)."""
import math

import pytest
import torch

from ssavae import losses
from ssavae.models import Batch
from ssavae.config import build_run_config

from conftest import family_raw
from test_models import data, tiny_model


@pytest.fixture
def no_noise(monkeypatch):
    """z = mu: the bound becomes a deterministic function, so two ways of computing it agree."""
    monkeypatch.setattr(losses, "reparameterize", lambda mu, logvar: mu)


def test_unlabeled_bound_in_one_pass_equals_a_loop_over_classes(no_noise):
    model = tiny_model("m2")
    x, _ = data(6, labeled=False)
    batched = model.per_class_bound(x)  # (6, K), one pass over the 6*K pairs
    loop = torch.stack([model.pair_bound(x, torch.full((6,), k)) for k in range(model.num_classes)], 1)
    assert torch.allclose(batched, loop, atol=1e-4)
    q = model.cls(x).softmax(-1)
    oracle = (q * (loop + q.log())).sum(1)  # sum_y q (L + log q) = sum_y q L - H(q)
    assert torch.allclose(model._negative_elbo(x), oracle, atol=1e-4)


def test_labeled_and_unlabeled_pairs_read_each_image_once(no_noise):
    """The step's one pass: labeled pairs, then every class of each unlabeled image, with the
    encoder's body run on each image once (not K times) and the same bound as separate passes."""
    model = tiny_model("m2")
    x_lab, y_lab = data(3)
    x_u, _ = data(4, labeled=False, seed=2)
    rows = []
    model.enc.trunk.body.register_forward_hook(lambda m, inp, out: rows.append(len(inp[0])))
    pairs = model.pair_bound(*model.class_pairs(x_lab, y_lab, x_u))
    assert rows == [3 + 4]
    k = model.num_classes
    assert pairs.shape == (3 + 4 * k,)
    assert torch.allclose(pairs[:3], model.pair_bound(x_lab, y_lab), atol=1e-4)
    assert torch.allclose(pairs[3:].view(4, k), model.per_class_bound(x_u), atol=1e-4)


def test_batch_loss_is_the_mean_bound_plus_alpha_times_ce(no_noise, monkeypatch):
    """The step's loss: mean of L over the labeled examples and U over the unlabeled ones, plus
    alpha * CE on the (augmented) labeled images; unlabeled images change it only through U."""
    monkeypatch.setattr("ssavae.models.semisup.augment", lambda x, kind: x)
    model = tiny_model("m2", alpha=3.0)
    x, y = data(8)
    y = torch.where(torch.arange(8) < 3, y, -1)  # 3 labeled rows, 5 unlabeled
    x_lab, y_lab = data(4, seed=1)
    out = model.m2_loss(Batch(x, y, x_lab, y_lab))
    xl, yl = torch.cat([x[:3], x_lab]), torch.cat([y[:3], y_lab])
    bound = torch.cat([model.pair_bound(xl, yl), model._negative_elbo(x[3:])]).mean()
    ce = torch.nn.functional.cross_entropy(model.cls(xl), yl)
    assert torch.allclose(out.loss, bound + 3.0 * ce, atol=1e-4)
    assert out.logs["bound_unlabeled"] == pytest.approx(float(model._negative_elbo(x[3:]).mean().detach()), abs=1e-3)


def test_bound_gradcheck_in_float64(no_noise):
    """The bound's gradient against finite differences along 6 random directions of the images
    (all 784 pixels of every image would take minutes: 2 evaluations per input)."""
    model = tiny_model("m2").double()
    x, _ = data(3, labeled=False)
    x = x.double().clamp(0.05, 0.95)
    directions = 0.01 * torch.randn(6, *x.shape, dtype=torch.float64)

    def bound(v):
        return model._negative_elbo(x + torch.einsum("k,k...->...", v, directions))

    v = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(bound, (v,), eps=1e-6, atol=1e-4)


def test_likelihood_sums_over_classes_and_is_above_the_bound():
    """log p(x) = log sum_y p(y) p(x | y): against a direct sum of per-class importance
    estimates, and (Jensen, many samples) above -U(x)."""
    model = tiny_model("m2")
    model.eval()
    x, _ = data(4, labeled=False)
    torch.manual_seed(1)
    ll = model.log_likelihood(x, k=400)
    assert ll.shape == (4,) and torch.isfinite(ll).all()
    assert (ll > -model.negative_elbo(x) - 1.0).all()
    # a decoder that ignores y and z, and q(z | x, y) = p(z): every importance weight is
    # p(x | y, z) = 2^-784, so log p(x) = log sum_y p(y) 2^-784 exactly
    for p in [*model.dec.parameters(), *model.enc.trunk.heads.parameters()]:
        torch.nn.init.zeros_(p)
    assert torch.allclose(model.log_likelihood(x, k=40), torch.full((4,), -784 * math.log(2)), atol=1e-3)


def test_codes_carry_the_predicted_class_and_samples_the_class_asked_for():
    model = tiny_model("m2")
    model.eval()
    x, _ = data(5)
    code = model.encode(x)
    k = model.num_classes
    assert code.shape == (5, k + 4)
    assert torch.equal(code[:, :k].argmax(1), model.predict_proba(x).argmax(1))
    torch.manual_seed(0)
    a = model.sample(3, torch.tensor([0, 0, 0]))
    torch.manual_seed(0)
    b = model.sample(3, torch.tensor([1, 1, 1]))
    assert not torch.equal(a, b)  # same z, another class
    with pytest.raises(ValueError, match="sampler"):
        build_run_config(family_raw("m2", model={"sampler": "gaussian"}))


def test_m2_gan_splits_the_bound_from_the_decoders_adversarial_update():
    """The bound trains classifier and encoder only (through the decoder); the decoder's step
    adds the critic's generator term and hands its fakes to the critic's step."""
    model = tiny_model("m2_gan")
    steps = model.phases()[0].steps
    assert [(s.name, s.groups, s.through) for s in steps] == [
        ("m2", ("cls", "enc"), ("dec",)), ("dec", ("dec",), ("disc",)), ("disc", ("disc",), ())]
    x, y = data(8, labeled=False)
    x_lab, y_lab = data(4, seed=1)
    b = Batch(x, y, x_lab, y_lab)
    out = steps[1].loss(b)
    assert {"recon", "adv"} <= set(out.logs) and out.logs["adv"] > 0
    fakes = b.shared["fakes"]
    assert len(fakes) == 1 and fakes[0].shape == x.shape and not fakes[0].requires_grad
    steps[2].loss(b)
    assert "fakes" not in b.shared  # the critic took them, once


def test_consistency_adds_the_pseudo_label_term_of_the_unlabeled_images(no_noise, monkeypatch):
    """consistency_weight w adds w * CE(strong view, argmax of the clean view) over the
    unlabeled images; threshold 0 takes every pseudo-label."""
    monkeypatch.setattr("ssavae.models.semisup.augment", lambda x, kind: x)
    monkeypatch.setattr("ssavae.models.m2.strong", lambda x, kind, unit: x.flip(-1))
    x, _ = data(8, labeled=False)
    x_lab, y_lab = data(4, seed=1)
    plain = tiny_model("m2").m2_loss(Batch(x, torch.full((8,), -1), x_lab, y_lab))
    model = tiny_model("m2", consistency_weight=2.0, consistency_threshold=0.0)
    out = model.m2_loss(Batch(x, torch.full((8,), -1), x_lab, y_lab))
    q = model.cls(x).softmax(-1)
    want = torch.nn.functional.cross_entropy(model.cls(x.flip(-1)), q.argmax(1)).detach()
    assert out.logs["consistency"] == pytest.approx(float(want), abs=1e-4)
    assert float((out.loss - plain.loss).detach()) == pytest.approx(2.0 * float(want), abs=1e-3)
    assert out.logs["confident"] == 1.0
