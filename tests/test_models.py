"""The model contract, run over every registered family, plus family-specific checks.

Each contract test names the bug it catches: a group no step trains (e.g. "cls" dropped from
SSAVAE's VEC step), a loss that leaks gradient into a group it neither trains nor declares
(fakes not detached for a discriminator, a frozen encoder used with a live graph), an engine
update that moves another step's parameters or optimizer state.
"""
import math

import pytest
import torch

from ssavae.config import build_run_config
from ssavae.data import DataInfo
from ssavae.data.synthetic import make_synthetic
from ssavae.engine import Trainer, TrainingError, check_contract
from ssavae.errors import CapabilityError, ConfigError
from ssavae.models import Batch, GenerativeModel, get_model_class, list_models
from ssavae.runs import build_model

from conftest import family_raw, tiny_raw

INFO = DataInfo((1, 28, 28), 4, True)


def tiny_model(name, **model):
    torch.manual_seed(0)
    return build_model(build_run_config(family_raw(name, model=model)), make_synthetic(64, 16))


def data(n=16, labeled=True, seed=0):
    ds = make_synthetic(n, 4, seed=seed)
    x = torch.from_numpy(ds.x_train).float() / 255
    y = torch.from_numpy(ds.y_train) if labeled else torch.full((n,), -1)
    return x, y


def batch_for(step, n=16, labeled=True) -> Batch:
    """A Batch as the engine builds it for ``step``: the mixed batch, plus the labeled stream."""
    x, y = data(n, labeled)
    if step.data == "labeled":
        x_lab, y_lab = data(8, seed=1)
        return Batch(x, y, x_lab, y_lab)
    return Batch(x, y)


def all_steps(model):
    return [(phase, step) for phase in model.phases() for step in phase.steps]


def grads_by_group(model) -> set:
    groups = {id(p): g for g, ps in model.param_groups().items() for p in ps}
    return {groups[id(p)] for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0}


@pytest.mark.parametrize("name", list_models())
def test_contract(name):
    model = tiny_model(name)
    check_contract(model, model.param_groups())  # disjoint, covering, every group trained
    for _, step in all_steps(model):
        for labeled in (True, False):  # a mixed batch without any label stays finite
            out = step.loss(batch_for(step, labeled=labeled))
            assert out.loss.dim() == 0 and torch.isfinite(out.loss), (step.name, labeled)
            assert all(not v.requires_grad for v in out.logs.values())
    model.eval()
    x, y = data(8)
    y_arg = y if model.conditional else None
    z = model.encode(x, y_arg)
    assert z.shape == (8, model.code_dim)
    if model.generative:
        for out in (model.decode(z, y_arg), model.reconstruct(x, y_arg),
                    model.sample(5, y_arg[:5] if model.conditional else None)):
            assert out.shape[1:] == (1, 28, 28) and out.min() >= 0 and out.max() <= 1
    else:
        for call in (lambda: model.decode(z), lambda: model.reconstruct(x), lambda: model.sample(2)):
            with pytest.raises(CapabilityError, match="not generative"):
                call()
    if model.has_classifier:
        p = model.predict_proba(x)
        assert p.shape == (8, 4) and torch.allclose(p.sum(1), torch.ones(8))
    else:
        with pytest.raises(CapabilityError, match="no classifier"):
            model.predict_proba(x)
    if model.clusters:
        q = model.cluster_proba(x)
        assert q.shape[0] == 8 and q.shape[1] >= 2 and torch.allclose(q.sum(1), torch.ones(8))
    else:
        with pytest.raises(CapabilityError, match="no clusters"):
            model.cluster_proba(x)
    if model.conditional:
        with pytest.raises(CapabilityError, match="needs y"):
            model.decode(z)
    elif model.generative:
        with pytest.raises(CapabilityError, match="not conditional"):
            model.decode(z, y)
    if model.generative and not (model.conditional or model.class_sampling):
        with pytest.raises(CapabilityError):
            model.sample(4, y[:4])


@pytest.mark.parametrize("name", list_models())
def test_every_parameter_gets_a_gradient_in_a_step_that_owns_it(name):
    """Catches a group missing from its step (e.g. "cls" dropped from SSAVAE's VEC step)."""
    model = tiny_model(name)
    trained = set()
    for _, step in all_steps(model):
        owned = {id(p) for g in step.groups for p in model.param_groups()[g]}
        for p in model.parameters():  # as the engine does: only the step's groups trainable
            p.requires_grad_(id(p) in owned)
        model.zero_grad(set_to_none=True)
        step.loss(batch_for(step)).loss.backward()
        trained |= {id(p) for p in model.parameters()
                    if id(p) in owned and p.grad is not None and p.grad.abs().sum() > 0}
    missing = [n for n, p in model.named_parameters() if id(p) not in trained]
    assert not missing, f"never trained by a step that owns them: {missing[:4]}"


@pytest.mark.parametrize("name", list_models())
def test_a_step_sends_gradient_only_to_its_groups_and_those_it_declares_through(name):
    """With every parameter trainable, a step's loss reaches only its own groups and the ones
    it declares ``through``, never a group its phase freezes. Catches fakes shown to a
    discriminator without detaching them, and a frozen network used with a live graph."""
    model = tiny_model(name)
    for phase, step in all_steps(model):
        model.train()
        for p in model.parameters():
            p.requires_grad_(True)
        model.zero_grad(set_to_none=True)
        step.loss(batch_for(step)).loss.backward()
        reached = grads_by_group(model)
        assert reached >= set(step.groups), (step.name, reached)
        assert reached <= set(step.groups) | set(step.through), (step.name, reached)
        assert not reached & set(phase.frozen), (step.name, reached)


@pytest.mark.parametrize("name", list_models())
def test_engine_update_changes_only_the_owner_and_its_optimizer(tmp_path, name):
    """Through the engine's own update on a fully trainable model: every parameter and every
    optimizer state before and after one update of each step."""
    raw = family_raw(name)
    cfg = build_run_config(raw)
    model = tiny_model(name)
    trainer = Trainer(cfg.train)
    trainer.setup(model)
    for _, step in all_steps(model):
        for p in model.parameters():
            p.requires_grad_(True)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        opt_before = {k: repr(o.state_dict()["state"]) for k, o in trainer.optimizers.items()}
        trainer.update(step, batch_for(step))
        owned = {n for g in step.groups for n, _ in model.groups()[g].named_parameters(prefix=g)}
        changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
        assert changed and changed <= owned, (step.name, sorted(changed - owned)[:3])
        opt_changed = {k for k, o in trainer.optimizers.items() if repr(o.state_dict()["state"]) != opt_before[k]}
        assert opt_changed == {step.name}


def test_engine_refuses_a_group_no_step_trains():
    model = tiny_model("ssavae")
    original = model.phases

    def without_cls():
        phases = original()
        vec = phases[0].steps[0]
        fake = type(vec)(vec.name, ("enc",), vec.loss, vec.data)
        return [type(phases[0])("vec", (fake,))] + phases[1:]

    model.phases = without_cls
    with pytest.raises(TrainingError, match="cls"):
        check_contract(model, model.param_groups())


def test_a_declared_capability_must_be_implemented():
    with pytest.raises(TypeError, match="_predict_proba"):
        class Broken(GenerativeModel):  # noqa: F841
            has_classifier = True


def test_vae_loss_at_init_is_about_784_ln2():
    model = tiny_model("vae")
    out = model.vae_loss(Batch(*data(64)))
    assert abs(out.logs["recon"].item() - 784 * math.log(2)) < 60
    assert out.logs["kl"].item() < 5


def test_ssavae_ce_at_init_is_about_ln_k():
    model = tiny_model("ssavae")
    x, y = data(64)
    out = model.vec_loss(Batch(x, y, x[:8], y[:8]))
    assert abs(out.logs["cls_ce"].item() - math.log(4)) < 0.3


def test_ssavae_vec_learns_from_the_labeled_stream_when_the_mixed_batch_has_no_label():
    """The VEC's CE comes from the labeled stream: with an all-unlabeled mixed batch it is still
    positive, and it falls when the classifier learns the stream's labels."""
    model = tiny_model("ssavae", augment="none")
    x, _ = data(16, labeled=False)
    x_lab, y_lab = data(16, seed=1)
    b = Batch(x, torch.full((16,), -1), x_lab, y_lab)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    first = model.vec_loss(b).logs["cls_ce"].item()
    for _ in range(100):
        opt.zero_grad()
        model.vec_loss(b).loss.backward()
        opt.step()
    assert first > 1.0 and model.vec_loss(b).logs["cls_ce"].item() < 0.1


def _overfit(model, loss, b, steps=200, lr=2e-3):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    first = None
    for _ in range(steps):
        opt.zero_grad()
        out = loss(b)
        out.loss.backward()
        opt.step()
        first = first if first is not None else out.loss.item()
    return first, out


def test_vae_overfits_one_batch():
    model = tiny_model("vae")
    first, out = _overfit(model, model.vae_loss, Batch(*data(16)))
    assert out.loss.item() < first / 3


def test_ssavae_vec_overfits_one_batch_to_full_accuracy():
    model = tiny_model("ssavae")
    x, y = data(16)
    _overfit(model, model.vec_loss, Batch(x, y, x, y), steps=150)
    assert (model.predict_proba(x).argmax(1) == y).all()


def test_ssavae_decoder_init_from_aux_and_config_checks():
    model = tiny_model("ssavae", vec_recon_weight=1.0, decoder_init="aux", lambda_cls=10.0)
    assert "aux" in model.groups()
    model.on_phase_start("decoder")
    assert all(torch.equal(a, b) for a, b in zip(model.aux.state_dict().values(),
                                                  model.dec.state_dict().values()))
    with pytest.raises(Exception, match="vec_recon_weight"):
        tiny_model("ssavae", vec_recon_weight=0.0, decoder_init="aux")
    with pytest.raises(Exception, match="feature_layers"):
        tiny_model("ssavae", feature_layers=[7])


def test_ssavae_step2_decodes_once_per_batch_and_hands_the_fakes_to_the_discriminator(tmp_path):
    """The decoder update decodes z and z_p in one pass; the discriminator update on the same
    batch reuses those fakes (detached, through ``batch.shared``) instead of decoding again; a
    batch it was not handed fakes for (or a second call) decodes its own. Catches the hand-over
    silently failing (twice the decoder work) and fakes reused beyond their batch."""
    model = tiny_model("ssavae")
    trainer = Trainer(build_run_config(family_raw("ssavae")).train)
    trainer.setup(model)
    calls = []
    model.dec.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    dec_phase = model.phases()[1]
    assert [s.name for s in dec_phase.steps] == ["dec", "disc"]
    x, y = data(16)
    shared = {}
    for step in dec_phase.steps:
        trainer.update(step, Batch(x, y, shared=shared))
    assert calls == [32]  # one pass over 16 posterior and 16 prior codes
    trainer.update(dec_phase.steps[1], Batch(x, y, shared=shared))  # handed once: decodes itself
    trainer.update(dec_phase.steps[0], Batch(x, y))
    trainer.update(dec_phase.steps[1], Batch(x, y))  # another batch: nothing handed
    assert calls == [32, 16, 16, 32, 16, 16]
    calls.clear()
    trainer._run_batch(dec_phase, x, y, running={})  # the engine shares one dict per batch
    assert calls == [32]


def test_ssavae_auxiliary_decoder_default_depends_on_latent_size():
    """Unset, the auxiliary pixel term is on (and seeds step 2's decoder) above 2-D codes, off
    for 2-D maps; an explicit value wins and the saved config records the resolved one."""
    wide, flat = tiny_model("ssavae", latent_dim=8), tiny_model("ssavae", latent_dim=2)
    assert wide.cfg.vec_recon_weight > 0 and wide.cfg.decoder_init == "aux" and "aux" in wide.groups()
    assert flat.cfg.vec_recon_weight == 0 and flat.cfg.decoder_init == "random" and flat.aux is None
    off = tiny_model("ssavae", latent_dim=8, vec_recon_weight=0.0)
    assert off.aux is None and off.cfg.decoder_init == "random"


def test_ssavae_beta_zero_has_no_discriminator_and_samples_per_class():
    model = tiny_model("ssavae", beta=0.0)
    assert [s.name for s in model.phases()[1].steps] == ["dec"] and "disc" not in model.groups()
    y = torch.tensor([0, 1, 2, 3, 3])
    x = model.sample(5, y=y, generator=torch.Generator().manual_seed(0))
    assert x.shape == (5, 1, 28, 28)


def test_schedules_ramp_a_loss_weight_and_bad_ones_are_refused():
    from ssavae.config import ConfigError

    model = tiny_model("ssavae", schedules={"kl_weight": {"kind": "linear", "steps": 100}})
    x, y = data(4)
    at = [model.weight("kl_weight", Batch(x, y, phase_step=t)) for t in (0, 50, 100, 1000)]
    assert at == pytest.approx([0.0, 0.005, 0.01, 0.01])
    cos = tiny_model("vae", schedules={"kl_weight": {"kind": "cosine", "steps": 10, "initial": 0.5}})
    assert cos.weight("kl_weight", Batch(x, y, phase_step=5)) == pytest.approx(0.75)
    for bad in ({"latent_dim": {"kind": "linear", "steps": 5}}, {"kl_weight": {"kind": "step", "steps": 5}},
                {"kl_weight": {"kind": "linear", "steps": 0}}):
        with pytest.raises(ConfigError, match="model.schedules"):
            tiny_model("vae", schedules=bad)


def test_own_parts_replace_default_networks():
    import torch.nn as nn

    class MyEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 6))

        def forward(self, x, cond=None):
            h = self.net(x)
            return h[:, :3], h[:, 3:]

    cfg = build_run_config(tiny_raw("vae", model={"latent_dim": 3}))
    enc = MyEncoder()
    model = build_model(cfg, make_synthetic(16, 4), parts={"enc": enc})
    assert model.enc is enc and model.encode(data(2)[0]).shape == (2, 3)
    with pytest.raises(Exception, match="no part"):
        build_model(cfg, make_synthetic(16, 4), parts={"encoder": enc})


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (12,)])
@pytest.mark.parametrize("name", list_models())
def test_networks_fit_every_data_shape(shape, name):
    raw = family_raw(name, model={"latent_dim": 2})
    for k in ("arch", "hidden", "mlp_hidden"):
        raw["model"].pop(k)
    cfg = build_run_config(raw)
    if get_model_class(name).needs_images and len(shape) != 3:
        with pytest.raises(ConfigError, match="works on images"):
            build_model(cfg, DataInfo(shape, 10, True))
        return
    model = build_model(cfg, DataInfo(shape, 10, True))
    x, y = torch.rand(2, *shape), torch.tensor([1, 3])
    for _, step in all_steps(model):
        b = Batch(x, torch.tensor([1, -1]), x, y) if step.data == "labeled" else Batch(x, y)
        out = step.loss(b)
        assert torch.isfinite(out.loss)
        out.loss.backward()
    if model.generative:
        assert model.reconstruct(x, y if model.conditional else None).shape == x.shape
    if not model.sequential:  # DRAW reads and writes through attention windows instead
        assert any(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == (len(shape) == 3)


def test_first_batch_sanity_check_explains_problems():
    model = tiny_model("vae")
    x, y = data(4)
    with pytest.raises(ValueError, match="does not fit the model"):
        model.check_batch(x[:, :, :14], y)
    with pytest.raises(ValueError, match=r"needs \[0, 1\]"):
        model.check_batch(x * 255, y)
    with pytest.raises(ValueError, match="labels range"):
        model.check_batch(x, y + 10)
    model.check_batch(x, y)  # a good batch passes


def test_vae_on_real_valued_vectors_uses_gaussian_likelihood():
    from ssavae.data import Dataset
    from ssavae.models.vae import VAE, VAEConfig

    rng = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=rng) * 3
    ds = Dataset("vec", x.numpy(), torch.zeros(64, dtype=torch.long).numpy(), x[:8].numpy(),
                 torch.zeros(8, dtype=torch.long).numpy(), ["a"])
    model = VAE(VAEConfig(latent_dim=2, mlp_hidden=(32,), hidden=16), ds.info)
    assert model.likelihood == "gaussian"
    assert torch.isfinite(model.vae_loss(Batch(x, torch.zeros(64, dtype=torch.long))).loss)
    assert model.sample(3).shape == (3, 6)
    with pytest.raises(ValueError, match="needs data in"):
        VAE(VAEConfig(likelihood="bernoulli"), ds.info)


def test_vae_likelihood_is_the_trained_models_whatever_the_sampler():
    """An ex-post sampler changes where samples come from, not p(x): the IW estimate uses the
    N(0, I) prior the VAE was trained against (a fitted, narrow sampler gave 53,000 nats)."""
    plain, fitted = tiny_model("vae"), tiny_model("vae", sampler="gaussian")
    fitted.load_state_dict({**fitted.state_dict(), **plain.state_dict()}, strict=False)
    fitted.prior.fit(torch.randn(500, fitted.cfg.latent_dim) * 1e-3)
    x, _ = data(4)
    torch.manual_seed(0)
    a = plain.log_likelihood(x, k=20)
    torch.manual_seed(0)
    assert torch.allclose(fitted.log_likelihood(x, k=20), a)


@pytest.mark.parametrize("name", list_models())
def test_inference_api_runs_in_chunks_and_gives_what_one_pass_gives(name):
    """encode, decode, reconstruct, sample, predict_proba and the likelihoods split any number of
    rows into passes of at most ``inference_batch``, with the results of one pass."""
    model = tiny_model(name).eval()
    x, y = data(20)
    y = y if model.conditional else None
    gen = model.generative
    calls = {"encode": lambda: model.encode(x, y)}
    if gen:
        calls["reconstruct"] = lambda: model.reconstruct(x, y)
        calls["decode"] = lambda: model.decode(torch.randn(20, model.code_dim, generator=torch.Generator().manual_seed(1)), y)
        sample_y = y if (model.conditional or model.class_sampling) else None
        calls["sample"] = lambda: model.sample(20, sample_y, generator=torch.Generator().manual_seed(2))
    if model.has_classifier:
        calls["predict_proba"] = lambda: model.predict_proba(x)
    if model.clusters:
        calls["cluster_proba"] = lambda: model.cluster_proba(x)
    seen = []
    for private in ("_encode", "_decode", "_predict_proba", "_cluster_proba"):
        if hasattr(model, private):
            original = getattr(model, private)
            setattr(model, private, lambda *a, _f=original: seen.append(len(a[0])) or _f(*a))
    whole = {k: f() for k, f in calls.items()}
    assert max(seen) == 20
    seen.clear()
    model.inference_batch = 7
    for k, f in calls.items():
        torch.testing.assert_close(f(), whole[k], msg=k)
    assert seen and max(seen) <= 7
    assert len(model.encode(x[:0], None if y is None else y[:0])) == 0  # no rows: no error
