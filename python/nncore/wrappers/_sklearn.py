"""The three estimators and what they share (see the package docstring).

Semantics are Keras 3's: ``model`` is a compiled Model or a callable ``model(X=, y=,
**model_kwargs)`` returning one; every ``fit`` trains a *fresh* model (a Model is cloned with new
initial weights and compiled as the original, a callable is called again), so nothing learnt in
one cross-validation fold reaches the next; ``fit_kwargs`` (and keyword arguments of ``fit``,
which take precedence) go to ``model.fit``. The classifier one-hot encodes the labels (the model
has one output unit per class; with a single sigmoid unit for two classes its output is read as
P(class 1)), keeps them in ``classes_`` and predicts them back. The regressor trains on y as a
column and returns 1-D predictions for 1-D targets. The transformer is fitted as the regressor
and ``transform`` returns the model's output.
"""

from __future__ import annotations

import contextlib

import numpy as np

_EXTRA = ('scikit-learn >= 1.6 is needed for nncore.wrappers: pip install "nncore[sklearn]" '
          '(or pip install -U scikit-learn)')

try:
    import sklearn
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
    # validate_data and __sklearn_tags__ are scikit-learn 1.6's API
    _HAVE_SKLEARN = tuple(int(p) for p in sklearn.__version__.split(".")[:2]
                          if p.isdigit()) >= (1, 6)
except ImportError:  # the classes still exist; making one says what to install
    _HAVE_SKLEARN = False

    class BaseEstimator:  # type: ignore[no-redef]
        pass

    class ClassifierMixin:  # type: ignore[no-redef]
        pass

    class RegressorMixin:  # type: ignore[no-redef]
        pass

    class TransformerMixin:  # type: ignore[no-redef]
        pass


def _require_sklearn(who):
    if not _HAVE_SKLEARN:
        found = getattr(globals().get("sklearn"), "__version__", None)
        raise ImportError(f"{who}: {_EXTRA}" + (f"; found scikit-learn {found}" if found else ""))


def _validate(est, X, y=None, reset=True):
    """scikit-learn's input validation (n_features_in_, finite numeric arrays, 2-D or more),
    then X as float32 (the models' dtype)."""
    from sklearn.utils.validation import validate_data

    if y is None and reset:
        raise ValueError(f"{type(est).__name__} requires y to be passed, but the target y is "
                         "None (the wrapped model is trained on (X, y))")
    if y is None:
        X = validate_data(est, X, reset=reset, dtype="numeric", allow_nd=True)
        return np.ascontiguousarray(X, dtype=np.float32)
    X, y = validate_data(est, X, y, reset=reset, dtype="numeric", allow_nd=True,
                         multi_output=True, y_numeric=not isinstance(est, ClassifierMixin))
    return np.ascontiguousarray(X, dtype=np.float32), y


@contextlib.contextmanager
def _seeded(random_state):
    """With a random_state, nncore's generator (initial weights, shuffling, dropout) is a fresh
    one seeded from it for the duration of a fit, then the previous one is put back."""
    if random_state is None:
        yield
        return
    from sklearn.utils import check_random_state

    from ..utils import random as nk_random

    seed = check_random_state(random_state).randint(0, 2**31 - 1)
    saved = nk_random._rng
    nk_random._rng = np.random.default_rng(seed)
    try:
        yield
    finally:
        nk_random._rng = saved


def _fresh_optimizer(opt):
    return type(opt).from_config(opt.get_config())


class SKLBase(BaseEstimator):
    """Shared by the three wrappers.

    model: a compiled nncore Model (cloned, with fresh weights, at every fit) or a callable
        ``model(X=X, y=y, **model_kwargs)`` returning a compiled model.
    warm_start: if True, a second ``fit`` continues training the model of the first.
    model_kwargs: keyword arguments for the callable.
    fit_kwargs: keyword arguments for ``model.fit`` (e.g. epochs, batch_size, verbose).
    random_state: None (fresh random weights and batch order at every fit, as Keras's wrappers)
        or an int / RandomState: each fit draws its initial weights, shuffling and dropout from a
        generator seeded by it, so fits repeat bitwise (nncore's kernels are deterministic).
        An nncore addition to Keras's arguments (scikit-learn's name for it).

    Attributes after fit: model_ (the trained model), history_ (``History.history``),
    n_features_in_.
    """

    def __init__(self, model, warm_start=False, model_kwargs=None, fit_kwargs=None,
                 random_state=None):
        _require_sklearn(type(self).__name__)
        self.model = model
        self.warm_start = warm_start
        self.model_kwargs = model_kwargs
        self.fit_kwargs = fit_kwargs
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Not non_deterministic: with a random_state fits repeat bitwise, so scikit-learn's
        # reproducibility checks run (Keras's wrappers, without one, skip them).
        tags.input_tags.three_d_array = True  # images and sequences are fine
        return tags

    def __sklearn_clone__(self):
        # A clone shares the (never modified) model or builder: fit clones it anyway, so a deep
        # copy of a model per clone would only cost memory.
        return type(self)(**self.get_params(deep=False))

    @property
    def epoch_(self) -> int:
        return len(getattr(self, "history_", {}).get("loss", ()))

    def _build(self, X, y):
        from ..models import Model, clone_model

        if self.warm_start and hasattr(self, "model_"):
            return self.model_
        if isinstance(self.model, Model):
            src = self.model
            if not getattr(src, "compiled", False):
                raise RuntimeError(f"{type(self).__name__}: the model must be compiled "
                                   "(model.compile(optimizer=..., loss=...)) before wrapping")
            model = clone_model(src)
            spec = src._compile_spec
            model.compile(optimizer=_fresh_optimizer(src.optimizer), loss=spec["loss"],
                          loss_weights=spec["loss_weights"], metrics=spec["raw_metrics"])
            return model
        if callable(self.model):
            model = self.model(X=X, y=y, **(self.model_kwargs or {}))
            if not isinstance(model, Model):
                raise TypeError(f"{type(self).__name__}: model(X=, y=) must return an nncore "
                                f"Model, got {type(model).__name__}")
            if not getattr(model, "compiled", False):
                raise RuntimeError(f"{type(self).__name__}: the model built by "
                                   f"{getattr(self.model, '__name__', 'model')} must be "
                                   "compiled, with a loss and an optimizer")
            return model
        raise TypeError(f"{type(self).__name__}: model must be an nncore Model or a callable "
                        f"returning one, got {type(self.model).__name__}")

    def fit(self, X, y, **kwargs):
        """Train a fresh model on (X, y); keyword arguments go to model.fit (over fit_kwargs)."""
        X, y = _validate(self, X, y, reset=True)
        y = self._encode_target(y, reset=True)
        args = {"verbose": 0, **(self.fit_kwargs or {}), **kwargs}
        with _seeded(self.random_state):
            model = self._build(X, y)
            self.history_ = model.fit(X, self._fit_target(y), **args).history
        self.model_ = model
        return self

    def _fit_target(self, y):
        return y

    def _raw_predict(self, X):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "model_")
        X = _validate(self, X, reset=False)
        return np.asarray(self.model_.predict(X, verbose=0))

    def predict(self, X):
        return self._decode_target(self._raw_predict(X))

    # regressors and the transformer: y as a column, back to 1-D for 1-D targets
    def _encode_target(self, y, reset=False):
        y = np.asarray(y, dtype=np.float32)
        if reset:
            self._y_ndim = y.ndim
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def _decode_target(self, out):
        if self._y_ndim == 1 and out.ndim == 2 and out.shape[1] == 1:
            return out[:, 0]
        return out


class SKLearnClassifier(ClassifierMixin, SKLBase):
    """A scikit-learn classifier around an nncore model (see SKLBase for the arguments).

    Labels (any values, binary or multiclass) are one-hot encoded in the order of ``classes_``
    (sorted, as np.unique), so the model ends in ``Dense(n_classes, activation="softmax")`` with
    categorical cross-entropy (a builder sees the one-hot y, so ``y.shape[1]`` is the class
    count); a model with one sigmoid unit for two classes is trained on the 0/1 column of the
    positive class. predict returns labels, predict_proba one column per class.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True  # a few epochs of a small network
        return tags

    def _encode_target(self, y, reset=False):
        from sklearn.utils.multiclass import type_of_target

        kind = type_of_target(y, input_name="y", raise_unknown=True)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"SKLearnClassifier: only binary and multiclass targets are "
                             f"supported, got a {kind!r} target")
        from sklearn.utils.validation import column_or_1d

        y = column_or_1d(y, warn=True)  # a column y works, with scikit-learn's warning
        if reset:
            self.classes_ = np.unique(y)
            if len(self.classes_) < 2:
                raise ValueError("SKLearnClassifier: y holds 1 class "
                                 f"({self.classes_.tolist()}); a classifier needs at least two")
        idx = np.searchsorted(self.classes_, y)
        if np.any(idx >= len(self.classes_)) or np.any(self.classes_[np.minimum(
                idx, len(self.classes_) - 1)] != y):
            raise ValueError("SKLearnClassifier: y holds labels not seen in fit")
        onehot = np.zeros((len(y), len(self.classes_)), np.float32)
        onehot[np.arange(len(y)), idx] = 1.0
        return onehot

    def _build(self, X, y):
        model = super()._build(X, y)
        units = int(np.prod(model.output_shape[1:])) if not isinstance(
            model.output_shape, (list, dict)) else None
        n = len(self.classes_)
        if units is not None and units not in (n, 1) or (units == 1 and n != 2):
            raise ValueError(f"SKLearnClassifier: the model has {units} output unit(s) for "
                             f"{n} classes; use Dense({n}, activation='softmax')")
        self._single_unit = units == 1
        return model

    def _fit_target(self, onehot):
        return onehot[:, 1:] if self._single_unit else onehot

    def predict_proba(self, X):
        out = self._raw_predict(X)
        out = out.reshape(out.shape[0], -1).astype(np.float64)
        if self._single_unit:
            out = np.concatenate([1.0 - out, out], axis=1)
        return out

    def predict(self, X):
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class SKLearnRegressor(RegressorMixin, SKLBase):
    """A scikit-learn regressor around an nncore model (see SKLBase for the arguments): the
    model is trained on y as a column ((n, 1) for a 1-D y), predictions keep y's rank."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        tags.target_tags.multi_output = True  # y of shape (n, k): a model with k outputs units
        return tags

    def predict(self, X):
        # float64 as scikit-learn's regressors (the model computes in float32)
        return self._decode_target(self._raw_predict(X).astype(np.float64))


class SKLearnTransformer(TransformerMixin, SKLBase):
    """A scikit-learn transformer around an nncore model (see SKLBase for the arguments):
    fitted as the regressor, ``transform(X)`` returns the model's output (e.g. an embedding).
    Not a Transformer in the attention sense."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []  # always float32 out
        tags.target_tags.required = True
        return tags

    def transform(self, X):
        return self._raw_predict(X)


__all__ = ["SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer"]
