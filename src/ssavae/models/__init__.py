"""Model families. Importing this package registers every family (see registry.py)."""
from __future__ import annotations

from ..errors import ConfigError
from ..registry import MODELS
from . import aae, aae_semi, classifier, completion, cvae, cvae_cgan, draw, m2, ssavae, vae, vaegan  # noqa: F401  (importing a family registers it)
from .base import Batch, GenerativeModel, ModelConfig, Phase, Step, StepOutput


def get_model_class(name: str) -> type[GenerativeModel]:
    try:
        return MODELS.get(name)
    except KeyError as e:
        raise ConfigError(e.args[0]) from None


def list_models() -> list[str]:
    return MODELS.names()


__all__ = ["Batch", "GenerativeModel", "ModelConfig", "Phase", "Step", "StepOutput",
           "get_model_class", "list_models"]
