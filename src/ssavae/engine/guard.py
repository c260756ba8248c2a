"""The stability guard of adversarial training, for every family with a critic (SSAVAE's step 2,
VAE-GAN, CVAE+CGAN, the adversarial autoencoders).

It reads only what the steps log, so a family opts in by logging ``d_real`` and ``d_fake`` (the
critic's mean belief that reals, and fakes, are real) from its critic step. Two failures stop
the run with a message naming the step, the global step and the values (``GuardError``):

- **the critic wins outright**: ``d_real - d_fake >= 1 - 2 * train.guard_margin`` (it tells
  reals from fakes almost surely) on ``train.guard_patience`` batches in a row. The generator then gets no
  useful gradient; it does not come back by itself in the runs this was written against.
- **the samples collapse**: every ``train.guard_every`` steps of a phase with a critic, 64
  samples of a fixed seed are drawn; when their pixel spread (the per-pixel standard deviation
  across the 64, averaged over pixels) falls below ``train.guard_collapse`` times that of the
  batch's real images on two probes in a row, the generator has collapsed to (nearly) one image.

Non-finite losses are stopped by the engine itself (``Trainer.update``). While a critic is in a
winning streak the guard is ``alarmed`` and the ``Checkpointer`` writes no checkpoint, so the
last checkpoint on disk is from before the trouble began: the run resumes from a sound state
once the configuration is fixed.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..errors import DivergenceError
from .callbacks import Callback

PROBE = 64  # samples per collapse probe


class GuardError(DivergenceError):
    """Adversarial training went wrong in a way that does not fix itself."""


class StabilityGuard(Callback):
    """The guard as a callback of the ``Trainer`` (``runs.train`` adds it with ``train.guard``)."""

    def __init__(self, train_cfg):
        self.cfg = train_cfg
        self.streak: dict[str, int] = {}  # critic step -> batches in a row it won outright
        self.collapsed = 0  # probes in a row below the spread threshold

    def on_fit_start(self, trainer, resumed) -> None:
        self.model, self.streak, self.collapsed = trainer.model, {}, 0

    def on_batch_end(self, trainer, phase, logs, x) -> None:
        stop = self.after_batch(logs, x, trainer.progress["phase_step"], lambda: trainer.model.train_phase(phase))
        if trainer.agree(stop is not None):
            won = [name for name, n in self.streak.items() if n >= self.cfg.guard_patience]
            raise GuardError(stop or "stopped by the stability guard of process 0", won[0] if won else None)

    @property
    def alarmed(self) -> bool:
        """True while something is going wrong (no checkpoint should capture this state)."""
        return any(self.streak.values()) or self.collapsed > 0

    def after_batch(self, step_logs: dict[str, dict], x: torch.Tensor, phase_step: int,
                    restore_modes) -> Optional[str]:
        """Look at one batch's logs (step name -> logs); a message when the run must stop.
        ``restore_modes()`` puts the phase's train/eval modes back after a probe."""
        c = self.cfg
        critic = False
        for name, logs in step_logs.items():
            if "d_real" not in logs or "d_fake" not in logs:
                continue
            critic = True
            d_real, d_fake = float(logs["d_real"]), float(logs["d_fake"])
            won = d_real - d_fake >= 1 - 2 * c.guard_margin
            self.streak[name] = self.streak.get(name, 0) + 1 if won else 0
            if self.streak[name] >= c.guard_patience:
                return (f"stability guard: the critic of step {name!r} has won outright for "
                        f"{self.streak[name]} batches (at phase step {phase_step}: it believes "
                        f"reals real with {d_real:.4f} and fakes real with {d_fake:.4f}), so the "
                        "generator learns nothing from it. The last checkpoint is from before "
                        "this began. Fix: lower the critic's learning rate (train.step_lr."
                        f"{name}), use spectral normalization (model.disc_spectral_norm true) or "
                        "a smaller adversarial weight; train.guard false turns the guard off")
        if critic and c.guard_every and phase_step % c.guard_every == 0:
            return self._probe(x, phase_step, restore_modes)
        return None

    @torch.no_grad()
    def _probe(self, x: torch.Tensor, phase_step: int, restore_modes) -> Optional[str]:
        model = self.model
        model.eval()
        g = torch.Generator(device="cpu").manual_seed(0)
        y = None
        if model.conditional or model.class_sampling:
            y = torch.arange(PROBE, device=model.device) % model.num_classes
        samples = model.sample(PROBE, y=y, generator=g)
        restore_modes()
        spread = float(samples.flatten(1).std(0).mean())
        real = float(x.flatten(1).std(0).mean())
        ratio = spread / max(real, 1e-12)
        self.collapsed = self.collapsed + 1 if ratio < self.cfg.guard_collapse else 0
        if self.collapsed >= 2:
            return (f"stability guard: the samples have collapsed (at phase step {phase_step}: "
                    f"their pixel spread is {ratio:.3f}x that of real images on two probes in a "
                    f"row, below train.guard_collapse {self.cfg.guard_collapse}). Fix: lower the "
                    "adversarial weight or the learning rates, or use spectral normalization in "
                    "the critic; train.guard false turns the guard off")
        return None
