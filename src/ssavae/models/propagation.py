"""Pseudo-labels by label propagation over a k-nearest-neighbour graph of the training set
(Iscen, Tolias, Avrithis & Chum, "Label Propagation for Deep Semi-supervised Learning", CVPR 2019;
docs/semisup.md). Shared by every semi-supervised family (``model.graph_weight``).

At the start of each epoch of the family's classifying phase, from features ``v_i`` of every
training example (the family's ``graph_features``: the code the classifier reads; with
``graph_inputs`` the standardized input vector joins it)::

    s_ij = max(0, <v_i, v_j> / |v_i| |v_j|) ** power     for the k nearest j of i (cosine), else 0
    W = S + S^T;   W_n = D^-1/2 W D^-1/2                  (D: W's row sums)
    (I - alpha W_n) Z = Y,  Y_ij = 1 / |L_j| if i is labeled j   (conjugate gradient, per class)
    p_i = max(Z_i, 0) / sum_j max(Z_ij, 0);   y^_i = argmax_j p_ij
    w_i = 1 - H(p_i) / log K                             (certainty of the propagated label)
    c_j = N_u / (K |{i unlabeled: y^_i = j}|)            (class balance over the pseudo-labels)

and the families add, on the mixed batch's unlabeled examples,
``graph_weight * mean_i c_{y^_i} w_i CE(logits_i, y^_i)``. The graph is built in row chunks
(``chunk`` x N similarities at a time, k per row kept): memory O(N k), never N x N.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import cg
from torch import nn


POWER = 3.0  # s_ij = max(0, cos)^POWER (Iscen et al.)


def nearest(queries: torch.Tensor, rows: torch.Tensor, k: int, power: float = POWER,
            first_self: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(affinities (Q, k), indices (Q, k)) of each query's k nearest ``rows`` by cosine,
    affinity max(0, cos)^power. ``first_self``: the queries are rows first_self, first_self + 1,
    ... themselves, never their own neighbours."""
    s = F.normalize(queries.float(), dim=1) @ F.normalize(rows.float(), dim=1).T  # (Q, N)
    if first_self is not None:
        s[torch.arange(len(s)), torch.arange(first_self, first_self + len(s))] = -2.0
    top, idx = s.topk(k, dim=1)
    return top.clamp_min(0).pow(power), idx


def knn_graph(features: torch.Tensor, k: int, power: float = POWER, chunk: int = 1024) -> sp.csr_matrix:
    """The symmetric affinity matrix W = S + S^T (N x N, sparse) of the cosine k-NN graph."""
    n = len(features)
    k = min(k, n - 1)
    rows, cols, vals = [], [], []
    for i in range(0, n, chunk):
        top, idx = nearest(features[i:i + chunk], features, k, power, first_self=i)
        rows.append(torch.arange(i, i + len(idx)).repeat_interleave(k))
        cols.append(idx.flatten())
        vals.append(top.flatten())
    s = sp.csr_matrix((torch.cat(vals).double().numpy(), (torch.cat(rows).numpy(), torch.cat(cols).numpy())),
                      shape=(n, n))
    return (s + s.T).tocsr()


def propagate(w: sp.spmatrix, y: np.ndarray, num_classes: int, alpha: float = 0.99,
              iters: int = 20) -> np.ndarray:
    """Z (N, K) solving (I - alpha W_n) Z = Y by conjugate gradient (``iters`` steps per class);
    ``y``: (N,) class of each labeled example, -1 elsewhere. A class with no labeled example
    gets a zero column."""
    n = w.shape[0]
    d = np.asarray(w.sum(1)).ravel()
    inv_sqrt = np.where(d > 0, 1.0 / np.sqrt(np.where(d > 0, d, 1.0)), 0.0)
    dn = sp.diags(inv_sqrt)
    a = sp.eye(n, format="csr") - alpha * (dn @ w @ dn)
    z = np.zeros((n, num_classes))
    for j in range(num_classes):
        rows = np.flatnonzero(y == j)
        if len(rows) == 0:
            continue
        b = np.zeros(n)
        b[rows] = 1.0 / len(rows)
        z[:, j], _ = cg(a, b, rtol=1e-6, maxiter=iters)
    return z


def certainty(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p, y^, w): the propagated scores as probabilities (N, K), their argmax (N,) and the
    certainty weight 1 - H(p) / log K in [0, 1] (0 for a row that received nothing)."""
    z = np.clip(z, 0.0, None)
    total = z.sum(1, keepdims=True)
    k = z.shape[1]
    p = np.where(total > 0, z / np.where(total > 0, total, 1.0), 1.0 / k)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(1)
    return p, p.argmax(1), np.clip(1.0 - h / math.log(k), 0.0, 1.0)


def class_balance(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """c_j = n / (K n_j) for the pseudo-labels ``labels`` (1 for every class when balanced; a
    class nobody was given gets 0, it weighs nothing)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return np.where(counts > 0, len(labels) / (num_classes * np.where(counts > 0, counts, 1.0)), 0.0)


class GraphLabels(nn.Module):
    """The current pseudo-labels of every training example, as buffers (so a checkpoint taken
    inside an epoch resumes with the labels that epoch began with): ``target`` (N,) and
    ``weight`` (N,) = class balance x certainty, 0 on labeled examples and before the first
    refresh."""

    def __init__(self, k: int = 20, alpha: float = 0.99, power: float = 3.0, iters: int = 20):
        super().__init__()
        self.k, self.alpha, self.power, self.iters = k, alpha, power, iters
        self.register_buffer("target", torch.zeros(0, dtype=torch.long))
        self.register_buffer("weight", torch.zeros(0))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("target", "weight"):  # sized by the training set, not by the config
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def ready(self) -> bool:
        return len(self.target) > 0

    @torch.no_grad()
    def refresh(self, features: torch.Tensor, y: torch.Tensor, num_classes: int) -> dict:
        """Propagate the labels ``y`` (N,; -1 unlabeled) over the graph of ``features`` (N, D);
        returns what to log (the share of unlabeled examples each class got, the mean weight)."""
        y_np = y.cpu().numpy()
        z = propagate(knn_graph(features.cpu(), self.k, self.power), y_np, num_classes, self.alpha, self.iters)
        _, hard, cert = certainty(z)
        unlabeled = y_np < 0
        balance = class_balance(hard[unlabeled], num_classes) if unlabeled.any() else np.ones(num_classes)
        weight = np.where(unlabeled, balance[hard] * cert, 0.0)
        dev = self.target.device
        self.target = torch.from_numpy(hard).long().to(dev)
        self.weight = torch.from_numpy(weight).float().to(dev)
        return {"graph_certainty": float(cert[unlabeled].mean()) if unlabeled.any() else 1.0}

    def loss(self, logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The weighted mean CE of ``logits`` (B, K) against the pseudo-labels of rows ``index``
        (B,); rows with weight 0 (labeled ones) count in the mean's denominator only when any
        unlabeled row is present (the term is the mean over the batch's unlabeled rows)."""
        index = index.to(self.target.device)
        w, t = self.weight[index], self.target[index]
        present = (w > 0).sum().clamp_min(1)
        ce = F.cross_entropy(logits.float(), t.to(logits.device), reduction="none")
        return (w.to(ce.device) * ce).sum() / present.to(ce.device)


def features_in_batches(fn, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                        inputs: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, D), labels (N,)) of one ordered pass; ``inputs``: the flattened input joins
    the features, each part L2-normalized and weighted 1/sqrt(2), so a cosine over the joint
    vector is the mean of the two cosines."""
    feats, labels = [], []
    for x, y in batches:
        f = fn(x).float()
        if inputs:
            f = torch.cat([F.normalize(f, dim=1), F.normalize(x.flatten(1).float(), dim=1)], 1) / math.sqrt(2)
        feats.append(f.cpu())
        labels.append(y.cpu() if y is not None else torch.full((len(x),), -1))
    return torch.cat(feats), torch.cat(labels)


class EMAWeights(nn.Module):
    """An exponential moving average of some modules' parameters, kept as buffers (so it is
    saved and resumed with the model): the mean teacher of Tarvainen & Valpola (2017).
    ``update()`` after each optimizer step: ``ema <- decay * ema + (1 - decay) * theta``;
    ``call(name, *args)`` runs module ``name`` with the averaged weights; ``copy_to()`` puts
    them into the modules."""

    def __init__(self, modules: dict[str, nn.Module], decay: float):
        super().__init__()
        self.__dict__["_targets"] = modules  # not submodules: their parameters are the model's
        self.decay = decay
        for name, m in modules.items():
            for pname, p in m.named_parameters():
                self.register_buffer(self._key(name, pname), p.detach().clone())

    @staticmethod
    def _key(name: str, pname: str) -> str:
        return f"{name}__{pname.replace('.', '__')}"

    def _pairs(self):
        for name, m in self._targets.items():
            for pname, p in m.named_parameters():
                yield name, pname, p, getattr(self, self._key(name, pname))

    @torch.no_grad()
    def update(self) -> None:
        for _, _, p, ema in self._pairs():
            ema.mul_(self.decay).add_(p.detach().to(ema.dtype), alpha=1 - self.decay)

    @torch.no_grad()
    def reset(self) -> None:
        """Start the average at the modules' current weights."""
        for _, _, p, ema in self._pairs():
            ema.copy_(p.detach())

    @torch.no_grad()
    def copy_to(self) -> None:
        for _, _, p, ema in self._pairs():
            p.copy_(ema)

    def call(self, name: str, *args, **kwargs):
        weights = {pname: ema for n, pname, _, ema in self._pairs() if n == name}
        return torch.func.functional_call(self._targets[name], weights, args, kwargs)
