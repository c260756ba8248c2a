"""Images per second of ssavae beside pythae 0.1.2 on identical networks, data, batch and steps.

pythae trains its VAE, Adversarial_AE and VAEGAN with ssavae's own networks passed in as its
encoder, decoder and discriminator (thin wrappers that only rename outputs: pythae's networks
return probabilities where ours return logits, so its wrappers add the sigmoid pythae's losses
expect). Both sides train from the same initial weights on the same Fashion-MNIST images, with
Adam at the same learning rate, interleaved A/B per repetition so that machine noise hits both
alike. Each side is timed for a short and a long run and the difference gives the steady
per-step cost (one-off set-up does not count). The objectives are each library's own for that
family (identical for the VAE; pythae's AAE and VAEGAN losses differ in details from ours, see
docs/performance.md), so the final losses are printed for the VAE only.

pythae is installed only for this benchmark, beside the project in its own environment:

    python -m venv .venv-bench && . .venv-bench/bin/activate
    pip install -r constraints.txt && pip install -c constraints.txt -e . pythae==0.1.2
    python bench/pythae_compare.py [--families vae,aae,vaegan] [--steps 40] [--reps 3] [--threads N]
    python bench/pythae_compare.py --families aae:critic_codes=recon     # our side with model fields
"""
from __future__ import annotations

import argparse
import logging
import platform
import statistics
import tempfile
import time

import numpy as np
import torch

from ssavae.config import build_run_config
from ssavae.data import InMemoryLoader, load_dataset
from ssavae.data.loader import to_float
from ssavae.engine import Trainer
from ssavae.runs import build_model
from step_cost import model_fields

try:
    from pythae.data.datasets import BaseDataset
    from pythae.models import VAE, Adversarial_AE, Adversarial_AE_Config, VAEConfig, VAEGAN, VAEGANConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseDiscriminator, BaseEncoder
    from pythae.trainers import (AdversarialTrainer, AdversarialTrainerConfig, BaseTrainer,
                                 BaseTrainerConfig, CoupledOptimizerAdversarialTrainer,
                                 CoupledOptimizerAdversarialTrainerConfig)
except ImportError as e:  # an optional benchmark dependency
    raise SystemExit(f"pythae is not installed ({e}); see this script's docstring for the install") from e

LR = 1e-3


class _Holds:
    """A pythae network around one of ours (``net``)."""

    def __init__(self, net):
        super().__init__()
        self.net = net


class Encoder(_Holds, BaseEncoder):
    """Our encoder; a deterministic one (aae) gets a log-variance far below any pixel scale."""

    def forward(self, x):
        out = self.net(x)
        if isinstance(out, tuple):
            return ModelOutput(embedding=out[0], log_covariance=out[1])
        return ModelOutput(embedding=out, log_covariance=torch.full_like(out, -30.0))


class Decoder(_Holds, BaseDecoder):
    def forward(self, z):
        return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))


class CodeCritic(_Holds, BaseDiscriminator):
    def forward(self, z):
        out = self.net(z)
        return ModelOutput(embedding=torch.sigmoid(out[0] if isinstance(out, tuple) else out))


class ImageCritic(_Holds, BaseDiscriminator):
    """Our image discriminator, its hidden layers exposed as pythae's ``embedding_layer_i``."""

    def __init__(self, net, depth: int):
        super().__init__(net)
        self.depth = depth

    def forward(self, x, output_layer_levels=None):
        logit, feats = self.net(x)
        out = ModelOutput(embedding=torch.sigmoid(logit))
        for level in output_layer_levels or []:
            out[f"embedding_layer_{level}"] = feats[level]
        return out


def pythae_side(family: str, model, shape, tmp: str):
    """(pythae model, trainer class, trainer config class) around ``model``'s networks."""
    latent = model.cfg.latent_dim
    enc, dec = Encoder(model.enc), Decoder(model.dec)
    if family == "vae":
        cfg = VAEConfig(input_dim=shape, latent_dim=latent, reconstruction_loss="bce")
        return VAE(cfg, encoder=enc, decoder=dec), BaseTrainer, \
            BaseTrainerConfig(output_dir=tmp, learning_rate=LR)
    if family == "aae":
        cfg = Adversarial_AE_Config(input_dim=shape, latent_dim=latent, reconstruction_loss="bce")
        return Adversarial_AE(cfg, encoder=enc, decoder=dec, discriminator=CodeCritic(model.disc)), \
            AdversarialTrainer, AdversarialTrainerConfig(
                output_dir=tmp, autoencoder_learning_rate=LR, discriminator_learning_rate=LR)
    if family == "vaegan":
        n_feats = len(model.disc(torch.zeros(1, *shape))[1])
        cfg = VAEGANConfig(input_dim=shape, latent_dim=latent, reconstruction_layer=model.feature_layer)
        disc = ImageCritic(model.disc, n_feats - 1)
        return VAEGAN(cfg, encoder=enc, decoder=dec, discriminator=disc), \
            CoupledOptimizerAdversarialTrainer, CoupledOptimizerAdversarialTrainerConfig(
                output_dir=tmp, encoder_learning_rate=LR, decoder_learning_rate=LR,
                discriminator_learning_rate=LR)
    raise SystemExit(f"unknown family {family!r}: vae, aae or vaegan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", default="vae,aae,vaegan")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data", default="fashion-mnist")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in list(logging.root.manager.loggerDict):  # pythae sets INFO on each of its loggers
        if name.startswith("pythae"):
            logging.getLogger(name).setLevel(logging.WARNING)
    ds = load_dataset(args.data)
    short, long_ = 5, 5 + args.steps
    x = ds.x_train[: long_ * args.batch_size]
    x_float = to_float(x)
    unlabeled = np.full(len(x), -1)
    shape = tuple(x_float.shape[1:])
    print(f"data {ds.name}, batch {args.batch_size}, {args.steps} steps, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    for spec in args.families.split(","):
        model_section = model_fields(spec)
        family = model_section["name"]
        raw = {"model": model_section, "data": {"name": ds.name},
               "train": {"epochs": 1000, "batch_size": args.batch_size, "lr": LR, "progress": False,
                         "log_every": 50, "checkpoint_every": 10**9, "sample_every": 0,
                         "guard": False}}
        torch.manual_seed(0)
        init = build_model(build_run_config(raw), ds).state_dict()

        def fresh():
            m = build_model(build_run_config(raw), ds)
            m.load_state_dict(init)
            return m

        def ours(steps):
            cfg = build_run_config({**raw, "train": {**raw["train"], "max_steps": steps}})
            model = fresh()
            with tempfile.TemporaryDirectory() as d:
                t0 = time.perf_counter()
                Trainer(cfg, d).fit(model, InMemoryLoader(x, unlabeled, args.batch_size, seed=0))
                return time.perf_counter() - t0, model

        def theirs(steps):
            with tempfile.TemporaryDirectory() as d:
                model, trainer_cls, tcfg = pythae_side(family, fresh(), shape, d)
                # its final save (a one-off cost) pickles the networks, which spectral norm's
                # parametrizations refuse: skipped
                model.save = lambda dir_path: None
                tcfg.num_epochs, tcfg.per_device_train_batch_size = 1, args.batch_size
                t0 = time.perf_counter()
                xs = x_float[: steps * args.batch_size]
                trainer = trainer_cls(model=model, train_dataset=BaseDataset(xs, torch.zeros(len(xs))),
                                      training_config=tcfg)
                trainer.train()
                return time.perf_counter() - t0, model

        ours(short), theirs(short)  # warm-up: imports, first allocations
        ratios = []
        for rep in range(args.reps):
            (t_long, a), (t_long_theirs, b) = ours(long_), theirs(long_)
            t_ours = t_long - ours(short)[0]
            t_theirs = t_long_theirs - theirs(short)[0]
            ratios.append(t_theirs / t_ours)
            n = args.steps * args.batch_size
            print(f"{spec} rep {rep}: ssavae {n / t_ours:8.1f} img/s   pythae {n / t_theirs:8.1f} img/s"
                  f"   ssavae / pythae speed {t_theirs / t_ours:.2f}x")
        print(f"{spec}: median ssavae / pythae images per second {statistics.median(ratios):.2f}x")
        if family == "vae":  # the same objective: the same loss after the last rep's long runs
            with torch.no_grad():
                xe = x_float[:1000]
                ours_loss = (a.nll(a.dec(a.enc(xe)[0]), xe)).mean()
                their_loss = torch.nn.functional.binary_cross_entropy(
                    b.decoder(b.encoder(xe).embedding).reconstruction, xe, reduction="sum") / len(xe)
            print(f"vae after {long_} steps, reconstruction NLL of the mean code on 1,000 training "
                  f"images: ssavae {ours_loss:.2f}, pythae {their_loss:.2f} nats")


if __name__ == "__main__":
    main()
