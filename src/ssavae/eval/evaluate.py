"""``ssavae evaluate RUN_DIR``: every metric that applies to the run's family, through the
public inference API only, written to ``RUN_DIR/eval/metrics.json``.

- classification (families with ``predict_proba``): accuracy, error, confusion matrix;
- reconstruction: pixel MSE and BCE, error in the evaluator's feature space, class consistency;
- generation: Frechet distance between evaluator features of test images and of samples (an
  "FID" computed with our own evaluator, not Inception: comparable only within this project),
  k-NN precision and recall (Kynkaenniemi et al. 2019), sharpness against real images, and for
  families that sample a requested class, the evaluator's accuracy on those samples;
- likelihood (families with ``log_likelihood``): importance-weighted NLL in nats;
- latent space: k-NN accuracy of test codes against training codes; for 2-D codes the
  silhouette of the classes.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from ..data import Dataset
from ..fileio import atomic_path
from .evaluator import Evaluator, get_evaluator
from .metrics import accuracy, frechet_distance, knn_accuracy, precision_recall, sharpness, silhouette
from .summary import batches, encode_all

log = logging.getLogger(__name__)


@torch.no_grad()
def evaluate_model(model, ds: Dataset, evaluator: Evaluator, n: int = 5000, iw_samples: int = 1000,
                   iw_examples: int = 500, seed: int = 0) -> dict:
    model.eval()
    n = min(n, len(ds.y_test))
    x_np, y = ds.x_test[:n], torch.from_numpy(ds.y_test[:n])
    out: dict = {"model": model.name, "dataset": ds.name, "n_test": n,
                 "evaluator_test_accuracy": evaluator.test_accuracy}
    device = model.device

    if hasattr(model, "predict_proba"):
        pred = torch.cat([model.predict_proba(xb).argmax(1).cpu() for xb in batches(x_np, device)])
        k = ds.info.num_classes
        known = y >= 0
        conf = torch.bincount(y[known] * k + pred[known], minlength=k * k).reshape(k, k)
        acc = accuracy(pred, y)
        out["classification"] = {"accuracy": acc, "error": 1 - acc, "confusion": conf.tolist()}

    mse, bce, feat, kept, sharp_r, sharp_x, f_real = [], [], [], [], [], [], []
    for i, xb in enumerate(batches(x_np, device)):
        rb = model.reconstruct(xb)
        mse.append((rb - xb).pow(2).flatten(1).mean(1).cpu())
        if ds.info.unit_range:
            bce.append(F.binary_cross_entropy(rb.clamp(1e-6, 1 - 1e-6), xb, reduction="none")
                       .flatten(1).sum(1).cpu())
        fx, fr = evaluator.features(xb), evaluator.features(rb)
        f_real.append(fx)
        feat.append((fx - fr).pow(2).mean(1))
        kept.append(evaluator.predict(rb) == y[i * 500:(i + 1) * 500])
        if ds.info.is_image:
            sharp_r.append(sharpness(rb).cpu())
            sharp_x.append(sharpness(xb).cpu())
    rec = {"pixel_mse": float(torch.cat(mse).mean()),
           "feature_error": float(torch.cat(feat).mean()),
           "class_consistency": float(torch.cat(kept).float().mean())}
    if bce:
        rec["pixel_bce"] = float(torch.cat(bce).mean())
    real_sharp = float(torch.cat(sharp_x).mean()) if sharp_x else None
    if sharp_r:
        rec["sharpness_vs_real"] = float(torch.cat(sharp_r).mean()) / real_sharp
    out["reconstruction"] = rec

    g = torch.Generator().manual_seed(seed)
    samples = torch.cat([model.sample(min(500, n - i), generator=g).cpu() for i in range(0, n, 500)])
    f_real = torch.cat(f_real)
    f_fake = torch.cat([evaluator.features(s) for s in samples.split(500)])
    gen = {"frechet_distance": frechet_distance(f_real.numpy(), f_fake.numpy())}
    m = min(2000, n)
    gen["precision"], gen["recall"] = precision_recall(f_real[:m], f_fake[:m], k=3)
    if ds.info.is_image:
        gen["sharpness_vs_real"] = float(sharpness(samples.to(torch.float32)).mean()) / real_sharp
    if getattr(model, "conditional", False):
        k = ds.info.num_classes
        want = torch.arange(k).repeat_interleave(max(1, 1000 // k))
        got = torch.cat([evaluator.predict(model.sample(len(c), y=c.to(device), generator=g))
                         for c in want.split(500)])
        gen["conditional_accuracy"] = float((got == want).float().mean())
    out["generation"] = gen

    if hasattr(model, "log_likelihood"):
        ni = min(iw_examples, n)
        ll = torch.cat([model.log_likelihood(xb, k=iw_samples).cpu()
                        for xb in batches(x_np[:ni], device, 50)])
        out["likelihood"] = {"iw_nll": float(-ll.mean()), "iw_samples": iw_samples, "n": ni}

    m_train = min(10000, len(ds.y_train))
    z_train = torch.from_numpy(encode_all(model, ds.x_train[:m_train]))
    z_test = torch.from_numpy(encode_all(model, x_np))
    lat = {"knn_accuracy": knn_accuracy(z_train, torch.from_numpy(ds.y_train[:m_train]), z_test, y, k=5)}
    if z_test.shape[1] == 2:
        lat["silhouette"] = silhouette(z_test[:2000], y[:2000])
    out["latent"] = lat
    return out


def evaluate_run(run_dir: str | Path, n: int = 5000, iw_samples: int = 1000,
                 evaluator_epochs: int = 3, device: Optional[str] = None) -> dict:
    from ..engine.run import load_model, prepare_data

    run_dir = Path(run_dir)
    model, cfg = load_model(run_dir, map_location=device or "cpu")
    ds, _ = prepare_data(cfg)
    evaluator = get_evaluator(ds, epochs=evaluator_epochs, device=device or "cpu")
    result = evaluate_model(model, ds, evaluator, n=n, iw_samples=iw_samples, seed=cfg.seed)
    with atomic_path(run_dir / "eval" / "metrics.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    return result


def flatten(result: dict) -> dict[str, float]:
    """{"reconstruction": {"pixel_mse": x}} -> {"reconstruction.pixel_mse": x} (scalars only)."""
    flat = {}
    for k, v in result.items():
        if isinstance(v, dict):
            flat.update({f"{k}.{kk}": vv for kk, vv in v.items() if isinstance(vv, (int, float))})
        elif isinstance(v, float):
            flat[k] = v
    return flat
