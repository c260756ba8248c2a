"""Early stopping on a validation score, a callback of the ``Trainer`` (the estimator's
``early_stopping``; any run's through ``runs.train(callbacks=[...])``)."""
from __future__ import annotations

import copy
import logging
from typing import Any, Callable, Optional

from .callbacks import Callback, improves

log = logging.getLogger(__name__)


class EarlyStopping(Callback):
    """Early stopping on a validation score. After each epoch ``score(model)`` is computed (higher
    is better; a tuple compares element by element, e.g. ``(accuracy, -log_loss)``). The weights
    of the best epoch so far are kept; a phase ends after ``patience`` epochs without a better
    score, and at a phase's end (early or not) the model goes back to its best weights. An epoch
    after which the score is exactly unchanged (a phase that trains other networks, such as
    SSAVAE's decoder step) neither counts nor stops."""

    def __init__(self, score: Callable[[Any], Any], patience: int):
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.score, self.patience = score, patience
        self.history: list[tuple[str, int, Any]] = []  # (phase, epoch, score) after every epoch
        self.best_epochs: dict[str, int] = {}  # phase -> its best epoch (0-based), phases that moved the score
        self.stopped: dict[str, int] = {}  # phase -> the epoch after which it was ended early
        self._phase: Optional[str] = None
        self._last: Any = None  # the score after the previous epoch, of any phase

    def on_epoch_end(self, trainer, phase, epoch) -> None:
        model = trainer.model
        value = self.score(model)
        self.history.append((phase.name, epoch, value))
        if phase.name != self._phase:  # a new phase: its own best and patience
            self._phase, self._best, self._state, self._bad = phase.name, None, None, 0
        changed, self._last = value != self._last, value
        if changed:
            if improves(value, self._best):
                self._best, self._bad, self.best_epochs[phase.name] = value, 0, epoch
                self._state = copy.deepcopy(model.state_dict())
            else:
                self._bad += 1
        if self._state is None:
            return  # this phase has not moved the score: nothing to keep or restore
        if self._bad >= self.patience:
            log.info("early stopping: %s's validation score has not improved for %d epoch(s); "
                     "back to its best epoch, %d", phase.name, self._bad, self.best_epochs[phase.name] + 1)
            self.stopped[phase.name] = epoch
            trainer.end_phase()
        if self._bad >= self.patience or epoch + 1 >= trainer.phase_epochs(phase):
            model.load_state_dict(self._state)
            self._last = self._best  # the score of the weights the next phase starts from
