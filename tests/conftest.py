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


# Per-family tiny settings, on top of TINY. Every registered family must appear here: tests that
# run "every family" read this table, and test_models.py fails when a family is missing from it.
FAMILIES = {
    "classifier": {"data": {"labels_per_class": 8}},
    "vae": {},
    "cvae": {"data": {"labels_per_class": 8}},
    "vaegan": {},
    "cvae_cgan": {"data": {"labels_per_class": 8}},
    "cvae_completion": {},
    "aae": {"model": {"disc_hidden": [32]}},
    "aae_supervised": {"model": {"disc_hidden": [32]}, "data": {"labels_per_class": 8}},
    "aae_semi": {"model": {"disc_hidden": [32], "latent_dim": 4}, "data": {"labels_per_class": 8}},
    "aae_cluster": {"model": {"disc_hidden": [32], "latent_dim": 4, "num_clusters": 6}},
    "aae_dimred": {"model": {"disc_hidden": [32]}, "data": {"labels_per_class": 8}},
    "ssavae": {"data": {"labels_per_class": 8}},
    "m2": {"model": {"latent_dim": 4}, "data": {"labels_per_class": 8}},
    "m2_gan": {"model": {"latent_dim": 4}, "data": {"labels_per_class": 8}},
    "draw": {"model": {"latent_dim": 3, "steps": 3, "rnn_hidden": 16}},
    "draw_cond": {"model": {"latent_dim": 3, "steps": 3, "rnn_hidden": 16}, "data": {"labels_per_class": 8}},
    "draw_gan": {"model": {"latent_dim": 3, "steps": 3, "rnn_hidden": 16}},
}


def family_raw(family: str, **sections) -> dict:
    """TINY plus the family's own tiny settings plus ``sections``."""
    merged = {k: dict(v) for k, v in FAMILIES[family].items()}
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
