"""Figures: image grids (Pillow), latent maps and curves (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..data import to_float
from ..fileio import atomic_path
from .infer import labels_for


def image_grid(images: torch.Tensor | np.ndarray, nrow: int = 8, pad: int = 2,
               pad_value: float = 1.0) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> uint8 (rows*H', nrow*W', C) with padding between cells."""
    x = images.detach().float().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images, np.float32)
    if x.ndim != 4:
        raise ValueError(f"image_grid needs (N, C, H, W), got shape {x.shape}")
    n, c, h, w = x.shape
    ncol = max(1, min(nrow, n))
    nrows = -(-n // ncol)
    grid = np.full((c, nrows * (h + pad) + pad, ncol * (w + pad) + pad), pad_value, np.float32)
    for i in range(n):
        r, k = divmod(i, ncol)
        grid[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = x[i]
    return (np.clip(grid, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)


def grid_image(images, nrow: int = 8, scale: int = 2):
    """``image_grid`` as a PIL image, enlarged ``scale`` times (nearest: pixels stay pixels)."""
    from PIL import Image

    arr = image_grid(images, nrow)
    img = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img


def save_grid(path: str | Path, images, nrow: int = 8, scale: int = 2) -> Path:
    """Write a PNG grid of images in [0, 1]; ``scale`` enlarges small images for viewing."""
    img = grid_image(images, nrow, scale)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return Path(path)


def labelled_grid(path: str | Path, images, nrow: int = 8, row_labels: Sequence[str] = (),
                  col_labels: Sequence[str] = (), scale: int = 2) -> Path:
    """``save_grid`` with names: ``row_labels`` left of the rows, ``col_labels`` above the columns."""
    from PIL import Image, ImageDraw, ImageFont

    grid = grid_image(images, nrow, scale).convert("RGB")
    font = ImageFont.load_default(size=11)
    measure = ImageDraw.Draw(grid)
    left = int(max((measure.textlength(t, font=font) for t in row_labels), default=-8)) + 8
    top = 16 if col_labels else 0
    page = Image.new("RGB", (grid.width + left, grid.height + top), "white")
    page.paste(grid, (left, top))
    draw, (h, w), pad = ImageDraw.Draw(page), images.shape[-2:], 2 * scale
    cell_h, cell_w = (h * scale + pad), (w * scale + pad)
    for r, text in enumerate(row_labels):
        draw.text((left - 4, top + pad + r * cell_h + h * scale / 2), text, fill="black", font=font, anchor="rm")
    for k, text in enumerate(col_labels):
        short = text if measure.textlength(text, font=font) <= cell_w else text[:max(1, int(cell_w / 7))] + "."
        draw.text((left + pad + k * cell_w + w * scale / 2, top / 2), short, fill="black", font=font, anchor="mm")
    with atomic_path(path) as tmp:
        page.save(tmp, format="PNG")
    return Path(path)


def save_gif(path: str | Path, frames, nrow: int = 8, scale: int = 2, ms: int = 120) -> Path:
    """An animated GIF, one grid of images (N, C, H, W) in [0, 1] per frame of ``frames``
    (T, N, C, H, W), looping."""

    images = [grid_image(frame, nrow, scale) for frame in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=ms, loop=0)
    return Path(path)


def interleave(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Inputs beside their reconstructions: a0 b0 a1 b1 ... (for a grid with an even nrow)."""
    return torch.stack([a.cpu(), b.cpu()], 1).flatten(0, 1)


@torch.no_grad()
def epoch_figures(model, ds, figures: Path, tag: str, seed: int = 0) -> list[Path]:
    """Samples from the prior and test reconstructions (inputs beside outputs)."""
    if not (ds.info.is_image and model.generative):
        return []
    was_training = model.training
    model.eval()
    x = to_float(ds.x_test[:32]).to(model.device)
    y = torch.from_numpy(ds.y_test[:32]).to(model.device) if model.conditional else None
    g = torch.Generator().manual_seed(seed)
    out = [save_grid(Path(figures) / f"samples_{tag}.png",
                     model.sample(64, labels_for(model, 64), generator=g), nrow=8),
           labelled_grid(Path(figures) / f"reconstructions_{tag}.png", interleave(x, model.reconstruct(x, y)),
                         nrow=8, col_labels=["input", "recon."] * 4)]
    model.train(was_training)
    return out


def figure_to_png(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


def class_colormap(k: int):
    """The colours of k classes in every latent figure (the map, the report's explorer)."""
    import matplotlib.pyplot as plt

    return plt.get_cmap("tab10" if k <= 10 else "tab20" if k <= 20 else "nipy_spectral", k)


def class_colors(k: int) -> list[str]:
    from matplotlib.colors import to_hex

    cmap = class_colormap(k)
    return [to_hex(cmap(i)) for i in range(k)]


def latent_map(path: str | Path, codes: np.ndarray, labels: np.ndarray,
               class_names: Optional[Sequence[str]] = None, title: str = "",
               decision: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]] = None,
               axis_labels: tuple[str, str] = ("z1", "z2")) -> Path:
    """Scatter of 2-D codes coloured by class; ``decision = (xx, yy, predicted class)`` shades
    the classifier's regions underneath (the SSAVAE paper's Figure 7)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = int(max(labels.max(initial=0), 0)) + 1
    if decision is not None:
        k = max(k, int(decision[2].max()) + 1)
    cmap = class_colormap(k)
    fig, ax = plt.subplots(figsize=(7, 6))
    if decision is not None:
        xx, yy, pred = decision
        ax.pcolormesh(xx, yy, pred, cmap=cmap, vmin=-0.5, vmax=k - 0.5, alpha=0.18, shading="auto")
    sc = ax.scatter(codes[:, 0], codes[:, 1], c=labels, cmap=cmap, vmin=-0.5, vmax=k - 0.5, s=3,
                    alpha=0.8, linewidths=0)
    if k <= 20:
        cb = fig.colorbar(sc, ax=ax, ticks=range(k))
        if class_names is not None and len(class_names) == k:
            cb.ax.set_yticklabels(class_names)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(title)
    return figure_to_png(fig, Path(path))


def curves(path: str | Path, rows: list[dict], title: str = "") -> Optional[Path]:
    """One panel per logged quantity against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for r in rows for k, v in r.items()
                   if isinstance(v, (int, float)) and k not in ("step", "epoch", "time")})
    if not keys:
        return None
    ncol = min(4, len(keys))
    nrow = -(-len(keys) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.4 * nrow), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        pts = [(r["step"], r[key]) for r in rows if key in r]
        ax.plot(*zip(*pts), lw=1)
        ax.set_title(key, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return figure_to_png(fig, Path(path))
