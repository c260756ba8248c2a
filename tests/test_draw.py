"""DRAW: the attention filterbanks against the paper's formulas computed
one filter at a time, the KL summed over steps, the likelihood, the canvas figure and the
split of draw_gan's updates (test_models.py covers gradient ownership through the engine)."""
import math

import pytest
import torch

from ssavae.config import build_run_config
from ssavae.data import DataInfo
from ssavae.errors import ConfigError
from ssavae.models import Batch
from ssavae.nets.attention import GaussianAttention
from ssavae.runs import build_model

from conftest import family_raw
from test_models import data, tiny_model


def direct_filter(centre, delta, s2, n, size):
    """F[i, a] of Gregor et al. eq. 19-25 for one image, pixel by pixel (coordinates 1..size)."""
    f = torch.zeros(n, size, dtype=torch.float64)
    for i in range(1, n + 1):
        mu = centre + (i - n / 2 - 0.5) * delta
        for a in range(1, size + 1):
            f[i - 1, a - 1] = math.exp(-(a - mu) ** 2 / (2 * s2))
        f[i - 1] /= f[i - 1].sum()
    return f


@pytest.mark.parametrize("n", [2, 5])
def test_attention_read_and_write_against_the_papers_formulas(n):
    torch.manual_seed(0)
    c, h, w = 2, 9, 7
    att = GaussianAttention(4, (c, h, w), n).double()
    torch.nn.init.zeros_(att.params.bias)  # windows over the image: no filter row sums to ~0
    state = 0.5 * torch.randn(3, 4, dtype=torch.float64)
    x = torch.rand(3, c, h, w, dtype=torch.float64)
    patch = torch.randn(3, c, n, n, dtype=torch.float64)
    read, written = att.read([x], state).view(3, c, n, n), att.write(patch, state)
    p = att.params(state)
    for b in range(3):
        gx_, gy_, log_s2, log_d, log_g = p[b].tolist()
        gx, gy = (w + 1) / 2 * (gx_ + 1), (h + 1) / 2 * (gy_ + 1)
        delta = (max(h, w) - 1) / (n - 1) * math.exp(log_d)
        fx = direct_filter(gx, delta, math.exp(log_s2), n, w)
        fy = direct_filter(gy, delta, math.exp(log_s2), n, h)
        gamma = math.exp(log_g)
        for ch in range(c):
            want_read = torch.tensor([[sum(fy[i, r] * fx[j, col] * x[b, ch, r, col]
                                           for r in range(h) for col in range(w))
                                       for j in range(n)] for i in range(n)]) * gamma
            assert torch.allclose(read[b, ch], want_read, atol=1e-5)
            want_write = torch.tensor([[sum(fy[i, r] * fx[j, col] * patch[b, ch, i, j]
                                            for i in range(n) for j in range(n))
                                        for col in range(w)] for r in range(h)]) / gamma
            assert torch.allclose(written[b, ch], want_write, atol=1e-5)


def test_kl_is_summed_over_the_steps():
    """q(z_t | .) = N(1, I) at every step: KL = T * latent_dim / 2 exactly."""
    model = tiny_model("draw")  # T = 3, latent_dim 3
    for p in [*model.enc.mu.parameters(), *model.enc.logvar.parameters()]:
        torch.nn.init.zeros_(p)
    torch.nn.init.ones_(model.enc.mu.bias)
    x, _ = data(4, labeled=False)
    _, kl, _, codes = model.infer(x)
    assert torch.allclose(kl, torch.full((4,), 3 * 3 / 2))
    assert codes.shape == (4, 9)


def test_likelihood_exact_for_a_blank_writer_and_above_the_bound():
    model = tiny_model("draw")
    model.eval()
    x, _ = data(4, labeled=False)
    torch.manual_seed(1)
    ll = model.log_likelihood(x, k=200)
    assert torch.isfinite(ll).all() and (ll > -model.negative_elbo(x) - 1.0).all()
    # writer adds nothing (p(x | c_T) = 2^-784) and q(z_t | .) = p(z_t): every weight is 2^-784
    for p in [*model.dec.patch.parameters(), *model.enc.mu.parameters(), *model.enc.logvar.parameters()]:
        torch.nn.init.zeros_(p)
    assert torch.allclose(model.log_likelihood(x, k=20), torch.full((4,), -784 * math.log(2)), atol=1e-3)


def test_canvas_steps_end_with_the_sample_and_the_run_writes_the_figures(tmp_path):
    model = tiny_model("draw")
    model.eval()
    steps = model.canvas_steps(5, generator=torch.Generator().manual_seed(3))
    assert steps.shape == (3, 5, 1, 28, 28)
    assert torch.allclose(steps[-1], model.sample(5, generator=torch.Generator().manual_seed(3)))
    assert not torch.allclose(steps[0], steps[-1])
    from ssavae.data.synthetic import make_synthetic
    from ssavae.eval.run_figures import canvas_figures
    from PIL import Image

    paths = canvas_figures(model, make_synthetic(16, 8), tmp_path)
    gif = Image.open(paths[1])
    assert gif.n_frames == 3 and paths[0].exists()


def test_conditional_draw_reads_the_label_and_gaussian_attention_needs_images():
    model = tiny_model("draw_cond")
    model.eval()
    x, y = data(4)
    z = model.encode(x, y)
    assert not torch.equal(model.decode(z, torch.zeros(4)), model.decode(z, torch.ones(4)))
    assert model.phases()[0].steps[0].data == "labeled"
    with pytest.raises(ConfigError, match="attention none"):
        build_model(build_run_config(family_raw("draw", model={"attention": "gaussian"})),
                    DataInfo((12,), 3, True))


def test_draw_gan_writer_step_hands_its_canvases_to_the_critic():
    model = tiny_model("draw_gan")
    steps = model.phases()[0].steps
    assert [(s.name, s.groups, s.through) for s in steps] == [
        ("draw", ("enc", "dec"), ()), ("gen", ("dec",), ("disc",)), ("disc", ("disc",), ())]
    x, y = data(8, labeled=False)
    b = Batch(x, y)
    steps[1].loss(b)
    (fake,) = b.shared["fakes"]
    assert fake.shape == x.shape and not fake.requires_grad
    out = steps[2].loss(b)
    assert "fakes" not in b.shared and {"d_real", "d_fake"} <= set(out.logs)
