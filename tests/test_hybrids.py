"""The conditional and adversarial hybrids: CVAE, VAE-GAN, CVAE+CGAN."""
import json
import math

import pytest
import torch

from ssavae.errors import CapabilityError
from ssavae.eval.run_figures import style_transfer
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


# ---------------------------------------------------------------------------- the stability guard

SOUND = {"vaegan": {}, "cvae_cgan": {}, "ssavae": {"vec_epochs": 1, "decoder_epochs": 8}}
BROKEN = {"vaegan": {"equilibrium": False}, "cvae_cgan": {"disc_spectral_norm": False},
          "ssavae": {"beta": 1.0, "disc_spectral_norm": False}}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_stability_guard_stops_a_critic_that_wins_outright(tmp_path, name):
    """A critic learning rate 100x the default (0.1 against 1e-3) lets the critic win outright:
    the guard stops the run with a message naming the step and the fix, the CLI prints it as a
    user error, and the checkpoint on disk is from before the winning streak began. The
    family's defaults, with the same patience, run to their end."""
    from ssavae import cli
    from ssavae.checkpoint import load as load_ckpt
    from ssavae.runlog import read_metrics

    from conftest import tiny_cli

    train = {"epochs": 8, "log_every": 1, "checkpoint_every": 1, "guard_patience": 5}
    args = ["train", *tiny_cli(name, model={**SOUND[name], **BROKEN[name]}, train=train,
                               **_labels(name)),
            "--train.step_lr", "{disc: 0.1}", "--out", str(tmp_path / "broken")]
    assert cli.main(args) == 2
    rows = read_metrics(tmp_path / "broken")
    won = [r["disc/d_real"] - r["disc/d_fake"] >= 0.9 for r in rows if "disc/d_real" in r]
    assert won[-5:] == [True] * 5
    saved = load_ckpt(tmp_path / "broken" / "checkpoints" / "last.pt")["progress"]["global_step"]
    assert saved <= rows[-1]["step"] - 5  # not written while the critic was winning
    sound = ["train", *tiny_cli(name, model=SOUND[name], train=train, **_labels(name)),
             "--out", str(tmp_path / "sound")]
    assert cli.main(sound) == 0


def _labels(name):
    return {"data": {"labels_per_class": 8}} if name != "vaegan" else {}


def test_stability_guard_spots_collapsed_samples():
    """Two probes in a row with (nearly) identical samples stop the run; one does not, and
    varied samples reset the count. Catches a probe that compares the wrong spreads."""
    from ssavae.config import build_run_config
    from ssavae.engine.guard import StabilityGuard

    from conftest import family_raw

    model = tiny_model("vaegan")
    guard = StabilityGuard(build_run_config(family_raw("vaegan")).train)
    guard.model = model
    x, _ = data(64)
    logs = {"disc": {"d_real": torch.tensor(0.6), "d_fake": torch.tensor(0.4)}}
    model.sample = lambda n, y=None, generator=None: x[:1].expand(n, -1, -1, -1)  # one image
    assert guard.after_batch(logs, x, 500, lambda: None) is None and guard.alarmed
    model.sample = lambda n, y=None, generator=None: x[:n]  # as varied as the data
    assert guard.after_batch(logs, x, 1000, lambda: None) is None and not guard.alarmed
    model.sample = lambda n, y=None, generator=None: x[:1].expand(n, -1, -1, -1)
    assert guard.after_batch(logs, x, 1500, lambda: None) is None
    assert guard.after_batch(logs, x, 1700, lambda: None) is None  # not a probe step
    assert "collapsed" in guard.after_batch(logs, x, 2000, lambda: None)


# ---------------------------------------------------------------------------- VAE-GAN, CVAE+CGAN


def test_equilibrium_gate_oracle():
    """Larsen's rule: costs = mean -log D(x) on reals and -log(1 - D(fake)) on fakes, threshold
    0.68, margin 0.35: both below 0.33 -> the critic pauses; one above 1.03 -> the generator
    loses its GAN term; never both off."""
    from ssavae.models.adversarial import equilibrium

    def gate(real, fake):
        return equilibrium(torch.full((8, 1), real), torch.full((8, 1), fake), 0.68, 0.35)

    assert gate(5.0, -5.0) == (False, True)  # costs 0.007, 0.007: the critic is far ahead
    assert gate(-3.0, 3.0) == (True, False)  # costs 3.05: far behind
    assert gate(0.0, 0.0) == (True, True)  # costs ln 2 = 0.69: balanced
    assert gate(5.0, 3.0) == (True, True)  # one far ahead, one far behind: both train


@pytest.mark.parametrize("name,decoded", [("vaegan", [16, 32]), ("cvae_cgan", [24, 40])])
def test_one_encoder_and_one_decoder_pass_per_batch(tmp_path, name, decoded):
    """Through the engine: the encoder update decodes the reconstructions (16 images, or the
    cvae_cgan's 16 labeled + 8 stream examples), the decoder update decodes them again with
    its own graph plus one prior fake per mixed-batch image, and the critic update decodes
    nothing (it gets the fakes through Batch.shared)."""
    from ssavae.config import build_run_config
    from ssavae.data import LabeledStream
    from ssavae.data.synthetic import make_synthetic
    from ssavae.engine import Trainer

    from conftest import family_raw

    model = tiny_model(name)
    trainer = Trainer(build_run_config(family_raw(name)).train)
    trainer.setup(model)
    x, y = data(16)
    ds = make_synthetic(8, 4, seed=1)
    trainer.labeled = LabeledStream(ds.x_train, ds.y_train, batch_size=8)
    calls = []
    model.dec.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    trainer._run_batch(model.phases()[0], x, y, running={})
    assert calls == decoded


def test_vaegan_critic_update_skipped_by_the_gate_changes_nothing(tmp_path):
    """A gated critic update (the decoder update said the critic is far ahead) moves no
    parameter and no optimizer state; an ungated one does."""
    from ssavae.config import build_run_config
    from ssavae.engine import Trainer

    from conftest import family_raw

    model = tiny_model("vaegan")
    trainer = Trainer(build_run_config(family_raw("vaegan")).train)
    trainer.setup(model)
    disc_step = model.phases()[0].steps[2]
    x, y = data(16)
    before = [p.detach().clone() for p in model.disc.parameters()]
    trainer.update(disc_step, Batch(x, y, shared={"train_dis": False}))
    assert all(torch.equal(a, b) for a, b in zip(before, model.disc.parameters()))
    assert not trainer.optimizers["disc"].state
    trainer.update(disc_step, Batch(x, y, shared={"train_dis": True}))
    assert not all(torch.equal(a, b) for a, b in zip(before, model.disc.parameters()))


def test_cvae_cgan_critic_is_a_classifier_of_real_images():
    """The (K+1)-way critic's K real outputs classify: trained on labeled reals (and fakes) it
    learns the labels; predict_proba leaves the fake output out."""
    model = tiny_model("cvae_cgan")
    x, y = data(16)
    b = Batch(x, y, x[:8], y[:8])
    _overfit(model, model.disc_loss, b, steps=150)
    p = model.predict_proba(x)
    assert p.shape == (16, 4) and torch.allclose(p.sum(1), torch.ones(16))
    assert (p.argmax(1) == y).float().mean() > 0.9


# ---------------------------------------------------------------------------- completion


@pytest.mark.parametrize("observe", ["top-half", "left-half", "random-mask"])
def test_completion_keeps_the_observed_pixels_and_learns_the_rest(observe):
    """complete() returns n different draws that keep every observed pixel exactly; training
    lowers the error on the unobserved part; the loss never scores observed pixels (changing
    the decoder's output there changes nothing)."""
    model = tiny_model("cvae_completion", observe=observe)
    x, y = data(16)
    m = model.observed_mask(16)
    assert set(m.unique().tolist()) == {0.0, 1.0} and 0.3 < m.mean() < 0.7
    if observe == "top-half":
        assert m[:, :, :14].eq(1).all() and m[:, :, 14:].eq(0).all()
    draws = model.complete(x, 3, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (16, 3, 1, 28, 28)
    torch.testing.assert_close(draws * m[:, None], x[:, None].expand_as(draws) * m[:, None])
    assert (draws[:, 0] - draws[:, 1]).abs().sum() > 0

    def missing_error():
        d = model.complete(x, 1, generator=torch.Generator().manual_seed(0))[:, 0]
        return float(((d - x) ** 2 * (1 - m)).sum() / (1 - m).sum())

    before = missing_error()
    _overfit(model, model.completion_loss, Batch(x, y), steps=150)
    assert missing_error() < before / 2
    logits = torch.randn(4, 1, 28, 28)
    on_missing = model.nll(logits, x[:4], weight=1 - m[:4])
    moved = logits + 5 * m[:4]  # change the output only where pixels are observed
    torch.testing.assert_close(model.nll(moved, x[:4], weight=1 - m[:4]), on_missing)


def test_complete_cli_draws_rows_and_refuses_other_families(tmp_path, capsys):
    from ssavae import cli

    from conftest import tiny_cli

    run = tmp_path / "c"
    assert cli.main(["train", *tiny_cli("cvae_completion"), "--out", str(run)]) == 0
    assert (run / "figures" / "completions.png").exists()
    metrics = json.loads((run / "summary.json").read_text())
    assert 0 < metrics["completion.missing_mse"] < 1
    out = tmp_path / "rows.png"
    assert cli.main(["complete", str(run), "--count", "3", "--draws", "4", "--out", str(out)]) == 0
    from PIL import Image

    w, h = Image.open(out).size
    assert (w > h) and abs(w / h - 6 / 3) < 0.2  # 3 rows of shown + truth + 4 draws
    vae = tmp_path / "v"
    assert cli.main(["train", *tiny_cli("vae"), "--out", str(vae)]) == 0
    capsys.readouterr()
    assert cli.main(["complete", str(vae)]) == 2
    assert "does not complete images" in capsys.readouterr().err


def test_nearest_code_baseline_matches_brute_force():
    """The VAE baseline's matrix form picks, for each image, the decoded pool image nearest on
    its own observed pixels (oracle: an explicit loop), and keeps the observed pixels."""
    from ssavae.eval.completion import nearest_code_completion

    model = tiny_model("vae")
    model.eval()
    x, _ = data(6)
    pool, _ = data(20, seed=3)
    mask = (torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    got = nearest_code_completion(model, x, mask, pool, chunk=4)
    decoded = model.reconstruct(pool)
    for i in range(6):
        d = (((decoded - x[i]) ** 2) * mask[i]).flatten(1).sum(1)
        want = mask[i] * x[i] + (1 - mask[i]) * decoded[d.argmin()]
        torch.testing.assert_close(got[i], want)
