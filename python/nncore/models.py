"""Sequential model: add/build/summary, compile, fit/evaluate/predict, save/load.

Training is a Python loop over batches; each step calls forward on every layer, the loss (fused
with a softmax/sigmoid output into one kernel, from the logits), backward on every layer in reverse,
and one fused optimizer pass per parameter.
"""

from __future__ import annotations

import sys

import numpy as np

from . import callbacks as callbacks_module
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from .layers import InputLayer, Layer
from .layers.base import _unique_name, fmt_shape
from .utils.progbar import Progbar
from .utils.random import get_rng


def _resolve_verbose(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return verbose


def _batch_size(batch_size):
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


class Sequential:
    """A linear stack of layers: Sequential([layers...]) or Sequential() then add(layer).

    trainable=False (or setting model.trainable = False later) freezes the model as Keras does:
    every layer's trainable is set to False (layers added later too) and trainable_weights is
    empty; setting it back to True makes every layer trainable again."""

    def __init__(self, layers=None, name=None, trainable=True):
        self.name = name if name is not None else _unique_name("sequential")
        self._layers: list = []
        self.trainable = trainable
        self._input_shape = None  # per sample, without the batch axis
        self.built = False
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self._metric_ids: list = []
        self.stop_training = False
        self.stop_reason = None
        self.history = None
        for layer in layers or []:
            self.add(layer)

    # ---- structure ----------------------------------------------------------------------------
    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value) -> None:
        self._trainable = bool(value)
        for layer in self._layers:
            layer.trainable = self._trainable

    @property
    def layers(self) -> list:
        return list(self._layers)

    def add(self, layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects an nncore layer, got {type(layer).__name__}")
        if isinstance(layer, InputLayer):
            if self._layers:
                raise ValueError("an Input layer must come first in a Sequential model")
            self._input_shape = layer._input_shape_arg
            return
        if any(lay.name == layer.name for lay in self._layers):
            raise ValueError(f"a layer named {layer.name!r} is already in model {self.name!r}; "
                             "layer names must be unique")
        if not self._layers and self._input_shape is None:
            self._input_shape = layer._input_shape_arg
        if not self._trainable:
            layer.trainable = False
        self._layers.append(layer)
        if self._input_shape is not None:
            try:
                self._build_layer(len(self._layers) - 1)
            except Exception:
                self._layers.pop()
                raise
            self.built = True

    def _build_layer(self, i: int, allocate=True) -> None:
        layer = self._layers[i]
        prev = ((None,) + tuple(self._input_shape) if i == 0
                else self._layers[i - 1].output_shape)
        src = ("the model input" if i == 0
               else f"layer {self._layers[i - 1].name!r} ({type(self._layers[i - 1]).__name__})")
        if layer.built:
            if tuple(layer.input_shape[1:]) != tuple(prev[1:]):
                raise ValueError(
                    f"layer {layer.name!r} ({type(layer).__name__}) was built for input shape "
                    f"{fmt_shape(layer.input_shape)} but {src} gives {fmt_shape(prev)}")
            return
        try:
            layer.build(prev, allocate=allocate)
        except ValueError as e:
            raise ValueError(f"cannot connect {src}, output shape {fmt_shape(prev)}, to layer "
                             f"{layer.name!r} ({type(layer).__name__}): {e}") from None

    def build(self, input_shape=None) -> None:
        """Create every layer's weights for batches of shape input_shape (batch axis first)."""
        if input_shape is not None:
            shape = tuple(input_shape)
            if len(shape) < 2:
                raise ValueError(f"build: input_shape must include the batch axis, e.g. "
                                 f"(None, 28, 28, 1); got {input_shape!r}")
            if self._input_shape is not None and tuple(shape[1:]) != tuple(self._input_shape):
                raise ValueError(f"build: model {self.name!r} already has input shape "
                                 f"{fmt_shape((None,) + tuple(self._input_shape))}, got "
                                 f"{fmt_shape(shape)}")
            self._input_shape = tuple(shape[1:])
        if self._input_shape is None:
            raise ValueError(f"model {self.name!r} has no input shape: pass input_shape= to the "
                             "first layer, add an Input layer, or call build(input_shape)")
        if not self._layers:
            raise ValueError(f"model {self.name!r} has no layers")
        for i in range(len(self._layers)):
            self._build_layer(i)
        self.built = True

    def _ensure_built(self, x_shape, where):
        if not self.built:
            if self._input_shape is None:
                self._input_shape = tuple(x_shape[1:])
            self.build()

    @property
    def input_shape(self):
        return None if self._input_shape is None else (None,) + tuple(self._input_shape)

    @property
    def output_shape(self):
        return self._layers[-1].output_shape if self.built else None

    @property
    def weights(self) -> list:
        return [w for layer in self._layers for w in layer.weights]

    @property
    def trainable_weights(self) -> list:
        if not self._trainable:
            return []
        return [w for layer in self._layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self) -> list:
        if not self._trainable:
            return self.weights
        return [w for layer in self._layers for w in layer.non_trainable_weights]

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self._layers)

    def get_weights(self) -> list:
        return [w.copy() for w in self.weights]

    def set_weights(self, weights) -> None:
        weights = list(weights)
        own = self.weights
        if len(weights) != len(own):
            raise ValueError(f"model {self.name!r} has {len(own)} weight arrays, got "
                             f"{len(weights)}")
        pos = 0
        checked = []
        for layer in self._layers:  # check every shape before writing anything
            k = len(layer.weights)
            for name, cur, new in zip(layer._weight_names, layer.weights, weights[pos:pos + k]):
                new = np.asarray(new)
                if new.dtype.kind not in "biuf":
                    raise TypeError(f"weight {name!r}: expected a real array, got {new.dtype}")
                if new.shape != cur.shape:
                    raise ValueError(f"weight {name!r} of layer {layer.name!r} has shape "
                                     f"{cur.shape}, got an array of shape {new.shape}")
                checked.append(new)
            pos += k
        for cur, new in zip(own, checked):
            np.copyto(cur, new, casting="unsafe")

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r} in model {self.name!r}")

    def summary(self, line_length=None, print_fn=None) -> None:
        if not self.built:
            raise ValueError(f"model {self.name!r} has not been built yet: give the first layer "
                             "an input_shape, call build(input_shape), or fit it on data first")
        out = print_fn or print
        w = [33, 26, 12]
        if line_length:
            w[0] = max(20, line_length - w[1] - w[2])
        total = sum(w)
        out(f'Model: "{self.name}"')
        out("_" * total)
        out(f"{' Layer (type)':<{w[0]}}{'Output Shape':<{w[1]}}{'Param #':>{w[2]}}")
        out("=" * total)
        for i, layer in enumerate(self._layers):
            name = f" {layer.name} ({type(layer).__name__})"
            out(f"{name:<{w[0]}}{fmt_shape(layer.output_shape):<{w[1]}}"
                f"{layer.count_params():>{w[2]},}")
            if i != len(self._layers) - 1:
                out("_" * total)
        out("=" * total)
        trainable = sum(layer.count_params() for layer in self._layers
                        if self._trainable and layer.trainable)
        every = self.count_params()

        def size(n):
            b = 4 * n
            for unit in ("B", "KB", "MB", "GB"):
                if b < 1024 or unit == "GB":
                    return f"{b:.2f} {unit}"
                b /= 1024

        out(f" Total params: {every:,} ({size(every)})")
        out(f" Trainable params: {trainable:,} ({size(trainable)})")
        out(f" Non-trainable params: {every - trainable:,} ({size(every - trainable)})")
        out("_" * total)

    # ---- compile ------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs) -> None:
        unsupported = {k for k, v in kwargs.items() if v not in (None, False, "auto")}
        if unsupported:
            raise ValueError(f"compile: argument(s) {sorted(unsupported)} are not supported")
        if loss is None:
            raise ValueError("compile: a loss is required, e.g. loss='mse'")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        if metrics is None:
            metrics = []
        if isinstance(metrics, (str, metrics_module.Metric)):
            metrics = [metrics]
        for m in metrics:
            metrics_module.get(m, (1, 1), (1, 2))  # unknown names fail now
        self._metric_ids = list(metrics)
        self.compiled = True

    def _require_compiled(self, where):
        if not self.compiled:
            raise RuntimeError(f"{where}: model {self.name!r} must be compiled first: call "
                               "model.compile(optimizer=..., loss=..., metrics=[...])")

    def _make_metrics(self, y_shape):
        out_shape = self.output_shape
        ms = [metrics_module.get(m, y_shape, out_shape) for m in self._metric_ids]
        for m in ms:
            m.reset_state()
        return ms

    def _fused(self) -> bool:
        last = self._layers[-1]
        return (self.loss.fusable is not None and not self.loss.from_logits
                and getattr(last, "activation", None) == self.loss.fusable
                and hasattr(last, "_activate"))

    # ---- data checks --------------------------------------------------------------------------
    def _check_x(self, x, where):
        if isinstance(x, (list, tuple)) and len(x) == 1:
            x = x[0]
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{where}: input data must be a real numeric array, got dtype "
                            f"{x.dtype}")
        if x.ndim < 2:
            raise ValueError(f"{where}: input data must have a batch axis and at least one "
                             f"feature axis, got shape {x.shape}")
        self._ensure_built(x.shape, where)
        if tuple(x.shape[1:]) != tuple(self._input_shape):
            raise ValueError(
                f"{where}: model {self.name!r} expects input of shape "
                f"{fmt_shape(self.input_shape)} (first layer {self._layers[0].name!r}), "
                f"got data of shape {x.shape}")
        return np.ascontiguousarray(x, dtype=np.float32)

    def _check_xy(self, x, y, where):
        x = self._check_x(x, where)
        if y is None:
            raise ValueError(f"{where}: targets y are required")
        y = np.asarray(y)
        if y.dtype.kind not in "biuf":
            raise TypeError(f"{where}: targets must be a real numeric array, got dtype {y.dtype}")
        if y.ndim == 0 or y.shape[0] != x.shape[0]:
            raise ValueError(f"{where}: x has {x.shape[0]} samples but y has "
                             f"{y.shape[0] if y.ndim else 'no batch axis'} (x shape {x.shape}, "
                             f"y shape {y.shape})")
        if y.ndim == 1 and len(self.output_shape) == 2 and self.loss.name != \
                "sparse_categorical_crossentropy" and self.output_shape[-1] == 1:
            y = y.reshape(-1, 1)
        self.loss.check_targets(y, self.output_shape, where)
        return x, self.loss.prepare_targets(y)

    # ---- steps --------------------------------------------------------------------------------
    def _prepare_training(self):
        layers = self._layers
        first = next((i for i, lay in enumerate(layers) if lay.weights), len(layers) - 1)
        for i, layer in enumerate(layers):
            layer.need_input_grad = i > first
        self._bw_stop = first
        self._train_layers = [lay for lay in layers if self._trainable and lay.trainable
                              and lay.weights]
        self._params = [w for lay in self._train_layers for w in lay.weights]
        self._regs = [r for lay in self._train_layers for r in lay._regularizers]
        self._reg_layers = [lay for lay in layers if any(r is not None for r in lay._regularizers)]
        self._fuse = self._fused()

    def _reg_loss(self) -> float:
        return sum(lay.regularization_loss() for lay in self._reg_layers)

    def _forward_loss(self, xb, yb, training, need_grad):
        h = xb
        for layer in self._layers[:-1]:
            h = layer.forward(h, training=training)
        last = self._layers[-1]
        if self._fuse:
            probs, z = last.forward(h, training=training, logits=True)
            per, d = self.loss.compute(z, yb, need_grad, logits=True)
        else:
            probs = last.forward(h, training=training)
            per, d = self.loss.compute(probs, yb, need_grad)
        return per, d, probs

    def train_on_batch(self, x, y):
        """One optimizer step on one batch; returns the batch loss (with regularization)."""
        self._require_compiled("train_on_batch")
        x, y = self._check_xy(x, y, "train_on_batch")
        self._prepare_training()
        per, _, reg = self._train_step(x, y)
        return float(np.mean(per, dtype=np.float64)) + reg

    def _gradients(self, x, y):
        """(batch-mean data loss, gradients of trainable weights in model.trainable_weights order)
        without updating anything; for tests and debugging."""
        x, y = self._check_xy(x, y, "gradients")
        self._prepare_training()
        per, g, _ = self._forward_loss(x, y, True, True)
        for i in range(len(self._layers) - 1, self._bw_stop - 1, -1):
            g = self._layers[i].backward(g)
        return (float(np.mean(per, dtype=np.float64)),
                [g.copy() for lay in self._train_layers for g in lay.grads])

    def _train_step(self, xb, yb):
        per, g, probs = self._forward_loss(xb, yb, True, True)
        layers = self._layers
        for i in range(len(layers) - 1, self._bw_stop - 1, -1):
            g = layers[i].backward(g)
        grads = [g for lay in self._train_layers for g in lay.grads]
        # The penalty is reported for the weights the loss was computed with (before the step).
        reg = self._reg_loss() if self._reg_layers else 0.0
        self.optimizer.apply(self._params, grads, self._regs)
        return per, probs, reg

    # ---- fit / evaluate / predict -------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0):
        """Train for `epochs` epochs; returns a History (history.history[name] per epoch)."""
        self._require_compiled("fit")
        verbose = _resolve_verbose(verbose)
        batch_size = _batch_size(batch_size)
        x, y = self._check_xy(x, y, "fit")
        if validation_data is None and validation_split:
            if not 0.0 < float(validation_split) < 1.0:
                raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
            split = int(x.shape[0] * (1.0 - float(validation_split)))
            if split == 0 or split == x.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves no training or no "
                                 f"validation samples out of {x.shape[0]}")
            x, y, vx, vy = x[:split], y[:split], x[split:], y[split:]
        elif validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (x_val, y_val)")
            vx, vy = self._check_xy(validation_data[0], validation_data[1], "fit validation_data")
        else:
            vx = vy = None
        n = x.shape[0]
        if n == 0:
            raise ValueError("fit: no training samples")
        self._prepare_training()
        steps = -(-n // batch_size)
        history = callbacks_module.History()
        cbs = list(callbacks or [])
        if not any(isinstance(c, callbacks_module.TerminateOnNaN) for c in cbs):
            cbs.append(callbacks_module.TerminateOnNaN())
        cbs = cbs + [history]  # last, like Keras: it records what the others add to logs
        params = {"verbose": verbose, "epochs": epochs, "steps": steps}
        for c in cbs:
            c.set_model(self)
            c.set_params(params)
        metrics = self._make_metrics(y.shape)
        self.stop_training = False
        self.stop_reason = None
        self.history = history
        for c in cbs:
            c.on_train_begin()
        xbuf = np.empty((batch_size,) + x.shape[1:], np.float32)
        ybuf = np.empty((batch_size,) + y.shape[1:], y.dtype)
        for epoch in range(initial_epoch, epochs):
            for c in cbs:
                c.on_epoch_begin(epoch)
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}")
                sys.stdout.flush()
            bar = Progbar(steps, verbose)
            order = get_rng().permutation(n) if shuffle else None
            loss_sum, seen = 0.0, 0
            for m in metrics:
                m.reset_state()
            logs = {}
            for step in range(steps):
                lo, hi = step * batch_size, min(n, (step + 1) * batch_size)
                if order is None:
                    xb, yb = x[lo:hi], y[lo:hi]
                else:
                    idx = order[lo:hi]
                    xb = np.take(x, idx, axis=0, out=xbuf[:hi - lo])
                    yb = np.take(y, idx, axis=0, out=ybuf[:hi - lo])
                for c in cbs:
                    c.on_train_batch_begin(step)
                per, probs, reg = self._train_step(xb, yb)
                batch_loss = float(np.mean(per, dtype=np.float64)) + reg
                loss_sum += batch_loss * (hi - lo)
                seen += hi - lo
                for m in metrics:
                    m.update_state(yb, probs)
                logs = {"loss": loss_sum / seen, **{m.name: m.result() for m in metrics}}
                for c in cbs:
                    c.on_train_batch_end(step, logs)
                bar.update(step + 1, logs)
                if self.stop_training:
                    break
            if vx is not None:
                vals = self._evaluate_arrays(vx, vy, batch_size)
                logs.update({"val_loss": vals[0]})
                logs.update({f"val_{m}": v for m, v in zip(self._metric_names(), vals[1:])})
            bar.update(step + 1, logs, finalize=True)
            for c in cbs:
                c.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for c in cbs:
            c.on_train_end()
        history.params = params
        history.model = self
        return history

    def _metric_names(self):
        return [m if isinstance(m, str) else m.name for m in self._metric_ids]

    def _evaluate_arrays(self, x, y, batch_size, bar=None):
        n = x.shape[0]
        self._prepare_training()
        metrics = self._make_metrics(y.shape)
        loss_sum = 0.0
        for step, lo in enumerate(range(0, n, batch_size)):
            xb, yb = x[lo:lo + batch_size], y[lo:lo + batch_size]
            per, _, probs = self._forward_loss(xb, yb, False, False)
            loss_sum += float(np.sum(per, dtype=np.float64))
            for m in metrics:
                m.update_state(yb, probs)
            if bar is not None:
                bar.update(step + 1, self._logs(loss_sum / min(n, lo + batch_size), metrics))
        loss = loss_sum / max(n, 1) + self._reg_loss()
        return [loss] + [m.result() for m in metrics]

    @staticmethod
    def _logs(loss, metrics):
        return {"loss": loss, **{m.name: m.result() for m in metrics}}

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", return_dict=False):
        """[loss, *metrics] over (x, y) (a scalar loss when compiled without metrics)."""
        self._require_compiled("evaluate")
        verbose = _resolve_verbose(verbose)
        batch_size = _batch_size(batch_size)
        x, y = self._check_xy(x, y, "evaluate")
        steps = -(-x.shape[0] // batch_size)
        bar = Progbar(steps, verbose)
        vals = self._evaluate_arrays(x, y, batch_size, bar)
        names = ["loss"] + self._metric_names()
        bar.update(steps, dict(zip(names, vals)), finalize=True)
        if return_dict:
            return dict(zip(names, vals))
        return vals if len(vals) > 1 else vals[0]

    def predict(self, x, batch_size=None, verbose=0):
        """Model outputs for x, in batches. Keeps no state on the layers: safe to call from
        several threads at once (kernels release the GIL); memory does not grow across calls."""
        batch_size = _batch_size(batch_size)
        x = self._check_x(x, "predict")
        n = x.shape[0]
        out = np.empty((n,) + tuple(self.output_shape[1:]), np.float32)
        verbose = _resolve_verbose(verbose)
        bar = Progbar(-(-n // batch_size), verbose) if verbose else None  # none: ~2 us per call
        for step, lo in enumerate(range(0, n, batch_size)):
            h = x[lo:lo + batch_size]
            for layer in self._layers:
                h = layer.forward(h, training=False)
            out[lo:lo + batch_size] = h
            if bar is not None:
                bar.update(step + 1)
        if n and bar is not None:
            bar.update(-(-n // batch_size), finalize=True)
        return out

    def __call__(self, x, training=False):
        """Eager inference on a numpy array (same as predict)."""
        return self.predict(x)

    # ---- config / saving ----------------------------------------------------------------------
    def get_config(self) -> dict:
        return {"name": self.name,
                "input_shape": None if self._input_shape is None else list(self._input_shape),
                "layers": [{"class_name": type(lay).__name__, "config": lay.get_config()}
                           for lay in self._layers]}

    def save(self, filepath) -> None:
        """One file: architecture (JSON, with the compile settings) and weights, npz format."""
        from . import _saving

        _saving.save_model(self, filepath)

    def save_weights(self, filepath) -> None:
        from . import _saving

        _saving.save_weights(self, filepath)

    def load_weights(self, filepath) -> None:
        from . import _saving

        _saving.load_weights(self, filepath)


Model = Sequential


def load_model(filepath, compile=True, max_params=2**28) -> Sequential:
    """Rebuild a model written by model.save. Data only: layer types come from nncore's closed
    registry; every shape is checked before memory is allocated; any corrupt, truncated or
    hostile file raises ValueError. Files with compressed members are refused, and so are models
    of more than max_params parameters (default 2**28 = 1 GiB of float32; None: no cap)."""
    from . import _saving

    return _saving.load_model(filepath, compile=compile, max_params=max_params)


def clone_model(model: Sequential) -> Sequential:
    """A new model with the same architecture and freshly initialised weights."""
    from . import _saving

    return _saving.model_from_config(model.get_config(), allocate=True, max_params=None)
