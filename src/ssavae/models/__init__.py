"""Model families. Importing this package registers every family (see registry.py)."""
from . import ssavae, vae  # noqa: F401
from .base import GenerativeModel, ModelConfig, Phase, Step, StepOutput

__all__ = ["GenerativeModel", "ModelConfig", "Phase", "Step", "StepOutput"]
