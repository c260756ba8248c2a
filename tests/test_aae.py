"""The adversarial autoencoders: label regularization and the supervised
variant (the contract tests of test_models.py cover their gradient ownership)."""
import pytest
import torch

from ssavae.errors import ConfigError
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
    draws = torch.stack([model.real_codes("z", y) for _ in range(200)])  # (200, 6, 2)
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


def test_semi_aae_steps_critics_and_classification_on_the_labeled_stream():
    """Two critics (y against one-hots of Cat(K), z against N(0, I)), each its own step; the
    encoder fools both; the classification step reads the labeled stream (and, with the
    consistency term, the mixed batch's unlabeled images: the test below)."""
    model = tiny_model("aae_semi", consistency_weight=0.0)
    steps = model.phases()[0].steps
    assert [(s.name, s.groups, s.data) for s in steps] == [
        ("recon", ("enc", "dec"), "mixed"), ("disc_y", ("disc_y",), "mixed"),
        ("disc_z", ("disc_z",), "mixed"), ("gen", ("enc",), "mixed"), ("cls", ("enc",), "labeled")]
    assert steps[3].through == ("disc_y", "disc_z")
    x, y = data(16, labeled=False)
    real_y = model.real_codes("y", y)
    assert ((real_y == 0) | (real_y == 1)).all() and (real_y.sum(1) == 1).all()
    assert model.real_codes("z", y).shape == (16, 4)
    codes = model.codes(x)
    assert torch.allclose(codes["y"].sum(1), torch.ones(16))
    # the generator's loss is the sum of fooling each critic
    out = model.gen_loss(Batch(x, y))
    assert torch.isclose(out.loss, out.logs["g_loss_y"] + out.logs["g_loss_z"])
    x_lab, y_lab = data(8, seed=1)
    cls = [s for s in steps if s.name == "cls"][0].loss

    def ce(xm):
        torch.manual_seed(0)
        return cls(Batch(xm, y, x_lab, y_lab)).loss.item()

    assert ce(x) == ce(torch.rand_like(x))  # without consistency the mixed batch does not enter
    # sampling a class puts its one-hot in the code the decoder reads
    z = model.sample_codes(6, torch.tensor([0, 1, 2, 3, 0, 1]), None)
    assert z[:, :4].argmax(1).tolist() == [0, 1, 2, 3, 0, 1]


def test_critic_steps_share_one_encoder_pass_per_batch():
    """The fakes for both critics come from one encoder pass (after the reconstruction update),
    computed by the first critic step and reused, detached, by the second."""
    model = tiny_model("aae_semi")
    calls = []
    model.enc.register_forward_hook(lambda *a: calls.append(1))
    x, y = data(16, labeled=False)
    batch = Batch(x, y)
    for step in model.phases()[0].steps[1:3]:
        step.loss(batch)
    assert len(calls) == 1 and not batch.shared["codes"]["y"].requires_grad
    model.phases()[0].steps[2].loss(Batch(x, y))  # a new batch computes its own
    assert len(calls) == 2


def test_cluster_aae_learns_without_labels():
    model = tiny_model("aae_cluster")
    assert [s.name for s in model.phases()[0].steps] == ["recon", "disc_y", "disc_z", "gen"]
    assert model.cluster_proba(data(8)[0]).shape == (8, 6)
    with pytest.raises(ConfigError, match="use_labels"):
        tiny_model("aae_cluster", use_labels=True)
    with pytest.raises(ConfigError, match="num_clusters"):
        tiny_model("aae_semi", num_clusters=6)  # a classifier needs one cluster per class


def test_dimred_head_penalty_pushes_close_heads_apart_and_codes_are_w_y_plus_z():
    model = tiny_model("aae_dimred", head_margin=3.0)
    w = model.cluster_heads.weight  # (n, K), initialized on a circle of radius eta
    assert float(model.head_penalty().detach()) == 0.0
    with torch.no_grad():
        w[:, 1] = w[:, 0] + 0.5  # heads 0 and 1 only |(0.5, 0.5)| apart
    penalty = model.head_penalty()
    assert torch.isclose(penalty, torch.tensor(3.0 - 0.5 * 2 ** 0.5))
    penalty.backward()
    step = -w.grad  # gradient descent moves head 1 away from head 0
    assert float((step[:, 1] - step[:, 0]) @ (w[:, 1] - w[:, 0]).detach()) > 0
    x, _ = data(8)
    codes = model.codes(x)
    assert torch.allclose(model.encode(x), codes["y"] @ w.detach().t() + codes["z"], atol=1e-5)
    g = torch.Generator().manual_seed(0)
    drawn = model.sample_codes(400, torch.full((400,), 2), g)  # around head 2, spread style_std
    assert torch.allclose(drawn.mean(0), w[:, 2].detach(), atol=0.2)


def test_cluster_to_class_maps_on_hand_cases():
    from ssavae.eval.metrics import clusters_by_confidence, clusters_by_majority, hungarian_accuracy

    proba = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55]])
    y = torch.tensor([2, 0, 1, 0])
    assert clusters_by_confidence(proba, y).tolist() == [2, 1]  # images 0 and 2 are the surest
    assign = torch.tensor([0, 0, 0, 1, 1, 2])
    labels = torch.tensor([1, 1, 0, 2, 2, 0])
    assert clusters_by_majority(assign, labels, 4, 3).tolist() == [1, 2, 0, 0]  # 3 empty: overall
    # the best one-to-one matching against brute force over all permutations
    import itertools
    g = torch.Generator().manual_seed(0)
    a, t = torch.randint(4, (50,), generator=g), torch.randint(4, (50,), generator=g)
    best = max(float((torch.tensor(p)[a] == t).float().mean()) for p in itertools.permutations(range(4)))
    assert abs(hungarian_accuracy(a, t, 4) - best) < 1e-6


def test_semi_aae_consistency_reads_unlabeled_images_only_when_switched_on():
    """consistency_weight 0 (the paper's phases): the unlabeled images of the mixed batch do not enter the
    classification step; > 0 with threshold 0: they do, through their pseudo-labels."""
    x_lab, y_lab = data(8, seed=1)
    x_u, _ = data(16, labeled=False)
    y_u = torch.full((16,), -1)

    def ce(model, xm):
        torch.manual_seed(0)
        step = model.phases()[0].steps[-1]
        return step.loss(Batch(xm, y_u, x_lab, y_lab)).loss.item()

    plain = tiny_model("aae_semi", consistency_weight=0.0)
    assert ce(plain, x_u) == ce(plain, torch.rand_like(x_u))
    cons = tiny_model("aae_semi", consistency_weight=1.0, consistency_threshold=0.0)
    assert ce(cons, x_u) != ce(cons, torch.rand_like(x_u))
    assert ce(cons, x_u) > ce(plain, x_u)  # same weights (seed 0): the extra term is positive


def test_classification_step_learning_rate_scale_and_its_override(tmp_path):
    """Each step has its own Adam, so aae_semi's classification step gets its weight through
    its learning rate: cls_lr_scale times train.lr, unless train.step_lr names the step."""
    from ssavae.config import build_run_config
    from ssavae.engine import Trainer

    from conftest import family_raw

    def lrs(**train):
        raw = family_raw("aae_semi", model={"cls_lr_scale": 3.0}, train=train)
        trainer = Trainer(build_run_config(raw).train)
        trainer.setup(tiny_model("aae_semi", cls_lr_scale=3.0))
        return {k: o.param_groups[0]["lr"] for k, o in trainer.optimizers.items()}

    base = lrs(lr=1e-3)
    assert base["cls"] == pytest.approx(3e-3) and base["recon"] == pytest.approx(1e-3)
    assert lrs(lr=1e-3, step_lr={"cls": 5e-4})["cls"] == pytest.approx(5e-4)


def test_marginal_kl_to_uniform_is_zero_for_balanced_use_and_log_k_for_one_cluster():
    from math import log

    from ssavae.losses import marginal_kl_to_uniform
    k = 8
    assert float(marginal_kl_to_uniform(torch.eye(k))) == pytest.approx(0.0, abs=1e-6)
    assert float(marginal_kl_to_uniform(torch.eye(k)[[3] * 5])) == pytest.approx(log(k), rel=1e-5)
    p = torch.softmax(torch.randn(5, k), 1)  # the KL of the batch mean, not a mean of KLs
    m = p.mean(0)
    assert float(marginal_kl_to_uniform(p)) == pytest.approx(float((m * (m * k).log()).sum()), rel=1e-5)


def test_cluster_balance_term_joins_the_gen_step_with_its_weight():
    x, _ = data(16, labeled=False)
    batch = Batch(x, torch.full((16,), -1))
    model = tiny_model("aae_cluster", balance_weight=2.0)
    gen = model.phases()[0].steps[-1]
    out = gen.loss(batch)
    from ssavae.losses import marginal_kl_to_uniform
    with torch.no_grad():
        expected = 2.0 * marginal_kl_to_uniform(model.codes(x)["y"])
    assert float(out.logs["g_loss_balance"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(out.loss.detach()) == pytest.approx(float(out.logs["g_loss_y"] + out.logs["g_loss_z"] + expected), rel=1e-5)
    model.cfg.balance_weight = 0.0
    assert "g_loss_balance" not in gen.loss(batch).logs
    with pytest.raises(ConfigError, match="balance_weight"):
        tiny_model("aae_cluster", balance_weight=-1.0)


@pytest.mark.parametrize("critic_codes,passes", [("fresh", 3), ("recon", 2)])
def test_aae_critic_reads_the_reconstruction_steps_codes_when_asked(critic_codes, passes):
    """``critic_codes: recon``: the critic's fakes are the reconstruction step's codes, detached,
    so a batch's three steps run two encoder passes instead of three; with ``fresh`` the critic
    encodes again (the codes of the encoder the reconstruction update left)."""
    model = tiny_model("aae", critic_codes=critic_codes)
    calls = []
    model.enc.register_forward_hook(lambda *a: calls.append(1))
    x, y = data(16, labeled=False)
    batch = Batch(x, y)
    recon, disc, gen = model.phases()[0].steps
    z = model.code(x).detach()
    calls.clear()
    recon.loss(batch)
    disc.loss(batch)
    gen.loss(batch)
    assert len(calls) == passes
    fakes = batch.shared["codes"]["z"]
    assert not fakes.requires_grad and torch.equal(fakes, z)  # (no update in between here)
    with pytest.raises(ConfigError, match="critic_codes must be 'fresh' for aae_supervised"):
        tiny_model("aae_supervised", critic_codes="recon")
