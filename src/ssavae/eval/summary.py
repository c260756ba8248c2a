"""The numbers and figures every run ends with, through the public inference API only."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..data import Dataset, to_float
from . import figures as fig
from .metrics import accuracy


def batches(x: np.ndarray, device, batch_size: int = 500) -> Iterator[torch.Tensor]:
    for i in range(0, len(x), batch_size):
        yield to_float(x[i:i + batch_size]).to(device)


@torch.no_grad()
def encode_all(model, x: np.ndarray) -> np.ndarray:
    return torch.cat([model.encode(xb).cpu() for xb in batches(x, model.device)]).numpy()


@torch.no_grad()
def predict_all(model, x: np.ndarray) -> np.ndarray:
    return torch.cat([model.predict_proba(xb).cpu() for xb in batches(x, model.device)]).numpy()


@torch.no_grad()
def summarize(model, ds: Dataset, progress: dict) -> dict:
    """Test-set numbers that apply to this family: negative ELBO, accuracy, pixel error."""
    model.eval()
    out: dict = {"model": model.name, "dataset": ds.name, "steps": progress.get("global_step"),
                 "n_test": int(len(ds.y_test))}
    if hasattr(model, "negative_elbo"):
        vals = torch.cat([model.negative_elbo(xb).cpu() for xb in batches(ds.x_test, model.device)])
        out["test_neg_elbo"] = float(vals.mean())
    if hasattr(model, "predict_proba"):
        pred = torch.from_numpy(predict_all(model, ds.x_test).argmax(1))
        out["test_accuracy"] = accuracy(pred, torch.from_numpy(ds.y_test))
    se = [((model.reconstruct(xb) - xb) ** 2).flatten(1).mean(1).cpu()
          for xb in batches(ds.x_test, model.device)]
    out["test_recon_mse"] = float(torch.cat(se).mean())
    return out


def project_2d(codes: np.ndarray) -> tuple[np.ndarray, tuple[str, str]]:
    """2-D codes as they are; wider codes on their first two principal components."""
    if codes.shape[1] == 2:
        return codes, ("z1", "z2")
    centered = codes - codes.mean(0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    return centered @ vt[:2].T, ("PC1", "PC2")


@torch.no_grad()
def latent_lattice(model, n: int = 20, span: float = 3.0) -> torch.Tensor:
    """Decode a regular n x n lattice over [-span, span]^2 of a 2-D latent plane."""
    t = torch.linspace(-span, span, n)
    zz = torch.stack(torch.meshgrid(-t, t, indexing="ij")[::-1], -1).reshape(-1, 2)
    return model.decode(zz.to(model.device))


@torch.no_grad()
def interpolations(model, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """Decode codes on the straight line between encode(x_a[i]) and encode(x_b[i]):
    (n * steps, *shape), one row of ``steps`` images per pair."""
    z_a, z_b = model.encode(x_a), model.encode(x_b)  # (n, latent_dim)
    t = torch.linspace(0, 1, steps, device=z_a.device)[None, :, None]  # (1, steps, 1)
    z = (1 - t) * z_a[:, None] + t * z_b[:, None]  # (n, steps, latent_dim)
    return model.decode(z.flatten(0, 1))


@torch.no_grad()
def final_figures(model, ds: Dataset, run_dir: Path, seed: int = 0) -> list[Path]:
    """Reconstructions, samples, per-class samples, latent map (+ lattice for 2-D), curves."""
    from ..engine.metrics import read_metrics
    from ..engine.run import epoch_figures

    figures = Path(run_dir) / "figures"
    model.eval()
    written = []
    if ds.info.is_image:
        epoch_figures(model, ds, figures, "final", seed)
        written += [figures / "samples_final.png", figures / "reconstructions_final.png"]
        x = to_float(ds.x_test[:16]).to(model.device)
        written.append(fig.save_grid(figures / "interpolations.png",
                                     interpolations(model, x[:8], x[8:16]), nrow=10))
        if getattr(model, "conditional", False):
            k = min(ds.info.num_classes, 20)
            y = torch.arange(k).repeat_interleave(10).to(model.device)
            g = torch.Generator().manual_seed(seed)
            written.append(fig.save_grid(figures / "samples_per_class.png",
                                         model.sample(len(y), y=y, generator=g), nrow=10))
        if model.cfg.latent_dim == 2:
            written.append(fig.save_grid(figures / "latent_lattice.png", latent_lattice(model),
                                         nrow=20, scale=1))
    n = min(len(ds.x_test), 5000)
    codes, axes = project_2d(encode_all(model, ds.x_test[:n]))
    decision = None
    if model.cfg.latent_dim == 2 and hasattr(model, "predict_proba_latent"):
        lo, hi = codes.min(0) - 0.5, codes.max(0) + 0.5
        xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
        grid = torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], 1)).float().to(model.device)
        pred = model.predict_proba_latent(grid).argmax(1).cpu().numpy().reshape(xx.shape)
        decision = (xx, yy, pred)
    written.append(fig.latent_map(figures / "latent_map.png", codes, ds.y_test[:n], ds.classes,
                                  f"{model.name} on {ds.name}: test codes", decision, axes))
    curves = fig.curves(figures / "training_curves.png", read_metrics(run_dir), model.name)
    if curves:
        written.append(curves)
    return written
