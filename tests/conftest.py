import os

import pytest
import torch

os.environ.setdefault("SSAVAE_CACHE", os.path.join(os.path.dirname(__file__), ".cache-unused"))
torch.set_num_threads(min(2, os.cpu_count() or 1))

# small MLP networks on a slice of the synthetic data: fast, and every family fits
TINY = {
    "model": {"arch": "mlp", "hidden": 32, "mlp_hidden": [64]},
    "data": {"name": "synthetic", "limit_train": 128, "limit_test": 64},
    "train": {"epochs": 1, "batch_size": 32, "progress": False, "sample_every": 0,
              "log_every": 1},
}


def family_settings(family: str) -> dict:
    """The family's own tiny settings (its class's ``tiny``), on top of TINY: declared beside the
    family, so a new family needs no edit here."""
    from ssavae.models import get_model_class

    return get_model_class(family).tiny


def family_raw(family: str, **sections) -> dict:
    """TINY plus the family's own tiny settings plus ``sections``."""
    merged = {k: dict(v) for k, v in family_settings(family).items()}
    for section, values in sections.items():
        if isinstance(values, dict):
            merged.setdefault(section, {}).update(values)
        else:
            merged[section] = values
    return tiny_raw(family, **merged)


def tiny_raw(family: str, **sections) -> dict:
    raw = {k: dict(v) for k, v in TINY.items()}
    raw["model"]["name"] = family
    for section, values in sections.items():
        if isinstance(values, dict):
            raw.setdefault(section, {}).update(values)
        else:
            raw[section] = values
    return raw


def tiny_cli(family: str, **sections) -> list[str]:
    """The TINY config as command-line overrides."""
    raw = tiny_raw(family, **sections)
    args = ["--model", raw["model"].pop("name")]
    for section in ("model", "data", "train"):
        for k, v in raw.get(section, {}).items():
            args += [f"--{section}.{k}", "null" if v is None else
                     str(v).lower() if isinstance(v, bool) else str(v).replace(" ", "")]
    return args


@pytest.fixture
def tiny():
    return tiny_raw


def free_port() -> int:
    """A TCP port nothing listens on now, for a multi-process test's MASTER_PORT: fixed ports
    collide with any other run of the suite (or other gloo job) on the same machine, and a rank
    that joins the wrong job's store hangs or dies."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
