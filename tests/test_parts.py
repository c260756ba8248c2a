"""Network parts, priors and the labeled stream."""
import math

import numpy as np
import pytest
import torch

from ssavae.data import LabeledStream
from ssavae.nets import (Categorical, Decoder, DeterministicEncoder, Discriminator, GaussianEncoder,
                         GaussianMixture, NetSpec, StandardNormal, SwissRoll, Trunk, make_prior)
from ssavae.nets.parts import ResizeConv2d


def test_trunk_named_heads_features_and_conditions():
    t = Trunk((1, 28, 28), NetSpec("conv"), {"y_logits": 10, "mu": 4, "logvar": 4}, cond_dim=3,
              cond_channels=1)
    x, cond, obs = torch.rand(2, 1, 28, 28), torch.eye(3)[:2], torch.rand(2, 1, 28, 28)
    out = t(x, cond, obs)
    assert {k: v.shape for k, v in out.items()} == {"y_logits": (2, 10), "mu": (2, 4), "logvar": (2, 4)}
    assert len(t.features(x, cond, obs)) == t.n_features == 3  # two conv blocks + the dense layer
    with pytest.raises(ValueError, match="cond_image"):
        t(x, cond)
    with pytest.raises(ValueError, match="conditional"):
        t(x, cond_image=obs)


def test_encoders_decoders_and_resize_conv():
    x = torch.rand(3, 3, 32, 32)
    mu, logvar = GaussianEncoder((3, 32, 32), 5)(x)
    assert mu.shape == logvar.shape == (3, 5)
    assert DeterministicEncoder((3, 32, 32), 5)(x).shape == (3, 5)
    for up in ("transposed", "resize", "bilinear"):
        dec = Decoder((3, 32, 32), 5, NetSpec(upsample=up))
        assert dec(mu).shape == (3, 3, 32, 32)
        modes = {m.mode for m in dec.modules() if isinstance(m, torch.nn.Upsample)}
        kinds = {type(m).__name__ for m in dec.modules()}
        assert modes == {"resize": set(), "bilinear": {"bilinear"}, "transposed": set()}[up]
        assert ("ConvTranspose2d" in kinds) == (up == "transposed")
        assert ("ResizeConv2d" in kinds) == (up == "resize")


def test_resize_conv_is_nearest_upsampling_then_a_3x3_convolution():
    """The folded stride-2 kernel computes exactly Upsample(nearest) + Conv2d(3, padding 1),
    borders included, forward and backward; catches a wrong fold (a tap on the wrong side, a
    transposed kernel) and a layout change that would no longer load 0.3 checkpoints. In float64:
    the two compute the same sums in another order, and in fp32 that order (which differs between
    CPUs' kernels) moves a weight gradient, a sum of 420 products, by 1e-5."""
    torch.manual_seed(0)
    fast = ResizeConv2d(6, 4).double()
    slow = torch.nn.Sequential(torch.nn.Upsample(scale_factor=2), torch.nn.Conv2d(6, 4, 3, 1, 1)).double()
    slow[1].load_state_dict(fast.state_dict())
    x = torch.randn(3, 6, 7, 5, dtype=torch.float64, requires_grad=True)
    out_fast, out_slow = fast(x), slow(x)
    assert out_fast.shape == (3, 4, 14, 10)
    torch.testing.assert_close(out_fast, out_slow)
    g = torch.randn_like(out_fast)
    gx_fast, gw_fast = torch.autograd.grad(out_fast, (x, fast.weight), g)
    gx_slow, gw_slow = torch.autograd.grad(out_slow, (x, slow[1].weight), g)
    torch.testing.assert_close(gx_fast, gx_slow)
    torch.testing.assert_close(gw_fast, gw_slow)
    dec = Decoder((1, 28, 28), 3, NetSpec(upsample="resize"))
    assert {k for k in dec.state_dict() if k.startswith("net.")} == \
        {"net.1.weight", "net.1.bias", "net.4.weight", "net.4.bias"}  # 0.3's keys


def test_spectral_norm_bounds_every_layer():
    disc = Discriminator((1, 28, 28), NetSpec("conv"), n_out=11, spectral_norm=True).train()
    x = torch.rand(4, 1, 28, 28)
    for _ in range(30):  # power iterations converge in training-mode forwards
        logits, _ = disc(x)
    assert logits.shape == (4, 11)
    for m in disc.modules():
        if isinstance(m, torch.nn.Linear):
            assert float(torch.linalg.matrix_norm(m.weight.detach(), 2)) == pytest.approx(1.0, abs=0.05)


def test_mixture_prior_log_prob_and_modes():
    prior = GaussianMixture(3, k=4, radius=4.0, std=0.5)
    z = torch.randn(6, 3)
    comps = torch.distributions.MultivariateNormal(prior.means, 0.25 * torch.eye(3))
    mix = torch.distributions.MixtureSameFamily(torch.distributions.Categorical(torch.ones(4)), comps)
    assert torch.allclose(prior.log_prob(z), mix.log_prob(z), atol=1e-5)
    g = torch.Generator().manual_seed(0)
    s = prior.sample(2000, torch.full((2000,), 2), generator=g)
    assert torch.allclose(s.mean(0), prior.means[2], atol=0.05)
    with pytest.raises(ValueError, match="labels in 0..3"):
        prior.sample(2, torch.tensor([0, 4]))


def test_standard_normal_swiss_roll_and_categorical():
    n = StandardNormal(4)
    z = torch.randn(5, 4)
    assert torch.allclose(n.log_prob(z), torch.distributions.Normal(0, 1).log_prob(z).sum(1))
    with pytest.raises(ValueError, match="no modes"):
        n.sample(2, torch.tensor([0, 1]))
    roll = SwissRoll(2, k=5)
    g = torch.Generator().manual_seed(0)
    radius = [roll.sample(500, torch.full((500,), k), generator=g).norm(dim=1).mean() for k in range(5)]
    assert all(a < b for a, b in zip(radius, radius[1:]))  # later segments lie further out
    cat = Categorical(3)
    s = cat.sample(6, torch.tensor([0, 1, 2, 2, 1, 0]))
    assert torch.equal(s.argmax(1), torch.tensor([0, 1, 2, 2, 1, 0])) and (s.sum(1) == 1).all()
    assert torch.allclose(cat.log_prob(s), torch.full((6,), -math.log(3)))
    assert cat.log_prob(torch.tensor([[0.5, 0.5, 0.0]])).item() == -math.inf
    with pytest.raises(ValueError, match="unknown prior"):
        make_prior("uniform", 2, 10)


def test_labeled_stream_draws_only_labels_cycles_all_and_is_a_function_of_t():
    y = np.full(100, -1)
    y[[3, 17, 42, 77, 90]] = [0, 1, 2, 1, 0]
    x = np.arange(100, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    stream = LabeledStream(x, y, batch_size=4, seed=7)
    seen = torch.cat([stream.batch(t)[0][:, 0] for t in range(5)]).long()  # 20 draws, 4 passes
    assert set(seen.tolist()) == {3, 17, 42, 77, 90}
    for i in range(4):  # each pass of 5 draws holds every labeled example once
        assert sorted(seen[5 * i:5 * i + 5].tolist()) == [3, 17, 42, 77, 90]
    again = LabeledStream(x, y, batch_size=4, seed=7)
    assert torch.equal(again.batch(3)[0], stream.batch(3)[0])  # resume: batch t alone
    xb, yb = LabeledStream(x, y, batch_size=12, seed=0).batch(0)  # larger than the subset
    assert len(yb) == 12 and (yb >= 0).all() and torch.equal(yb, torch.from_numpy(y)[xb[:, 0].long()])
    with pytest.raises(ValueError, match="no"):
        LabeledStream(x, np.full(100, -1), 4)


def test_fitted_gaussian_recovers_per_class_gaussians():
    from ssavae.nets import FittedGaussian

    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 2, generator=g) * torch.tensor([2.0, 0.5]) + torch.tensor([5.0, -1.0])
    b = torch.randn(2000, 2, generator=g) - 4
    prior = FittedGaussian(2, num_classes=2)
    assert torch.allclose(prior.sample(3, generator=g).std(), torch.tensor(1.0), atol=2)  # N(0, I) until fit
    prior.fit(torch.cat([a, b]), torch.cat([torch.zeros(4000), torch.ones(2000)]))
    assert torch.allclose(prior.means[0], torch.tensor([5.0, -1.0]), atol=0.1)
    cov0 = prior.scale_tril[0] @ prior.scale_tril[0].T
    assert torch.allclose(cov0, torch.diag(torch.tensor([4.0, 0.25])), atol=0.2)
    assert prior.weights.tolist() == pytest.approx([2 / 3, 1 / 3])
    s = prior.sample(3000, torch.full((3000,), 1), generator=g)
    assert torch.allclose(s.mean(0), torch.tensor([-4.0, -4.0]), atol=0.1)
    mix = prior.sample(6000, generator=g)
    assert abs(float((mix[:, 0] > 0).float().mean()) - 2 / 3) < 0.03
    z = torch.randn(5, 2)
    comps = torch.distributions.MultivariateNormal(prior.means, scale_tril=prior.scale_tril)
    oracle = torch.logsumexp(comps.log_prob(z[:, None]) + prior.weights.log(), 1)
    assert torch.allclose(prior.log_prob(z), oracle)
    with pytest.raises(ValueError, match="labels"):
        prior.fit(a)
