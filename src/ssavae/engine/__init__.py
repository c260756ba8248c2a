"""The training engine: one loop for every family. Knows models/base.py only."""
from ..errors import TrainingError
from .early_stopping import EarlyStopping
from .trainer import Trainer, check_contract, make_fabric, resolve_precision

__all__ = ["EarlyStopping", "Trainer", "TrainingError", "check_contract", "make_fabric", "resolve_precision"]
