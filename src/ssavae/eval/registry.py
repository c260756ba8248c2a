"""Every metric of the project, in one registry read by ``ssavae evaluate``, each run's summary
and ``ssavae compare``. Adding a metric is one decorated function here.

Metrics use only the models' public inference API and their declared capabilities, so each
applies to every family that can support it:

- classification (``has_classifier``): accuracy, error, confusion matrix;
- reconstruction: pixel MSE and BCE, error in the evaluator's feature space, class consistency,
  sharpness, texture (high-frequency spectral power) and spectral peaks (periodic artefacts)
  against real images;
- generation: Frechet distance between evaluator features of test images and of samples (an
  "FID" computed with our own evaluator, not Inception: comparable only within this project),
  k-NN precision and recall (Kynkaanniemi et al. 2019), sharpness, texture, and for families that sample
  a requested class, the evaluator's accuracy on those samples;
- likelihood (``has_likelihood``): negative ELBO and importance-weighted NLL in nats;
- latent space: k-NN accuracy of test codes against training codes; silhouette for 2-D codes.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from ..data import Dataset
from .evaluator import Evaluator
from .metrics import (accuracy, clusters_by_confidence, clusters_by_majority, frechet_distance,
                      high_frequency_power, hungarian_accuracy, knn_accuracy, precision_recall, sharpness,
                      silhouette, spectral_peaks, wilson_interval)
from .completion import nearest_code_completion, pool_images
from .infer import Shards, batches, labels_for, over_batches


@dataclass(frozen=True)
class Metric:
    key: str  # "group.name": its place in metrics.json and summary.json
    label: str  # column header in comparison tables ("" = not a column)
    fn: Callable[["Context"], object]
    applies: Callable[["Context"], bool]
    evaluator: bool = False  # needs the independent evaluator (not in a run's summary)
    summary: bool = False  # also computed at the end of every run (cheap)


METRICS: dict[str, Metric] = {}


def metric(key: str, label: str = "", applies: Callable[["Context"], bool] = lambda c: True,
           evaluator: bool = False, summary: bool = False):
    """Register ``fn(ctx) -> value`` as metric ``key``."""
    def add(fn):
        if key in METRICS:
            raise RuntimeError(f"metric {key!r} is registered twice")
        METRICS[key] = Metric(key, label, fn, applies, evaluator, summary)
        return fn

    return add


class Context:
    """The model, the test data and the intermediate results metrics share, computed once."""

    def __init__(self, model, ds: Dataset, evaluator: Optional[Evaluator] = None,
                 n: Optional[int] = None, iw_samples: int = 1000, iw_examples: int = 500,
                 seed: int = 0, shards: Optional[Shards] = None):
        self.model, self.ds, self.evaluator, self.shards = model, ds, evaluator, shards
        self.n = min(n or len(ds.y_test), len(ds.y_test))
        self.x_np = ds.x_test[:self.n]
        self.y = torch.from_numpy(ds.y_test[:self.n])
        self.iw_samples, self.iw_examples, self.seed = iw_samples, iw_examples, seed

    def over_test(self, fn, x_np=None, batch_size: int = 500, shard: bool = True) -> torch.Tensor:
        """``fn(x_batch, y_batch)`` over the test images, concatenated on the CPU; split across
        the processes of a distributed run unless ``shard`` is False (a random stream that must
        run in one order)."""
        return over_batches(self.model, self.x_np if x_np is None else x_np, self.y, fn, batch_size,
                            self.shards if shard else None)

    @functools.cached_property
    def recon(self) -> torch.Tensor:
        return self.over_test(lambda xb, yb: self.model.reconstruct(xb, yb))

    @functools.cached_property
    def x(self) -> torch.Tensor:
        return torch.cat(list(batches(self.x_np, "cpu")))

    @functools.cached_property
    def samples(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed)
        out = []
        for i in range(0, self.n, 500):
            m = min(500, self.n - i)
            out.append(self.model.sample(m, labels_for(self.model, m), generator=g).cpu())
        return torch.cat(out)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.evaluator.features(b) for b in x.split(500)])

    @functools.cached_property
    def real_features(self) -> torch.Tensor:
        return self.features(self.x)

    @functools.cached_property
    def fake_features(self) -> torch.Tensor:
        return self.features(self.samples)

    @functools.cached_property
    def precision_recall(self) -> tuple[float, float]:
        m = min(2000, self.n)
        return precision_recall(self.real_features[:m], self.fake_features[:m], k=3)

    @functools.cached_property
    def real_sharpness(self) -> float:
        return float(sharpness(self.x).mean())

    @functools.cached_property
    def real_texture(self) -> float:
        return float(high_frequency_power(self.x).mean())

    @property
    def other_half(self) -> slice:
        """The real images that are not the spectral reference (the first half)."""
        return slice(self.n // 2, 2 * (self.n // 2))

    @functools.cached_property
    def real_peak_floor(self) -> float:
        """``spectral_peaks`` of the other half of the real images against the first half."""
        return spectral_peaks(self.x[self.other_half], self.x[:self.n // 2])

    def peaks_vs_real(self, images: torch.Tensor) -> float:
        """``spectral_peaks`` of ``images`` (as many as the other half) over the real floor."""
        ref = self.x[:self.n // 2]
        return spectral_peaks(images[:len(ref)], ref) / max(self.real_peak_floor, 1e-12)

    @functools.cached_property
    def completions(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(draws (n, COMPLETION_DRAWS, *shape), the observed masks (n, 1, H, W)) on the CPU."""
        g = torch.Generator().manual_seed(self.seed)
        draws = self.over_test(lambda xb, yb: self.model.complete(xb, COMPLETION_DRAWS, generator=g),
                               shard=False)
        masks = torch.cat([self.model.observed_mask(min(500, self.n - i)).cpu()
                           for i in range(0, self.n, 500)])  # as over_test's batches get them
        return draws, masks

    @functools.cached_property
    def nearest_code(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(the test images completed from their top half by ``nearest_code_completion`` over the
        first NEAREST_CODE_POOL training images, the top-half mask (n, 1, H, W)) on the CPU."""
        mask = torch.zeros(len(self.x), 1, *self.x.shape[2:])
        mask[:, :, : self.x.shape[2] // 2] = 1
        done = nearest_code_completion(self.model, self.x, mask, pool_images(self.ds, NEAREST_CODE_POOL))
        return done.cpu(), mask

    @functools.cached_property
    def predicted(self) -> torch.Tensor:
        return self.over_test(lambda xb, yb: self.model.predict_proba(xb).argmax(1))

    @functools.cached_property
    def cluster_proba(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(q(cluster | x) of every training image, their labels, of the test images)."""
        y_train = torch.from_numpy(self.ds.y_train)
        train = over_batches(self.model, self.ds.x_train, y_train, lambda xb, yb: self.model.cluster_proba(xb))
        return train, y_train, self.over_test(lambda xb, yb: self.model.cluster_proba(xb))

    @functools.cached_property
    def codes(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(train codes, their labels, test codes) for the latent metrics."""
        m = min(10000, len(self.ds.y_train))
        y_train = torch.from_numpy(self.ds.y_train[:m])
        z_train = over_batches(self.model, self.ds.x_train[:m], y_train,
                               lambda xb, yb: self.model.encode(xb, yb))
        return z_train, y_train, self.over_test(lambda xb, yb: self.model.encode(xb, yb))


COMPLETION_DRAWS = 4  # completions drawn per test image for the completion metrics
NEAREST_CODE_POOL = 20000  # training images whose decoded codes the completion baseline picks from


def _ratio(value: float, real: float) -> float:
    """A measure of generated images relative to the real ones' (NaN when the real images have
    none of it, e.g. flat images without texture)."""
    return value / real if real else float("nan")


def _classifier(c: Context) -> bool:
    return c.model.has_classifier


def _generative(c: Context) -> bool:
    return c.model.generative


def _image(c: Context) -> bool:
    return c.model.generative and c.ds.info.is_image


def _likelihood(c: Context) -> bool:
    return c.model.has_likelihood


@metric("classification.accuracy", "test accuracy", _classifier, summary=True)
def _accuracy(c):
    return accuracy(c.predicted, c.y)


@metric("classification.n_labeled", "", _classifier, summary=True)
def _n_labeled(c):
    """How many labeled test examples the accuracy is computed on."""
    return int((c.y >= 0).sum())


@metric("classification.accuracy_ci95", "", _classifier, summary=True)
def _accuracy_ci(c):
    """Wilson's 95 % interval of the accuracy over its n_labeled examples ([low, high])."""
    return list(wilson_interval(accuracy(c.predicted, c.y), int((c.y >= 0).sum())))


@metric("classification.error", "", _classifier)
def _error(c):
    return 1 - accuracy(c.predicted, c.y)


@metric("classification.confusion", "", _classifier)
def _confusion(c):
    k, known = c.ds.info.num_classes, c.y >= 0
    return torch.bincount(c.y[known] * k + c.predicted[known], minlength=k * k).reshape(k, k).tolist()


@metric("reconstruction.pixel_mse", "recon MSE", _generative, summary=True)
def _pixel_mse(c):
    return float((c.recon - c.x).pow(2).flatten(1).mean(1).mean())


@metric("reconstruction.pixel_bce", "", lambda c: c.model.generative and c.ds.info.unit_range)
def _pixel_bce(c):
    return float(F.binary_cross_entropy(c.recon.clamp(1e-6, 1 - 1e-6), c.x, reduction="none")
                 .flatten(1).sum(1).mean())


@metric("reconstruction.feature_error", "", _generative, evaluator=True)
def _feature_error(c):
    return float((c.real_features - c.features(c.recon)).pow(2).mean(1).mean())


@metric("reconstruction.encoder_feature_error", "", lambda c: hasattr(c.model, "feature_layers"))
def _encoder_feature_error(c):
    """SSAVAE's step-2 reconstruction loss itself: the distance between the frozen encoder's
    chosen hidden layers on a test image and on its reconstruction (``losses.feature_distance``
    with the model's layers, weights and reduction), averaged over the test images."""
    from .. import losses

    m = c.model

    def per_batch(xb, yb):
        fx, fr = m.enc(xb, return_features=True)[2], m.enc(m.reconstruct(xb), return_features=True)[2]
        return losses.feature_distance([fx[j] for j in m.feature_layers], [fr[j] for j in m.feature_layers],
                                       m.cfg.feature_weights, m.cfg.feature_reduction)

    return float(c.over_test(per_batch).mean())


@metric("reconstruction.class_consistency", "recon class kept", _generative, evaluator=True)
def _class_consistency(c):
    pred = torch.cat([c.evaluator.predict(b) for b in c.recon.split(500)])
    return accuracy(pred, c.y)


@metric("reconstruction.sharpness_vs_real", "", _image)
def _recon_sharpness(c):
    return _ratio(float(sharpness(c.recon).mean()), c.real_sharpness)


@metric("reconstruction.texture_vs_real", "recon texture / real", _image, summary=True)
def _recon_texture(c):
    return _ratio(float(high_frequency_power(c.recon).mean()), c.real_texture)


@metric("reconstruction.peaks_vs_real", "recon spectral peaks / real", _image)
def _recon_peaks(c):
    return c.peaks_vs_real(c.recon[c.other_half])  # of the images that are not the reference


@metric("generation.frechet_distance", "Frechet dist. (evaluator)", _generative, evaluator=True)
def _frechet(c):
    return frechet_distance(c.real_features.numpy(), c.fake_features.numpy())


@metric("generation.precision", "precision", _generative, evaluator=True)
def _precision(c):
    return c.precision_recall[0]


@metric("generation.recall", "recall", _generative, evaluator=True)
def _recall(c):
    return c.precision_recall[1]


@metric("generation.sharpness_vs_real", "sample sharpness / real", _image)
def _sample_sharpness(c):
    return _ratio(float(sharpness(c.samples.float()).mean()), c.real_sharpness)


@metric("generation.texture_vs_real", "sample texture / real", _image)
def _sample_texture(c):
    return _ratio(float(high_frequency_power(c.samples).mean()), c.real_texture)


@metric("generation.peaks_vs_real", "sample spectral peaks / real", _image)
def _sample_peaks(c):
    return c.peaks_vs_real(c.samples)


@metric("generation.conditional_accuracy", "",
        lambda c: c.model.generative and (c.model.conditional or c.model.class_sampling), evaluator=True)
def _conditional_accuracy(c):
    k = c.ds.info.num_classes
    want = torch.arange(k).repeat_interleave(max(1, 1000 // k))
    g = torch.Generator().manual_seed(c.seed)
    got = torch.cat([c.evaluator.predict(c.model.sample(len(w), w.to(c.model.device), generator=g))
                     for w in want.split(500)])
    return float((got == want).float().mean())


def _completes(c: Context) -> bool:
    return c.model.completes


def _missing_mse(draws: torch.Tensor, x: torch.Tensor, m: torch.Tensor) -> float:
    """Squared error of ``draws`` (n, draws, *shape) on the unobserved pixels (``m`` (n, 1, H, W)
    = 0) only, per image, mean over images and draws."""
    missing = (1 - m)[:, None]  # (n, 1, 1, H, W)
    err = ((draws - x[:, None]).pow(2) * missing).flatten(2).sum(2)  # (n, draws)
    return float((err / missing.flatten(2).sum(2).clamp(min=1) / x.shape[1]).mean())


@metric("completion.missing_mse", "completion MSE (missing part)", _completes, summary=True)
def _completion_mse(c):
    draws, m = c.completions
    return _missing_mse(draws, c.x, m)


@metric("completion.diversity", "completion diversity", _completes)
def _completion_diversity(c):
    """Standard deviation across an image's draws, on its unobserved pixels, mean over images:
    0 for a model that always draws the same completion."""
    draws, m = c.completions
    missing = 1 - m  # (n, 1, H, W)
    sd = draws.std(1) * missing  # (n, C, H, W)
    return float((sd.flatten(1).sum(1) / (missing.flatten(1).sum(1) * draws.shape[2]).clamp(min=1)).mean())


@metric("completion.class_kept", "completion class kept", _completes, evaluator=True)
def _completion_class_kept(c):
    """How often the evaluator gives a completed image (first draw) its true class."""
    return float((c.evaluator.predict(c.completions[0][:, 0]) == c.y).float().mean())


def _nearest_code(c: Context) -> bool:
    """Image autoencoders that neither complete nor need a label: the completion baseline."""
    return _image(c) and not (c.model.completes or c.model.conditional)


@metric("completion.nearest_code_missing_mse", "", _nearest_code)
def _nearest_code_mse(c):
    """The baseline for ``completion.missing_mse`` of a top-half ``cvae_completion``: the bottom half of
    each test image from the decoded training code whose top half is nearest (eval/completion.py)."""
    done, m = c.nearest_code
    return _missing_mse(done[:, None], c.x, m)


@metric("completion.nearest_code_class_kept", "", _nearest_code, evaluator=True)
def _nearest_code_class_kept(c):
    return float((c.evaluator.predict(c.nearest_code[0]) == c.y).float().mean())


@metric("likelihood.neg_elbo", "", _likelihood, summary=True)
def _neg_elbo(c):
    return float(c.over_test(lambda xb, yb: c.model.negative_elbo(xb)).mean())


@metric("likelihood.iw_nll", "IW NLL (nats)", _likelihood, evaluator=True)
def _iw_nll(c):
    ni = min(c.iw_examples, c.n)
    ll = c.over_test(lambda xb, yb: c.model.log_likelihood(xb, k=c.iw_samples), c.x_np[:ni], 50)
    return float(-ll.mean())


def _clusters(c: Context) -> bool:
    return c.model.clusters and (c.ds.y_train >= 0).all()


def _cluster_accuracy(c: Context, to_labels) -> float:
    train, y_train, test = c.cluster_proba
    return accuracy(to_labels(train, y_train)[test.argmax(1)], c.y)


@metric("clustering.accuracy", "cluster acc. (most confident)", _clusters)
def _clustering_confident(c):
    """Makhzani et al.'s protocol: a cluster's label is that of its most confident training image."""
    return _cluster_accuracy(c, clusters_by_confidence)


@metric("clustering.accuracy_majority", "cluster acc. (majority)", _clusters)
def _clustering_majority(c):
    """A cluster's label is the most common one of the training images it holds."""
    k, classes = c.cluster_proba[0].shape[1], c.ds.info.num_classes
    return _cluster_accuracy(c, lambda p, y: clusters_by_majority(p.argmax(1), y, k, classes))


@metric("clustering.accuracy_hungarian", "cluster acc. (one-to-one)",
        lambda c: _clusters(c) and c.cluster_proba[0].shape[1] == c.ds.info.num_classes)
def _clustering_hungarian(c):
    """The best one-to-one matching of clusters to classes, on the test images."""
    return hungarian_accuracy(c.cluster_proba[2].argmax(1), c.y, c.ds.info.num_classes)


@metric("clustering.used", "", _clusters)
def _clusters_used(c):
    """How many clusters hold at least one test image."""
    return int(c.cluster_proba[2].argmax(1).unique().numel())


@metric("latent.knn_accuracy", "latent 5-NN acc.", evaluator=True)
def _knn(c):
    z_train, y_train, z_test = c.codes
    return knn_accuracy(z_train, y_train, z_test, c.y, k=5)


@metric("latent.silhouette", "", lambda c: c.model.code_dim == 2, evaluator=True)
def _silhouette(c):
    return silhouette(c.codes[2][:2000], c.y[:2000])


@torch.no_grad()
def compute_metrics(ctx: Context, summary_only: bool = False) -> dict:
    """Every registered metric that applies: ``{"group.name": value}``."""
    ctx.model.eval()
    out = {}
    for m in METRICS.values():
        if summary_only and not m.summary:
            continue
        if (m.evaluator and ctx.evaluator is None) or not m.applies(ctx):
            continue
        out[m.key] = m.fn(ctx)
    return out


def evaluate_model(model, ds: Dataset, evaluator: Evaluator, n: int = 5000, iw_samples: int = 1000,
                   iw_examples: int = 500, seed: int = 0) -> dict:
    """metrics.json: the run's identity, then every metric nested by group."""
    ctx = Context(model, ds, evaluator, n, iw_samples, iw_examples, seed)
    out: dict = {"model": model.name, "dataset": ds.name, "n_test": ctx.n,
                 "evaluator_test_accuracy": evaluator.test_accuracy}
    for key, value in compute_metrics(ctx).items():
        group, name = key.split(".", 1)
        out.setdefault(group, {})[name] = value
    if "likelihood" in out:
        out["likelihood"].update(iw_samples=iw_samples, n=min(iw_examples, ctx.n))
    return out


def is_percent(key: str) -> bool:
    """Accuracies and error rates (``classification.accuracy``, ``clustering.accuracy_majority``,
    ``evaluator_test_accuracy``, ``classification.error``) are shown in percent; every other number
    as it is."""
    name = key.rsplit(".", 1)[-1]
    return name.startswith("accuracy") or name.endswith("_accuracy") or name == "error"


def better(key: str) -> "str | None":
    """Which way a metric improves: "max", "min", or "one" (a ratio to real images, best at 1)."""
    name = key.rsplit(".", 1)[-1]
    if name.endswith("_vs_real"):
        return "one"
    if name.startswith(("accuracy", "precision", "recall", "class_consistency", "class_kept", "knn", "silhouette")):
        return "max"
    if any(w in name for w in ("mse", "bce", "error", "frechet", "nll", "elbo")):
        return "min"
    return None


def flatten(result: dict) -> dict[str, float]:
    """{"reconstruction": {"pixel_mse": x}} -> {"reconstruction.pixel_mse": x} (scalars only)."""
    flat = {}
    for k, v in result.items():
        if isinstance(v, dict):
            flat.update({f"{k}.{kk}": vv for kk, vv in v.items()
                         if isinstance(vv, (int, float)) and not isinstance(vv, bool)})
        elif isinstance(v, (int, float)) and not isinstance(v, bool):  # n_test: the count behind the numbers
            flat[k] = v
    return flat


def table_columns() -> list[tuple[str, str]]:
    """(metric key, header) of every metric shown in comparison tables."""
    return [(m.key, m.label) for m in METRICS.values() if m.label]


@torch.no_grad()
def summarize(model, ds: Dataset, progress: dict, shards: Optional[Shards] = None) -> dict:
    """The run's summary.json: every registered metric marked ``summary`` (cheap, no evaluator),
    on the whole test set; with ``shards`` every process of a distributed run calls it, computes
    its block of the test set and gets the same result."""
    out: dict = {"model": model.name, "dataset": ds.name, "steps": progress.get("global_step"),
                 "n_test": int(len(ds.y_test))}
    out.update(compute_metrics(Context(model, ds, shards=shards), summary_only=True))
    return out
