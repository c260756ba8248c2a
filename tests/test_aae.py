"""The adversarial autoencoders (METHODS.md section 6): label regularization and the supervised
variant (the contract tests of test_models.py cover their gradient ownership)."""
import torch

from ssavae.models import Batch

from test_models import data, tiny_model


def test_label_regularization_conditions_the_critic_and_draws_mode_y():
    """Slot k of the critic's one-hot for class k, slot K for unlabeled; the prior draw of a
    labeled example comes from its class's mode, an unlabeled one's from any mode."""
    model = tiny_model("aae", latent_dim=2, prior="mixture", label_regularization=True)
    y = torch.tensor([0, 1, 2, 3, -1, -1])
    c = model.critic_condition(y)
    assert c.shape == (6, 5) and c.argmax(1).tolist() == [0, 1, 2, 3, 4, 4]
    torch.manual_seed(0)
    draws = torch.stack([model.prior_draws(y) for _ in range(200)])  # (200, 6, 2)
    nearest = torch.cdist(draws.view(-1, 2), model.target.means).argmin(1).view(200, 6)
    assert (nearest[:, :4] == torch.arange(4)).float().mean() > 0.95
    assert len(nearest[:, 4:].unique()) == 4  # unlabeled draws visit every mode
    assert tiny_model("aae").critic_condition(y) is None


def test_supervised_aae_reconstructs_from_labeled_examples_and_decodes_with_y():
    model = tiny_model("aae_supervised")
    x_lab, y_lab = data(8, seed=1)
    x_a, _ = data(16, labeled=False)
    unlabeled = torch.full((16,), -1)

    def recon(xm):
        torch.manual_seed(0)
        return model.recon_loss(Batch(xm, unlabeled, x_lab, y_lab)).loss.item()

    assert recon(x_a) == recon(torch.rand_like(x_a))  # unlabeled images do not enter it
    z = model.encode(x_lab[:2], y_lab[:2])
    assert not torch.equal(model.decode(z, torch.zeros(2)), model.decode(z, torch.ones(2)))
    step_names = [s.name for s in model.phases()[0].steps]
    assert step_names == ["recon", "disc", "gen"] and model.phases()[0].steps[0].data == "labeled"
