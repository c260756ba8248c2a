"""``train.on_divergence rollback``: a run that diverges goes back to its last sound state and on."""
from __future__ import annotations

import copy
import logging

from .. import checkpoint as ckpt_io
from .callbacks import Callback
from .device import set_step_lrs

log = logging.getLogger(__name__)


class Rollback(Callback):
    """``train.on_divergence rollback``: a divergence (a non-finite loss, the stability guard's
    stop) sends the run back to its last sound state, the end of the last epoch or phase (what the
    epoch-end checkpoint holds, kept in memory), with the learning rate of the step to blame (all
    the phase's steps when none is) halved, at most ``limit`` times. Each rollback is logged and
    kept in ``progress["rollbacks"]``, the factors in ``progress["lr_factors"]`` (checkpoints
    carry both). Added last, so its state is the one the checkpoint callbacks saw."""

    def __init__(self, limit: int):
        self.limit, self.good = limit, None

    def _keep(self, trainer) -> None:
        if not any(cb.alarmed for cb in trainer.callbacks):
            self.good = copy.deepcopy(ckpt_io.make(trainer.model, trainer.optimizers, trainer.progress, {}))

    def on_fit_start(self, trainer, resumed) -> None:
        if self.good is None:
            self._keep(trainer)

    def on_epoch_end(self, trainer, phase, epoch) -> None:
        self._keep(trainer)

    def on_phase_end(self, trainer, phase) -> None:
        self._keep(trainer)

    def on_divergence(self, trainer, error) -> bool:
        p, done = trainer.progress, trainer.progress.get("rollbacks", [])
        if self.good is None or len(done) >= self.limit:
            log.error("train.on_divergence rollback: %d rollback(s) done, train.max_rollbacks is %d", len(done),
                      self.limit)
            return False
        steps = [error.step] if error.step else [s.name for s in trainer.model.phases()[p["phase"]].steps]
        factors = dict(p.get("lr_factors", {}))
        factors.update({s: factors.get(s, 1.0) * 0.5 for s in steps})
        entry = {"at_step": p["global_step"], "back_to_step": self.good["progress"]["global_step"],
                 "steps": steps, "lr_factors": factors, "why": str(error).split(";")[0]}
        trainer.progress = ckpt_io.restore(copy.deepcopy(self.good), trainer.model, trainer.optimizers, p)
        trainer.progress.update(lr_factors=factors, rollbacks=[*done, entry])
        set_step_lrs(trainer.model, trainer.optimizers, trainer.train_cfg, trainer.progress)
        log.warning("rollback %d of %d: %s; back to global step %d, learning rate of %s halved (x%s)",
                    len(done) + 1, self.limit, entry["why"], entry["back_to_step"], ", ".join(steps),
                    ", ".join(f"{factors[s]:g}" for s in steps))
        return True
