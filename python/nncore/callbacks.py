"""Keras-style callbacks: History, EarlyStopping, ModelCheckpoint, LearningRateScheduler,
TerminateOnNaN (fit adds it unless one is given)."""

from __future__ import annotations

import math
import os
import sys

import numpy as np


class Callback:
    """Keras's callback protocol: every hook takes a `logs` dict (never None when nncore calls
    it); self.model and self.params are set before training starts."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)

    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...


class CallbackList:
    """Calls every hook of a list of callbacks in order, always with a dict of logs."""

    _HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
              "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end",
              "on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end",
              "on_predict_batch_begin", "on_predict_batch_end")

    def __init__(self, callbacks=None, model=None, **params):
        if isinstance(callbacks, CallbackList):
            callbacks = callbacks.callbacks
        if callbacks is not None and not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"callbacks must be a list of Callback objects, got "
                            f"{type(callbacks).__name__}")
        self.callbacks = list(callbacks or [])
        for c in self.callbacks:
            if not hasattr(c, "set_model"):
                raise TypeError(f"callbacks must be nncore.callbacks.Callback objects, got "
                                f"{type(c).__name__}")
        self.params = params
        if model is not None:
            self.set_model(model)
        self.set_params(params)

    def append(self, callback):
        self.callbacks.append(callback)

    def set_model(self, model):
        self.model = model
        for c in self.callbacks:
            c.set_model(model)

    def set_params(self, params):
        self.params = params
        for c in self.callbacks:
            c.set_params(params)

    def __iter__(self):
        return iter(self.callbacks)

    def _call(self, hook, *args):
        for c in self.callbacks:
            getattr(c, hook)(*args)


def _make_hook(hook, with_index):
    if with_index:
        def f(self, index, logs=None):
            self._call(hook, index, {} if logs is None else logs)
    else:
        def f(self, logs=None):
            self._call(hook, {} if logs is None else logs)
    f.__name__ = hook
    return f


for _hook in CallbackList._HOOKS:
    setattr(CallbackList, _hook, _make_hook(_hook, "batch" in _hook or "epoch" in _hook))


class History(Callback):
    """history: {metric name: [value per epoch]}; epoch: [epoch indices]."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


class TerminateOnNaN(Callback):
    """Stops training, with a message, when a batch loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: invalid loss {loss}, terminating training "
                  "(check the learning rate and the input data for NaN/inf)", file=sys.stderr)
            self.model.stop_training = True
            self.model.stop_reason = f"invalid loss {loss} at batch {batch}"


def _monitor_mode(monitor, mode):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        mode = "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"
    return mode


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than min_delta for `patience` epochs."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor, self.patience, self.verbose = monitor, int(patience), verbose
        self.min_delta = abs(float(min_delta))
        self.mode = _monitor_mode(monitor, mode)
        self.baseline, self.restore_best_weights = baseline, bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)

    def _better(self, a, b):
        if b is None:
            return True
        return a < b - self.min_delta if self.mode == "min" else a > b + self.min_delta

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_weights, self.best_epoch = 0, 0, None, 0
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        cur = (logs or {}).get(self.monitor)
        if cur is None:
            print(f"EarlyStopping: metric {self.monitor!r} is not available "
                  f"(have {sorted(logs or {})})", file=sys.stderr)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._better(cur, self.best):
            self.best, self.best_epoch = cur, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._better(cur, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (or its weights) after each epoch, or every `save_freq` batches, or only
    when `monitor` improves (save_best_only). filepath may hold {epoch} (1-based) and log keys,
    e.g. 'ckpt/{epoch:02d}-{val_loss:.2f}.nncore'; missing folders are created."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(
                save_freq, int) or save_freq < 1):
            raise ValueError(f"ModelCheckpoint: save_freq must be 'epoch' or a positive int of "
                             f"batches, got {save_freq!r}")
        self.filepath, self.monitor, self.verbose = os.fspath(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = bool(save_best_only), bool(save_weights_only)
        self.mode = _monitor_mode(monitor, mode)
        self.save_freq = save_freq
        self.best = initial_value_threshold
        self._batches = 0
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches += 1
        if self._batches % self.save_freq == 0:
            self._save(self._epoch, dict(logs or {}), batch=batch)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, dict(logs or {}))

    def _improved(self, cur):
        if self.best is None:
            return True
        return cur < self.best if self.mode == "min" else cur > self.best

    def _save(self, epoch, logs, batch=None):
        try:
            path = self.filepath.format(epoch=epoch + 1, batch=(batch or 0) + 1, **logs)
        except KeyError as e:
            raise KeyError(f"ModelCheckpoint: filepath {self.filepath!r} names {e}, which is "
                           f"not among the logs {sorted(logs)}") from None
        if self.save_best_only:
            cur = logs.get(self.monitor)
            if cur is None:
                print(f"ModelCheckpoint: can save best model only with {self.monitor} "
                      f"available (have {sorted(logs)}), skipping", file=sys.stderr)
                return
            if not self._improved(cur):
                if self.verbose:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from "
                          f"{self.best:.5f}")
                return
            if self.verbose:
                prev = float("inf") if self.best is None and self.mode == "min" else (
                    -float("inf") if self.best is None else self.best)
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {prev:.5f} to "
                      f"{cur:.5f}, saving model to {path}")
            self.best = cur
        elif self.verbose:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        if not all(np.all(np.isfinite(w)) for w in self.model.weights):
            # Never replace the last good checkpoint with weights that went NaN/inf.
            print(f"ModelCheckpoint: epoch {epoch + 1}: the weights are not finite (NaN/inf); "
                  f"not saving {path}", file=sys.stderr)
            return
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class LearningRateScheduler(Callback):
    """Sets optimizer.learning_rate = schedule(epoch, lr) at the start of every epoch."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        opt = self.model.optimizer
        lr = self.schedule(epoch, opt.learning_rate)
        if not isinstance(lr, (float, int, np.floating)) or not math.isfinite(float(lr)):
            raise ValueError(f"LearningRateScheduler: schedule returned {lr!r}, expected a float")
        opt.learning_rate = float(lr)
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.learning_rate
