"""The training engine (runs every family) and the run orchestration around it."""
from .checkpoint import CheckpointError
from .trainer import Trainer, TrainingError

__all__ = ["CheckpointError", "Trainer", "TrainingError"]
