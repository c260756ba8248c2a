"""Metric functions on batches of images and labels (pure, tested on hand-computed cases)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def sharpness(x: torch.Tensor) -> torch.Tensor:
    """Variance of the Laplacian per image (B,): high for crisp edges, low for blur.

    x: (B, C, H, W) in [0, 1]. Compare a model's images with real ones on the same data.
    """
    b, c, h, w = x.shape
    k = _LAPLACE.to(x)[None, None]
    lap = F.conv2d(x.reshape(b * c, 1, h, w), k)  # valid convolution: no border artefacts
    return lap.reshape(b, c, -1).var(-1).mean(1)


def high_frequency_power(x: torch.Tensor, cutoff: float = 0.45) -> torch.Tensor:
    """Fraction of each image's spectral power (mean removed) at spatial frequencies above
    ``cutoff`` cycles per pixel in either direction (B,): the band where the checkerboard of
    stride-2 transposed convolutions lives (0.5 cycles/pixel, the highest there is). Measured on
    the v0.1 demo's Fashion-MNIST reconstructions: 3.2x real images' power in the 0.45-0.5 band,
    but 0.5-0.7x in the bands from 0.3 to 0.45, so a wider band would hide the artefact.

    x: (B, C, H, W). Compare a model's images with real ones on the same data: a ratio well
    above 1 means artefacts real images do not have; below 1, blur.
    """
    b, c, h, w = x.shape
    x = x.float() - x.float().mean((-2, -1), keepdim=True)
    power = torch.fft.fft2(x).abs().pow(2)  # (B, C, H, W)
    fy = torch.fft.fftfreq(h, device=x.device).abs()[:, None]
    fx = torch.fft.fftfreq(w, device=x.device).abs()[None, :]
    high = ((fy > cutoff) | (fx > cutoff)).to(power.dtype)
    total = power.sum((-2, -1)).clamp(min=1e-12)
    return ((power * high).sum((-2, -1)) / total).mean(1)


def power_spectrum(x: torch.Tensor) -> torch.Tensor:
    """Mean spectral power (H, W) of images (B, C, H, W), each image's mean removed."""
    x = x.float() - x.float().mean((-2, -1), keepdim=True)
    return torch.fft.fft2(x).abs().pow(2).mean((0, 1))


def spectral_peaks(x: torch.Tensor, ref: torch.Tensor, cutoff: float = 0.2) -> float:
    """Periodic artefacts (checkerboards, plaid grids at an upsampling or stride period) as
    peaks in the ratio r of the mean power spectrum of ``x`` to that of real images ``ref``,
    at spatial frequencies of at least ``cutoff`` cycles per pixel: the mean positive excess of r
    over its own 3x3 neighbourhood mean, over the mean of r. Blur scales r smoothly and adds no
    peaks; a pattern at one frequency does. Sampling noise sets a floor, so compare with the same
    number computed for other real images of the same count (``Context``: "peaks / real").
    Measured on Fashion-MNIST, 2,500 images against 2,500 others (docs/evaluation.md): a 3x3
    box blur of real images 1.9x the real floor, a transposed-convolution checkerboard 19.7x; on
    the validation rows of results.md, a VAE's samples 2.5x, SSAVAE's plaid at beta >= 0.02
    5.1-6.1x."""
    h, w = ref.shape[-2:]
    r = power_spectrum(x) / power_spectrum(ref).clamp(min=1e-12)  # (H, W)
    local = F.avg_pool2d(F.pad(r[None, None], (1, 1, 1, 1), mode="circular"), 3, 1)[0, 0]
    fy = torch.fft.fftfreq(h, device=r.device).abs()[:, None]
    fx = torch.fft.fftfreq(w, device=r.device).abs()[None, :]
    band = torch.maximum(fy, fx) >= cutoff
    return float((r - local).clamp(min=0)[band].mean() / r[band].mean().clamp(min=1e-12))


def accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of equal labels, ignoring targets of -1."""
    known = target >= 0
    return float((pred[known] == target[known]).float().mean()) if known.any() else float("nan")


def wilson_interval(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's score interval of a proportion ``p`` observed on ``n`` examples (95 % at z = 1.96);
    (nan, nan) without examples."""
    if n == 0 or p != p:
        return float("nan"), float("nan")
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def pixel_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per example (B,)."""
    return (a - b).pow(2).flatten(1).mean(1)


def frechet_distance(a, b) -> float:
    """||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)) between Gaussians fitted to two
    feature sets (N, D) (Heusel et al. 2017, with our evaluator's features, not Inception's)."""
    import numpy as np
    import scipy.linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(ca @ cb)
    if not np.isfinite(covmean).all():  # near-singular product: regularize, as is usual
        eps = 1e-6 * np.eye(ca.shape[0])
        covmean = scipy.linalg.sqrtm((ca + eps) @ (cb + eps))
    d = float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * covmean.real))
    return max(d, 0.0)


def _kth_neighbour_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    d = torch.cdist(x, x)
    return d.kthvalue(k + 1, dim=1).values  # +1: the point itself is at distance 0


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """k-NN precision (fakes inside the real manifold) and recall (reals inside the fake
    manifold) of Kynkaanniemi et al. 2019; each manifold is the union of k-NN balls."""
    real, fake = real.double(), fake.double()
    r_real, r_fake = _kth_neighbour_radius(real, k), _kth_neighbour_radius(fake, k)
    d = torch.cdist(fake, real)  # (F, R)
    precision = float((d <= r_real[None, :]).any(1).float().mean())
    recall = float((d.T <= r_fake[None, :]).any(1).float().mean())
    return precision, recall


def knn_accuracy(z_train: torch.Tensor, y_train: torch.Tensor, z_test: torch.Tensor,
                 y_test: torch.Tensor, k: int = 5) -> float:
    """Accuracy of a k-nearest-neighbour vote of labeled training codes on test codes."""
    keep = y_train >= 0
    z_train, y_train = z_train[keep].float(), y_train[keep]
    preds = []
    for chunk in z_test.float().split(1000):
        idx = torch.cdist(chunk, z_train).topk(k, largest=False).indices  # (B, k)
        preds.append(torch.mode(y_train[idx], dim=1).values)
    return accuracy(torch.cat(preds), y_test)


def silhouette(z: torch.Tensor, y: torch.Tensor) -> float:
    """Mean silhouette coefficient of the labeled codes (-1 .. 1; higher = better separated)."""
    keep = y >= 0
    z, y = z[keep].double(), y[keep]
    d = torch.cdist(z, z)
    classes = y.unique()
    if len(classes) < 2:
        return float("nan")
    mean_to = torch.stack([d[:, y == c].sum(1) / ((y == c).sum() - (y == c).long()).clamp(min=1)
                           for c in classes], 1)  # (N, C); own class excludes the point itself
    own = (y[:, None] == classes[None, :])
    a = mean_to[own]
    b = mean_to.masked_fill(own, float("inf")).min(1).values
    s = (b - a) / torch.maximum(a, b)
    return float(s.mean())


# ---------------------------------------------------------------------------- clustering


def clusters_by_confidence(proba: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Makhzani et al.'s protocol: each cluster takes the label of the image (of ``proba``, (N, K)
    soft assignments, labels ``y`` (N,)) it is most confident about. -> (K,) labels."""
    return y[proba.argmax(0)]


def clusters_by_majority(assign: torch.Tensor, y: torch.Tensor, k: int, num_classes: int) -> torch.Tensor:
    """Each cluster takes the most common label of the images assigned to it (an empty
    cluster: the most common label overall). -> (K,) labels."""
    counts = torch.zeros(k, num_classes, dtype=torch.long)
    counts.index_put_((assign, y), torch.ones_like(y), accumulate=True)
    labels = counts.argmax(1)
    labels[counts.sum(1) == 0] = torch.bincount(y, minlength=num_classes).argmax()
    return labels


def hungarian_accuracy(assign: torch.Tensor, y: torch.Tensor, num_classes: int) -> float:
    """Accuracy under the best one-to-one matching of clusters to classes (as many clusters
    as classes), found by the Hungarian algorithm on the confusion matrix."""
    from scipy.optimize import linear_sum_assignment

    counts = torch.zeros(num_classes, num_classes, dtype=torch.long)
    counts.index_put_((assign, y), torch.ones_like(y), accumulate=True)
    rows, cols = linear_sum_assignment(counts.numpy(), maximize=True)
    return float(counts[rows, cols].sum()) / max(len(y), 1)
