"""The training engine: one loop for every family (``trainer.py``), what runs around it as
callbacks (``callbacks.py``, ``guard.py``, ``progress.py``, ``early_stopping.py``), devices and
precision (``device.py``), processes (``launch.py``). Knows models/contract.py only."""
from ..errors import TrainingError
from ..models.contract import check_contract
from .callbacks import Callback, Checkpointer, CosineLR, MetricsLog, SignalStop, TimeBudget, from_settings
from .device import make_fabric, resolve_precision
from .early_stopping import EarlyStopping
from .guard import StabilityGuard
from .progress import ProgressBar
from .trainer import Trainer

__all__ = ["Callback", "Checkpointer", "CosineLR", "EarlyStopping", "MetricsLog", "ProgressBar", "SignalStop",
           "StabilityGuard", "TimeBudget", "Trainer", "TrainingError", "check_contract", "from_settings", "make_fabric",
           "resolve_precision"]
