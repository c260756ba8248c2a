"""The scikit-learn estimators (scikit-learn is an optional extra: ``pip install 'ssavae[sklearn]'``).

>>> clf = SSAVAEClassifier(random_state=0).fit(X, y)   # y = -1: unlabeled  # doctest: +SKIP
>>> clf.predict(X_new); clf.transform(X_new); clf.sample(8, y=2)                      # doctest: +SKIP
>>> SSAVAETransformer("vae", latent_dim=2).fit(X).transform(X)                         # doctest: +SKIP

``SSAVAEClassifier``: every family that classifies without being told the class (found by its
capabilities: ssavae, the default, m2, m2_gan, aae_semi, aae_dimred, and ``classifier``, the
supervised-only baseline). ``SSAVAETransformer``: every family that encodes without a label
(the unsupervised ones too: vae, aae, vaegan, draw, ...). Both train in memory through
``runs.fit`` (no directory, no file) and share inputs, codes, decoding, sampling and pickling
(``_Estimator``).

``X``: feature vectors (N, D), standardized inside the estimator (``standardize``,
``scale_floor``) and modelled with MLP networks and a Gaussian likelihood, the labels propagated
over the graph of codes and inputs (``TABLE_SEMI``, docs/semisup.md) and ``predict_proba``
blended with that graph's labels (``graph_predict``); or images (N, H, W) / (N, C, H, W), uint8
or floats in [0, 1], with the family's default networks and fields. Parameters are set in
``__init__`` only; what ``fit`` learns ends in ``_``.
"""
from __future__ import annotations

import dataclasses
from numbers import Integral, Real
from typing import Optional

import numpy as np
import torch

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
    from sklearn.utils._param_validation import Interval, StrOptions
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d
except ImportError as e:  # pragma: no cover - the message is the point
    raise ImportError("ssavae.estimator needs scikit-learn: pip install 'ssavae[sklearn]'") from e

from .config import build_run_config
from .data import Dataset, to_float
from .engine import EarlyStopping
from .models import get_model_class, list_models
from .models.propagation import certainty, features_in_batches, knn_graph, nearest, propagate


def _families(classifies: bool) -> list[str]:
    """The families an estimator takes, by capability: they encode without a label and classify
    (``SSAVAEClassifier``) or generate (``SSAVAETransformer``)."""
    return [n for n in list_models() if not get_model_class(n).conditional
            and (get_model_class(n).has_classifier if classifies else get_model_class(n).generative)]


CLASSIFYING, ENCODING = _families(True), _families(False)
# networks that suit small tables (hundreds of rows, tens of columns)
TABLE_NETS = {"arch": "mlp", "hidden": 64, "mlp_hidden": (128,)}
# how the semi-supervised families learn from unlabeled rows of a table (each family takes the
# fields it has): labels propagated over the graph of the codes joined with the inputs, a small
# classifier MLP, no pseudo-label consistency. One set for every table, chosen on validation
# splits of digits, wine and breast cancer (docs/semisup.md)
TABLE_SEMI = {"graph_weight": 1.0, "graph_inputs": True, "graph_k": 10, "graph_alpha": 0.9, "graph_start": 0,
              "consistency_weight": 0.0, "cls_hidden": (32,)}
TABLE_GRAPH_PREDICT = 0.5  # graph_predict's default on tables
# epochs=None: as many epochs as give about AUTO_STEPS updates, within AUTO_EPOCHS (100 epochs on
# the validation tables, whose 2-14 batches per epoch all hit the cap; a larger table gets fewer
# epochs and about the same fit time); ssavae's step 2 (the decoder: the classifier is done by
# then) the same way within DECODER_EPOCHS
AUTO_STEPS, AUTO_EPOCHS = 1500, (30, 100)
DECODER_STEPS, DECODER_EPOCHS = 450, (10, 30)


def unlabeled_rows(y: np.ndarray) -> np.ndarray:
    """The rows of ``y`` that carry no label: -1 (scikit-learn's convention) or None."""
    return np.array([v is None or isinstance(v, (int, float, np.integer, np.floating)) and v == -1 for v in y.tolist()],
                    dtype=bool)


def auto_epochs(batches: int, steps: int, bounds: tuple[int, int]) -> int:
    """Epochs of ``batches`` batches that make about ``steps`` updates, clipped to ``bounds``."""
    return int(min(bounds[1], max(bounds[0], -(-steps // max(batches, 1)))))
# below this side, images train without the families' default shift (validation on 8x8 digits,
# 10 labels per class, 3 seeds: 90.4 % without it, 81.3 % with it; docs/results.md)
SMALL_IMAGE = 16


# the parameters and attributes both estimators document alike (numpydoc)
_PARAMS = """    latent_dim : int or None, default=None
        The code's size; None: the family's default.
    epochs : int or None, default=None
        Epochs of each phase; None: about 1,500 updates within 30 to 100 epochs (``auto_epochs``;
        ssavae's decoder phase about 450 within 10 to 30).
    batch_size : int, default=64
        Rows per batch (at most the number of rows).
    lr : float, default=1e-3
        Adam's learning rate.
    standardize : bool, default=True
        Tables: each column becomes (x - mean) / scale of the training rows (images are left alone).
    scale_floor : float, default=1.0
        A column's scale is at least ``scale_floor`` times the median of the columns' standard
        deviations, so a nearly constant column (a border pixel) is not blown up; 0: plain
        standardization.
    verbose : bool, default=False
        Show the training progress.
    random_state : int, RandomState or None, default=None
        Seeds the weights, batches and noise; fitting leaves torch's global random stream as it was.
    model_params : dict or None, default=None
        The family's other config fields (``ssavae train --model FAMILY --help`` lists them).
    train_params : dict or None, default=None
        The engine's other fields (``train.*``).
"""
_ATTRIBUTES = """    model_ : GenerativeModel
        The trained model (``ssavae.models``), on the CPU, in eval mode.
    config_ : dict
        The run config it was trained with (rebuilds it: ``runs.build_model``).
    n_features_in_ : int
        Columns of a table (absent for images).
"""


class _Estimator(BaseEstimator):
    """What both estimators share: the inputs (tables standardized, images as given), the run
    config, in-memory training, codes, decoding, sampling and pickling."""

    _parameter_constraints: dict = {
        "latent_dim": [Interval(Integral, 1, None, closed="left"), None],
        "epochs": [Interval(Integral, 1, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "standardize": ["boolean"],
        "scale_floor": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "model_params": [dict, None],
        "train_params": [dict, None],
    }

    def __init__(self, family, latent_dim, epochs, batch_size, lr, standardize, scale_floor, verbose, random_state,
                 model_params, train_params):
        self.family = family
        self.latent_dim = latent_dim
        self.epochs = epochs  # None: auto_epochs (about 1,500 updates, 30 to 100 epochs)
        self.batch_size = batch_size
        self.lr = lr
        self.standardize = standardize
        self.scale_floor = scale_floor
        self.verbose = verbose
        self.random_state = random_state
        self.model_params = model_params
        self.train_params = train_params

    # ------------------------------------------------------------------ data
    def _inputs(self, X, fitting: bool = False) -> np.ndarray:
        x = np.asarray(X) if hasattr(X, "__array__") else X
        images = isinstance(x, np.ndarray) and x.ndim in (3, 4)
        x = check_array(X, allow_nd=images, dtype=None if images and np.asarray(X).dtype == np.uint8
                        else np.float32, ensure_min_samples=2 if fitting else 1)
        if images:
            if x.ndim == 3:
                x = x[:, None]
            if x.dtype != np.uint8 and (x.min() < 0 or x.max() > 1):
                raise ValueError("image X must be uint8 or floats in [0, 1]")
            return x
        if fitting:
            self.n_features_in_ = x.shape[1]
            self.mean_ = x.mean(0) if self.standardize else np.zeros(x.shape[1], np.float32)
            scale = x.std(0) if self.standardize else np.ones(x.shape[1], np.float32)
            if self.standardize and self.scale_floor > 0 and (scale > 0).any():
                scale = np.maximum(scale, self.scale_floor * np.median(scale[scale > 0]))
            self.scale_ = np.where(scale > 0, scale, 1.0).astype(np.float32)
        elif x.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {x.shape[1]} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input")
        return ((x - self.mean_) / self.scale_).astype(np.float32)

    # ------------------------------------------------------------------ training
    def _train(self, x: np.ndarray, codes: np.ndarray, classes, callbacks=()) -> None:
        """Build the run config for ``x`` and train ``self.family`` on it in memory (``runs.fit``)."""
        from .runs import fit

        seed = self._seed()
        model = dict(TABLE_NETS, likelihood="gaussian") if x.ndim == 2 else {}
        fields = {f.name for f in dataclasses.fields(get_model_class(self.family).Config)}
        batch_size = min(self.batch_size, len(x))
        batches = -(-len(x) // batch_size)
        epochs = self.epochs if self.epochs is not None else auto_epochs(batches, AUTO_STEPS, AUTO_EPOCHS)
        if "decoder_epochs" in fields and self.epochs is None:
            model["decoder_epochs"] = auto_epochs(batches, DECODER_STEPS, DECODER_EPOCHS)
        if x.ndim == 2:
            model.update({k: v for k, v in TABLE_SEMI.items() if k in fields})
        if x.ndim == 4 and min(x.shape[2:]) < SMALL_IMAGE and "augment" in fields:
            model["augment"] = "none"  # a 2-pixel shift is a quarter of an 8x8 image
        if self.latent_dim is not None:
            model["latent_dim"] = self.latent_dim
        model.update(self.model_params or {})
        raw = {"model": {"name": self.family, **model}, "data": {"name": "arrays"},
               "train": {"epochs": epochs, "batch_size": batch_size, "lr": self.lr,
                         "progress": bool(self.verbose), **(self.train_params or {})},
               "seed": seed}
        cfg = build_run_config(raw)
        ds = Dataset("arrays", x, codes, x[:0], codes[:0], [str(c) for c in classes])
        torch_state = torch.get_rng_state()
        try:
            self.model_ = fit(cfg, dataset=ds, callbacks=callbacks).model.cpu().eval()
        finally:
            torch.set_rng_state(torch_state)  # fitting leaves the caller's random stream alone
        self.config_ = cfg.to_dict()

    def _seed(self) -> int:
        """The run's seed: ``random_state`` itself when it is an int (the same seed on every call)."""
        if isinstance(self.random_state, (int, np.integer)):
            return int(self.random_state)
        return int(np.random.RandomState(self.random_state).randint(2 ** 31 - 1))

    # ------------------------------------------------------------------ pickling (save / load)
    def __getstate__(self) -> dict:
        """The networks as a state dict (some hold spectral-norm parametrizations, which pickle
        only that way), rebuilt from ``config_`` on loading."""
        state = dict(self.__dict__)
        if "model_" in state:
            m = state.pop("model_")
            state["_model_state"] = {k: v.clone() for k, v in m.state_dict().items()}
            state["_model_info"] = (tuple(m.info.shape), m.info.num_classes, m.info.unit_range)
        return state

    def __setstate__(self, state: dict) -> None:
        weights, info = state.pop("_model_state", None), state.pop("_model_info", None)
        self.__dict__.update(state)
        if weights is not None:
            from .data import DataInfo
            from .runs import build_model

            self.model_ = build_model(build_run_config(self.config_), DataInfo(*info))
            self.model_.load_state_dict(weights)
            self.model_.eval()

    def save(self, path) -> None:
        """Write the fitted estimator to ``path`` (a pickle: load only files you trust)."""
        import pickle

        with open(path, "wb") as f:
            pickle.dump(self, f)

    @staticmethod
    def load(path) -> "SSAVAEClassifier":
        import pickle

        with open(path, "rb") as f:
            return pickle.load(f)

    # ------------------------------------------------------------------ inference
    def _x(self, X) -> torch.Tensor:
        check_is_fitted(self, "model_")
        return to_float(self._inputs(X))

    def transform(self, X) -> np.ndarray:
        """The codes: posterior means, (N, latent_dim), in X's float precision."""
        x = self._x(X)
        dtype = X.dtype if isinstance(X, np.ndarray) and X.dtype.kind == "f" else np.float32
        return self.model_.encode(x).numpy().astype(dtype)

    def inverse_transform(self, Z) -> np.ndarray:
        """Decode codes back to inputs (features in their original units)."""
        check_is_fitted(self, "model_")
        return self._units(self.model_.decode(torch.as_tensor(np.asarray(Z), dtype=torch.float32)).numpy())

    def reconstruct(self, X) -> np.ndarray:
        """Encode then decode ``X``, in its units."""
        return self._units(self.model_.reconstruct(self._x(X)).numpy())

    def sample(self, n: int, y=None, seed: int = 0) -> np.ndarray:
        """``n`` draws from the model (of class ``y`` where the family can), in input units."""
        check_is_fitted(self, "model_")
        classes = getattr(self, "classes_", None)
        if y is not None and classes is None:
            raise ValueError("sample(y=...) needs a model fitted with labels")
        codes = None if y is None else torch.from_numpy(np.searchsorted(classes, np.broadcast_to(np.asarray(y), (n,))))
        return self._units(self.model_.sample(n, y=codes, generator=torch.Generator().manual_seed(seed)).numpy())

    def _units(self, out: np.ndarray) -> np.ndarray:
        """Rows of a table back in the input's units (images are already)."""
        return out * self.scale_ + self.mean_ if out.ndim == 2 else out


class SSAVAEClassifier(ClassifierMixin, TransformerMixin, _Estimator):
    __doc__ = """A semi-supervised classifier that is also a generative model: fit on rows with few labels
    (``y = -1`` marks an unlabeled row, as in scikit-learn's ``LabelSpreading``), predict classes,
    encode, decode and sample.

    Parameters
    ----------
    family : str, default="ssavae"
        A family that classifies (``CLASSIFYING``): ssavae, m2, m2_gan, aae_semi, aae_dimred, or
        ``classifier`` (supervised only: the baseline a semi-supervised family must beat).
{common}    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of each class's labeled rows (their inputs stay in
        training, unlabeled); the classifying phase ends after ``n_iter_no_change`` epochs without
        a better validation score (accuracy, then log loss) and keeps its best epoch's weights.
    validation_fraction : float, default=0.1
        See ``early_stopping``.
    n_iter_no_change : int, default=10
        See ``early_stopping``.
    graph_predict : float or None, default=None
        ``predict_proba`` = (1 - graph_predict) x the classifier + graph_predict x the labels
        propagated over the training set's graph, read at a new row's nearest neighbours
        (LabelSpreading's induction; the graph fields come from the model's config). None: 0.5
        for tables with a semi-supervised family, else 0.

    Attributes
    ----------
    classes_ : ndarray
        The labels seen (sorted), without -1.
{attrs}    n_iter_, validation_scores_, best_validation_score_
        With ``early_stopping``: epochs scored and their validation accuracies.

    See Also
    --------
    SSAVAETransformer : the same for families without a classifier.
    sklearn.semi_supervised.LabelSpreading : the graph-only baseline (docs/semisup.md compares).

    Examples
    --------
    >>> from ssavae import SSAVAEClassifier                                  # doctest: +SKIP
    >>> clf = SSAVAEClassifier(random_state=0).fit(X, y_with_minus_ones)     # doctest: +SKIP
    >>> clf.predict(X_new), clf.transform(X_new), clf.sample(8, y=2)         # doctest: +SKIP
    """.format(common=_PARAMS, attrs=_ATTRIBUTES)

    _parameter_constraints: dict = {
        **_Estimator._parameter_constraints,
        "family": [StrOptions(set(CLASSIFYING))],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "graph_predict": [Interval(Real, 0, 1, closed="both"), None],
    }

    def __init__(self, family: str = "ssavae", latent_dim: Optional[int] = None, epochs: Optional[int] = None,
                 batch_size: int = 64, lr: float = 1e-3, standardize: bool = True, scale_floor: float = 1.0,
                 early_stopping: bool = False, validation_fraction: float = 0.1, n_iter_no_change: int = 10,
                 graph_predict: Optional[float] = None, verbose: bool = False, random_state: Optional[int] = None,
                 model_params: Optional[dict] = None, train_params: Optional[dict] = None):
        super().__init__(family, latent_dim, epochs, batch_size, lr, standardize, scale_floor, verbose, random_state,
                         model_params, train_params)
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.graph_predict = graph_predict

    def _targets(self, y, n: int) -> np.ndarray:
        if y is None:
            raise ValueError("SSAVAEClassifier requires y to be passed, but the target y is None "
                             "(mark unlabeled rows with -1)")
        y = column_or_1d(y, warn=True)
        if len(y) != n:
            raise ValueError(f"X has {n} rows but y has {len(y)}")
        unlabeled = unlabeled_rows(y)
        if not (~unlabeled).any():
            raise ValueError("y holds no labels (every value is -1): a classifier needs some")
        check_classification_targets(y[~unlabeled])
        self.classes_ = np.unique(y[~unlabeled])
        if len(self.classes_) < 2:
            raise ValueError(f"y holds a single class ({self.classes_[0]!r}); a classifier needs at least 2 classes")
        codes = np.full(n, -1, np.int64)
        codes[~unlabeled] = np.searchsorted(self.classes_, y[~unlabeled])
        return codes

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y) -> "SSAVAEClassifier":
        """Train on ``X`` with labels ``y`` (-1: unlabeled). Returns the fitted estimator."""
        self._validate_params()
        x = self._inputs(X, fitting=True)
        codes = self._targets(y, len(x))
        stopper = self._early_stopping(x, codes, self._seed()) if self.early_stopping else None
        self._train(x, codes, self.classes_, [stopper] if stopper else [])
        graph = "graph_k" in self.config_["model"]
        self.graph_predict_ = self.graph_predict if self.graph_predict is not None else \
            TABLE_GRAPH_PREDICT if x.ndim == 2 and graph else 0.0
        if self.graph_predict_ > 0:
            if not graph:
                raise ValueError(f"graph_predict needs a semi-supervised family (ssavae, m2, aae_semi); "
                                 f"{self.family!r} has no graph: set graph_predict=0")
            self._fit_graph(x, codes)
        if stopper is not None:
            moved = [(phase, epoch, acc) for phase, epoch, (acc, _) in stopper.history
                     if phase in stopper.best_epochs]  # the phases that train the classifier
            self.validation_scores_ = [acc for _, _, acc in moved]
            self.best_validation_score_ = max(self.validation_scores_)
            self.n_iter_ = sum(1 for _ in moved)
        return self

    def _early_stopping(self, x: np.ndarray, codes: np.ndarray, seed: int) -> EarlyStopping:
        """Hold out ``validation_fraction`` of each class's labeled rows (at least one of every
        class with two or more; ``codes`` loses their labels, in place) and return the callback
        that scores the classifier on them: (accuracy, -log loss)."""
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        rng = np.random.default_rng(seed)
        held = []
        for k in range(len(self.classes_)):
            rows = np.flatnonzero(codes == k)
            if len(rows) >= 2:
                n = min(len(rows) - 1, max(1, int(round(self.validation_fraction * len(rows)))))
                held.extend(rng.choice(rows, n, replace=False))
        if not held:
            raise ValueError("early_stopping needs a class with at least 2 labeled rows to hold one out; "
                             "label more rows or set early_stopping=False")
        held = np.sort(np.asarray(held, np.int64))
        x_val, y_val = to_float(x[held]), torch.from_numpy(codes[held].copy())
        codes[held] = -1  # still trained on, without their labels

        def score(model) -> tuple[float, float]:
            model.eval()  # the engine puts the phase's modes back after the callback
            proba = model.predict_proba(x_val).cpu()
            picked = proba[torch.arange(len(y_val)), y_val].clamp_min(1e-12)
            return float((proba.argmax(1) == y_val).float().mean()), float(picked.log().mean())

        return EarlyStopping(score, self.n_iter_no_change)

    # ------------------------------------------------------------------ the graph at inference
    def _graph_space(self, x: torch.Tensor) -> torch.Tensor:
        """Rows (N, D), unit length, of the space the training graph lives in."""
        m = self.model_
        with torch.no_grad():
            feats, _ = features_in_batches(m.graph_features, ((x[i:i + 1024], None) for i in range(0, len(x), 1024)),
                                           m.cfg.graph_inputs)
        return torch.nn.functional.normalize(feats, dim=1)

    def _fit_graph(self, x: np.ndarray, codes: np.ndarray) -> None:
        """Propagate the labels over the graph of the fitted model's training codes; keep the
        rows and their label distributions (labeled rows: their own label) for prediction."""
        cfg = self.model_.cfg
        space = self._graph_space(to_float(x))
        z = propagate(knn_graph(space, cfg.graph_k), codes, len(self.classes_), cfg.graph_alpha)
        proba, _, _ = certainty(z)
        labeled = codes >= 0
        proba[labeled] = np.eye(len(self.classes_))[codes[labeled]]
        self.graph_space_, self.graph_proba_ = space, torch.from_numpy(proba).float()

    def _graph_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Each row's neighbours in the training graph (k, the graph's affinities) vote with
        their propagated label distributions."""
        w, idx = nearest(self._graph_space(x), self.graph_space_, min(self.model_.cfg.graph_k, len(self.graph_space_)))
        votes = (w[..., None] * self.graph_proba_[idx]).sum(1)
        total = votes.sum(1, keepdim=True)
        return torch.where(total > 0, votes / total.clamp_min(1e-12), torch.full_like(votes, 1 / votes.shape[1]))

    # ------------------------------------------------------------------ prediction
    def predict_proba(self, X) -> np.ndarray:
        x = self._x(X)
        proba = self.model_.predict_proba(x)
        blend = getattr(self, "graph_predict_", 0.0)  # an estimator pickled before graph_predict has none
        if blend > 0:
            proba = (1 - blend) * proba + blend * self._graph_proba(x)
        return proba.numpy().astype(np.float64)

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)  # checks that the estimator is fitted
        return self.classes_[proba.argmax(1)]


class SSAVAETransformer(TransformerMixin, _Estimator):
    __doc__ = """Any family that encodes without a label, as a scikit-learn transformer: fit on rows (labels
    optional: -1 or None marks unlabeled rows, and families that use labels take the rest),
    ``transform`` to codes, ``inverse_transform`` back, ``sample`` new rows.

    Parameters
    ----------
    family : str, default="vae"
        A generative family that encodes without a label (``ENCODING``: vae, aae, aae_cluster,
        vaegan, draw, draw_gan, and the generative classifying families).
{common}
    Attributes
    ----------
{attrs}    classes_ : ndarray
        The labels seen, when ``y`` was given with some.

    See Also
    --------
    SSAVAEClassifier : the same with ``predict``, for the families that classify.
    """.format(common=_PARAMS, attrs=_ATTRIBUTES)

    _parameter_constraints: dict = {**_Estimator._parameter_constraints, "family": [StrOptions(set(ENCODING))]}

    def __init__(self, family: str = "vae", latent_dim: Optional[int] = None, epochs: Optional[int] = None,
                 batch_size: int = 64, lr: float = 1e-3, standardize: bool = True, scale_floor: float = 1.0,
                 verbose: bool = False, random_state: Optional[int] = None, model_params: Optional[dict] = None,
                 train_params: Optional[dict] = None):
        super().__init__(family, latent_dim, epochs, batch_size, lr, standardize, scale_floor, verbose, random_state,
                         model_params, train_params)

    def fit(self, X, y=None) -> "SSAVAETransformer":
        """Train on ``X`` (labels ``y`` optional, -1 or None: unlabeled). Returns the fitted estimator."""
        self._validate_params()
        x = self._inputs(X, fitting=True)
        codes = np.full(len(x), -1, np.int64)
        classes = np.array([0])
        if y is not None:
            y = column_or_1d(y)
            if len(y) != len(x):
                raise ValueError(f"X has {len(x)} rows but y has {len(y)}")
            known = ~unlabeled_rows(y)
            if known.any():
                self.classes_ = classes = np.unique(y[known])
                codes[known] = np.searchsorted(classes, y[known])
        self._train(x, codes, classes)
        return self
