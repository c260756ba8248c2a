"""The training engine: one loop for every family (``trainer.py``), what runs around it as
callbacks (``callbacks.py``), devices and precision (``device.py``). Knows models/contract.py only."""
from ..errors import TrainingError
from ..models.contract import check_contract
from .callbacks import Callback, Checkpointer, MetricsLog, ProgressBar, SignalStop, TimeBudget
from .device import make_fabric, resolve_precision
from .early_stopping import EarlyStopping
from .guard import StabilityGuard
from .trainer import Trainer

__all__ = ["Callback", "Checkpointer", "EarlyStopping", "MetricsLog", "ProgressBar", "SignalStop", "StabilityGuard",
           "TimeBudget", "Trainer", "TrainingError", "check_contract", "make_fabric", "resolve_precision"]
