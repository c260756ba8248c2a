"""The conditional and adversarial hybrids (METHODS.md sections 3-5): CVAE, VAE-GAN, CVAE+CGAN."""
import math

import pytest
import torch

from ssavae.errors import CapabilityError
from ssavae.eval.summary import style_transfer
from ssavae.models import Batch

from test_models import _overfit, data, tiny_model


def test_cvae_trains_on_labeled_examples_only():
    """Unlabeled images of the mixed batch change nothing (no unconditioned path trains on
    them); its labeled rows and the labeled stream do. Catches a CVAE loss over batch.x."""
    model = tiny_model("cvae")
    x_lab, y_lab = data(8, seed=1)
    x_a, _ = data(16, labeled=False)
    x_b = torch.rand_like(x_a)
    unlabeled = torch.full((16,), -1)

    def loss(b):
        torch.manual_seed(0)
        return model.cvae_loss(b).loss.item()

    assert loss(Batch(x_a, unlabeled, x_lab, y_lab)) == loss(Batch(x_b, unlabeled, x_lab, y_lab))
    y_some = unlabeled.clone()
    y_some[:4] = torch.tensor([0, 1, 2, 3])
    assert loss(Batch(x_a, y_some, x_lab, y_lab)) != loss(Batch(x_b, y_some, x_lab, y_lab))
    assert abs(loss(Batch(x_a, unlabeled, x_lab, y_lab)) - 784 * math.log(2)) < 60  # at init


def test_cvae_label_steers_the_decoder_and_style_transfer():
    model = tiny_model("cvae")
    x, y = data(16)
    first, out = _overfit(model, model.cvae_loss, Batch(x, y, x, y))
    assert out.loss.item() < first / 3
    model.eval()
    z = model.encode(x[:4], y[:4])
    as_0, as_1 = model.decode(z, torch.zeros(4)), model.decode(z, torch.ones(4))
    assert (as_0 - as_1).abs().mean() > 1e-3  # the label is an input the decoder uses
    with pytest.raises(CapabilityError, match="needs y"):
        model.sample(4)
    grid = style_transfer(model, x[:3], y[:3])
    assert grid.shape == (3 * 5, 1, 28, 28)
    torch.testing.assert_close(grid[0], x[0])  # each row starts with its source
    torch.testing.assert_close(grid[1:5], model.decode(model.encode(x[:1], y[:1]).expand(4, -1),
                                                       torch.arange(4)))
