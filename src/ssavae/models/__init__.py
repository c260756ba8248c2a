"""Model families. Importing this package imports every module in it, and a family module
registers itself (``@register``, registry.py): a new family is one new file."""
from __future__ import annotations

import importlib
import pkgutil

from ..errors import ConfigError
from ..registry import MODELS
from .base import Batch, GenerativeModel, ModelConfig, Phase, Step, StepOutput

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def get_model_class(name: str) -> type[GenerativeModel]:
    try:
        return MODELS.get(name)
    except KeyError as e:
        raise ConfigError(e.args[0]) from None


def list_models() -> list[str]:
    return MODELS.names()


__all__ = ["Batch", "GenerativeModel", "ModelConfig", "Phase", "Step", "StepOutput",
           "get_model_class", "list_models"]
