import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Normal, kl_divergence

from ssavae import losses


def test_gaussian_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(5, 7), torch.randn(5, 7)
    q = Normal(mu, (0.5 * logvar).exp())
    oracle = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(1)
    assert torch.allclose(losses.gaussian_kl(mu, logvar), oracle, atol=1e-5)
    assert losses.gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max() == 0


def test_gaussian_kl_between_matches_torch_distributions():
    torch.manual_seed(1)
    a = [torch.randn(4, 3) for _ in range(4)]
    oracle = kl_divergence(Normal(a[0], (0.5 * a[1]).exp()), Normal(a[2], (0.5 * a[3]).exp())).sum(1)
    assert torch.allclose(losses.gaussian_kl_between(*a), oracle, atol=1e-5)


def test_bernoulli_nll_formula_and_init_value():
    torch.manual_seed(2)
    logits, x = torch.randn(3, 1, 4, 4), torch.rand(3, 1, 4, 4).round()
    oracle = -Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(losses.bernoulli_nll(logits, x), oracle, atol=1e-5)
    # logits 0 = a fair coin per pixel: 784 ln 2 = 543.4 nats for a 28x28 image
    nll0 = losses.bernoulli_nll(torch.zeros(2, 1, 28, 28), torch.rand(2, 1, 28, 28))
    assert torch.allclose(nll0, torch.full((2,), 784 * math.log(2)))


def test_gaussian_nll_and_log_normal():
    torch.manual_seed(3)
    m, x, lv = torch.randn(4, 6), torch.randn(4, 6), torch.randn(4, 6)
    oracle = -Normal(m, (0.5 * lv).exp()).log_prob(x).sum(1)
    assert torch.allclose(losses.gaussian_nll(m, x, lv), oracle, atol=1e-5)
    assert torch.allclose(losses.log_normal(x, m, lv), -oracle, atol=1e-5)
    assert torch.allclose(losses.log_normal(x), Normal(0.0, 1.0).log_prob(x).sum(1), atol=1e-5)
    assert torch.allclose(losses.gaussian_nll(m, x, reduction="mean") * 6,
                          losses.gaussian_nll(m, x), atol=1e-5)


def test_gan_losses_at_logit_zero_are_ln2():
    z = torch.zeros(3, 1)
    assert torch.allclose(losses.gan_g_loss(z), torch.full((3,), math.log(2)))
    assert torch.allclose(losses.gan_d_loss(z, z), torch.full((3,), 2 * math.log(2)))
    # a confident, correct discriminator has a small loss; the fooled generator a large one
    assert losses.gan_d_loss(torch.full((1, 1), 9.0), torch.full((1, 1), -9.0)).item() < 1e-3
    assert losses.gan_g_loss(torch.full((1, 1), -9.0)).item() > 8.9


def test_masked_cross_entropy_and_labeled_mean():
    logits = torch.randn(4, 3)
    y = torch.tensor([0, -1, 2, -1])
    ce = losses.masked_cross_entropy(logits, y)
    assert ce[1] == 0 and ce[3] == 0
    assert torch.allclose(ce[[0, 2]], F.cross_entropy(logits[[0, 2]], y[[0, 2]], reduction="none"))
    assert torch.allclose(losses.labeled_mean(ce, y), ce[[0, 2]].mean())
    none = torch.full((4,), -1)
    out = losses.labeled_mean(losses.masked_cross_entropy(logits.requires_grad_(), none), none)
    assert out.item() == 0 and torch.isfinite(out)
    out.backward()
    assert torch.isfinite(logits.grad).all()
    # uniform logits: CE = ln K
    assert torch.allclose(losses.masked_cross_entropy(torch.zeros(2, 10), torch.tensor([1, 7])),
                          torch.full((2,), math.log(10)))


def test_feature_distance_weights_and_reductions():
    a = [torch.ones(2, 3), torch.zeros(2, 2, 2)]
    b = [torch.zeros(2, 3), torch.ones(2, 2, 2)]
    assert torch.allclose(losses.feature_distance(a, b), torch.full((2,), 2.0))  # mean: 1 + 1
    assert torch.allclose(losses.feature_distance(a, b, reduction="sum"), torch.full((2,), 7.0))
    assert torch.allclose(losses.feature_distance(a, b, [0.5, 0.0]), torch.full((2,), 0.5))
    with pytest.raises(ValueError):
        losses.feature_distance(a, b[:1])


def test_iwae_bound_is_log_mean_exp_and_gradcheck():
    lw = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(losses.iwae_bound(lw), lw.exp().mean(0).log())
    assert torch.autograd.gradcheck(losses.iwae_bound, (lw,))
    # Jensen: log mean exp >= mean
    assert (losses.iwae_bound(lw) >= lw.mean(0) - 1e-12).all()


def test_m2_unlabeled_bound_matches_explicit_loop_and_gradcheck():
    torch.manual_seed(4)
    logits = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    per_class = torch.rand(3, 4, dtype=torch.float64, requires_grad=True) * 10
    q = logits.softmax(-1)
    oracle = torch.stack([sum(q[b, k] * (per_class[b, k] + q[b, k].log()) for k in range(4))
                          for b in range(3)])
    assert torch.allclose(losses.m2_unlabeled_bound(logits, per_class), oracle)
    assert torch.autograd.gradcheck(losses.m2_unlabeled_bound, (logits, per_class.detach().requires_grad_()))


def test_k_plus_1_gan_losses_against_explicit_probabilities():
    torch.manual_seed(5)
    k = 4
    real, fake = torch.randn(3, k + 1, dtype=torch.float64), torch.randn(3, k + 1, dtype=torch.float64)
    y = torch.tensor([2, -1, 0])
    p_real, p_fake = real.softmax(1), fake.softmax(1)
    oracle = torch.stack([
        -(p_real[0, 2].log()) - p_fake[0, k].log(),
        -(p_real[1, :k].sum().log()) - p_fake[1, k].log(),  # unlabeled: "real, any class"
        -(p_real[2, 0].log()) - p_fake[2, k].log(),
    ])
    assert torch.allclose(losses.class_gan_d_loss(real, y, fake), oracle)
    assert torch.allclose(losses.class_gan_g_loss(fake, torch.tensor([1, 3, 0])),
                          -p_fake[torch.arange(3), torch.tensor([1, 3, 0])].log())
    zeros = torch.zeros(2, 11)  # at logit 0 with K = 10: ln 11 each for a labeled real and a fake
    assert torch.allclose(losses.class_gan_d_loss(zeros, torch.tensor([3, -1]), zeros),
                          torch.tensor([2 * math.log(11), math.log(11) + math.log(11 / 10)]))


def test_nll_weight_scores_only_the_weighted_units():
    """weight = a 0/1 mask: the NLL is the sum over the masked units alone (oracle: the
    unweighted NLL of the selected units), for both likelihoods."""
    torch.manual_seed(0)
    logits, x = torch.randn(3, 1, 4, 4), torch.rand(3, 1, 4, 4)
    mask = (torch.rand(3, 1, 4, 4) > 0.5).float()
    for nll in (losses.bernoulli_nll, losses.gaussian_nll):
        per_unit = [nll(logits[i][mask[i] > 0][None], x[i][mask[i] > 0][None]) for i in range(3)]
        torch.testing.assert_close(nll(logits, x, weight=mask), torch.cat(per_unit))
