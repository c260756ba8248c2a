"""The model contract, run over every registered family, plus family-specific checks."""
import math

import pytest
import torch

from ssavae.config import build_run_config
from ssavae.data import DataInfo
from ssavae.data.synthetic import make_synthetic
from ssavae.engine.run import build_model
from ssavae.registry import list_models

from conftest import tiny_raw

INFO = DataInfo((1, 28, 28), 4, True)


def tiny_model(name, **model):
    raw = tiny_raw(name)
    raw["model"].update(model)
    torch.manual_seed(0)
    return build_model(build_run_config(raw), make_synthetic(64, 16))


def batch(n=16, labeled=True):
    ds = make_synthetic(n, 4)
    x = torch.from_numpy(ds.x_train).float() / 255
    y = torch.from_numpy(ds.y_train) if labeled else torch.full((n,), -1)
    return x, y


@pytest.mark.parametrize("name", list_models())
def test_contract(name):
    model = tiny_model(name)
    groups = model.param_groups()
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids)), "groups overlap"
    assert set(ids) == {id(p) for p in model.parameters()}, "groups miss parameters"
    got_grad = set()
    for phase in model.phases():
        for step in phase.steps:
            for y_labeled in (True, False):
                model.zero_grad(set_to_none=True)
                out = model.step_loss(step.name, batch(labeled=y_labeled))
                assert out.loss.dim() == 0 and torch.isfinite(out.loss), (step.name, y_labeled)
                assert all(not v.requires_grad for v in out.logs.values())
                out.loss.backward()
                got_grad |= {id(p) for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert got_grad == {id(p) for p in model.parameters()}, "some parameter never gets a gradient"
    model.eval()
    x, _ = batch(8)
    z = model.encode(x)
    assert z.shape == (8, model.cfg.latent_dim)
    for out in (model.decode(z), model.reconstruct(x), model.sample(5)):
        assert out.shape[1:] == (1, 28, 28) and out.min() >= 0 and out.max() <= 1
    if hasattr(model, "predict_proba"):
        p = model.predict_proba(x)
        assert p.shape == (8, 4) and torch.allclose(p.sum(1), torch.ones(8))


def test_vae_loss_at_init_is_about_784_ln2():
    model = tiny_model("vae")
    out = model.step_loss("vae", batch(64))
    assert abs(out.logs["recon"].item() - 784 * math.log(2)) < 60
    assert out.logs["kl"].item() < 5


def test_ssavae_ce_at_init_is_about_ln_k():
    model = tiny_model("ssavae")
    out = model.step_loss("vec", batch(64))
    assert abs(out.logs["cls_ce"].item() - math.log(4)) < 0.3


def _overfit(model, step, steps=200, lr=2e-3):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    b = batch(16)
    first = None
    for _ in range(steps):
        opt.zero_grad()
        out = model.step_loss(step, b)
        out.loss.backward()
        opt.step()
        first = first if first is not None else out.loss.item()
    return first, out


def test_vae_overfits_one_batch():
    first, out = _overfit(tiny_model("vae"), "vae")
    assert out.loss.item() < first / 3


def test_ssavae_vec_overfits_one_batch_to_full_accuracy():
    model = tiny_model("ssavae")
    _overfit(model, "vec", steps=150)
    x, y = batch(16)
    assert (model.predict_proba(x).argmax(1) == y).all()


def _changed(model, before):
    return {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}


@pytest.mark.parametrize("step,owner", [("disc", "disc."), ("dec", "dec.")])
def test_ssavae_step2_updates_only_its_own_group(step, owner):
    """The disc step changes only Dis; the decoder step changes only Dec (Enc, Cls frozen)."""
    from ssavae.engine.trainer import Trainer

    model = tiny_model("ssavae")
    phase = model.phases()[1]
    the_step = next(s for s in phase.steps if s.name == step)
    params = [p for g in the_step.groups for p in model.param_groups()[g]]
    opt = torch.optim.SGD(params, lr=0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    Trainer._set_modes(model, phase)
    for p in model.parameters():
        p.requires_grad_(any(p is q for q in params))
    out = model.step_loss(step, batch())
    out.loss.backward()
    assert all(p.grad is None for n, p in model.named_parameters() if n.startswith(("enc.", "cls.")))
    opt.step()
    changed = _changed(model, before)
    assert changed and all(n.startswith(owner) for n in changed)


def test_ssavae_encoder_gets_no_gradient_in_step2_even_if_trainable():
    """Step 2's decoder loss flows *through* the frozen encoder to the decoder only: codes and the
    input's features are computed without a graph, so even a trainable encoder would move only
    by the x_hat path, which the engine blocks by freezing."""
    model = tiny_model("ssavae")
    out = model.step_loss("dec", batch())
    out.loss.backward()
    assert all(p.grad is not None for p in model.dec.parameters())
    model.zero_grad(set_to_none=True)
    for p in model.enc.parameters():
        p.requires_grad_(False)
    model.step_loss("dec", batch()).loss.backward()
    assert all(p.grad is None for p in model.enc.parameters())


def test_ssavae_decoder_init_from_aux_and_config_checks():
    model = tiny_model("ssavae", vec_recon_weight=1.0, decoder_init="aux", lambda_cls=10.0)
    assert "aux" in model.groups()
    model.on_phase_start("decoder")
    assert all(torch.equal(a, b) for a, b in zip(model.aux.state_dict().values(),
                                                  model.dec.state_dict().values()))
    with pytest.raises(Exception, match="vec_recon_weight"):
        tiny_model("ssavae", decoder_init="aux")
    with pytest.raises(Exception, match="feature_layers"):
        tiny_model("ssavae", feature_layers=[7])


def test_ssavae_beta_zero_has_no_discriminator_step_and_per_class_sampling():
    model = tiny_model("ssavae", beta=0.0)
    assert [s.name for s in model.phases()[1].steps] == ["dec"]
    y = torch.tensor([0, 1, 2, 3, 3])
    x = model.sample(5, y=y, generator=torch.Generator().manual_seed(0))
    assert x.shape == (5, 1, 28, 28)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (12,)])
def test_networks_fit_every_data_shape(shape):
    from ssavae.models.ssavae import SSAVAE, SSAVAEConfig

    info = DataInfo(shape, 10, True)
    model = SSAVAE(SSAVAEConfig(latent_dim=2), info)
    x = torch.rand(2, *shape)
    y = torch.tensor([1, -1])
    for step in ("vec", "disc", "dec"):
        out = model.step_loss(step, (x, y))
        assert torch.isfinite(out.loss)
        out.loss.backward()
    assert model.reconstruct(x).shape == x.shape
    expected_arch = "conv" if len(shape) == 3 else "mlp"
    assert any(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == (expected_arch == "conv")


def test_first_batch_sanity_check_explains_problems():
    model = tiny_model("vae")
    x, y = batch(4)
    with pytest.raises(ValueError, match="does not fit the model"):
        model.check_batch((x[:, :, :14], y))
    with pytest.raises(ValueError, match=r"needs \[0, 1\]"):
        model.check_batch((x * 255, y))
    with pytest.raises(ValueError, match="labels range"):
        model.check_batch((x, y + 10))
    model.check_batch((x, y))  # a good batch passes


def test_vae_on_real_valued_vectors_uses_gaussian_likelihood():
    from ssavae.data import Dataset
    from ssavae.models.vae import VAE, VAEConfig

    rng = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=rng) * 3
    ds = Dataset("vec", x.numpy(), torch.zeros(64, dtype=torch.long).numpy(), x[:8].numpy(),
                 torch.zeros(8, dtype=torch.long).numpy(), ["a"])
    model = VAE(VAEConfig(latent_dim=2, mlp_hidden=(32,), hidden=16), ds.info)
    assert model.likelihood == "gaussian"
    out = model.step_loss("vae", (x, torch.zeros(64, dtype=torch.long)))
    assert torch.isfinite(out.loss)
    assert model.sample(3).shape == (3, 6)
    with pytest.raises(ValueError, match="needs data in"):
        VAE(VAEConfig(likelihood="bernoulli"), ds.info)
