"""Keras's callbacks: the protocol (Callback, CallbackList), History, EarlyStopping,
ModelCheckpoint, LearningRateScheduler, TerminateOnNaN (fit adds it unless one is given),
ReduceLROnPlateau, CSVLogger, LambdaCallback, BackupAndRestore and TensorBoard (scalars; needs
the `tensorboard` package).

BackupAndRestore uses one more part of the protocol, as in Keras 3: after ``on_train_begin`` the
trainer starts from ``model._initial_epoch`` when a callback set it."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pathlib
import shutil
import sys
import time

import numpy as np

from .utils.files import write_atomic


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



def _mode(monitor, mode):
    # 'auto': higher is better for these names (Keras reads each metric's direction).
    if mode == "auto" and any(k in monitor for k in ("precision", "recall", "f1", "fbeta", "r2",
                                                     "true_positives", "true_negatives")):
        return "max"
    return _monitor_mode(monitor, mode)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` has not improved by more than
    min_delta for `patience` epochs, then wait `cooldown` epochs; never below min_lr. Adds
    'learning_rate' to the epoch logs. mode 'auto': max for accuracy/AUC/precision/recall-like
    names, else min."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0, **kwargs):
        super().__init__()
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau: unexpected arguments {sorted(kwargs)}")
        if not factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. "
                             f"Received factor={factor}")
        self.monitor, self.factor, self.patience = monitor, float(factor), int(patience)
        self.verbose, self.min_delta = verbose, abs(float(min_delta))
        self.cooldown, self.min_lr = int(cooldown), float(min_lr)
        self.mode = _mode(monitor, mode)
        self._reset()

    def _reset(self):
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def _improved(self, cur):
        if self.best is None:
            return True
        if self.mode == "min":
            return cur < self.best - self.min_delta
        return cur > self.best + self.min_delta

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        opt = self.model.optimizer
        logs["learning_rate"] = float(opt.learning_rate)
        cur = logs.get(self.monitor)
        if cur is None:
            print(f"ReduceLROnPlateau: learning rate reduction is conditioned on metric "
                  f"{self.monitor!r} which is not available. Available metrics are: "
                  f"{','.join(logs)}.", file=sys.stderr)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(cur):
            self.best = cur
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = float(opt.learning_rate)
                if old > np.float32(self.min_lr):
                    new = max(old * self.factor, self.min_lr)
                    opt.learning_rate = new
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                              f"to {new}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class CSVLogger(Callback):
    """Write one row per epoch (epoch and the sorted log keys; val_ columns added when the first
    epoch has none) to a CSV file; append=True continues an existing file without a second
    header."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.sep, self.filename, self.append = separator, os.fspath(filename), bool(append)
        self.writer = self.keys = self.csv_file = None
        self.append_header = True

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, encoding="utf-8") as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="", encoding="utf-8")  # noqa: SIM115
        self.writer = self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}

        def value(v):
            if isinstance(v, str):
                return v
            if isinstance(v, np.ndarray) and v.ndim:
                return f'"[{", ".join(map(str, v.tolist()))}]"'
            if isinstance(v, (list, tuple)):
                return f'"[{", ".join(map(str, v))}]"'
            return v

        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in self.keys]
        if self.writer is None:
            sep = self.sep

            class Dialect(csv.excel):
                delimiter = sep

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys,
                                         dialect=Dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((k, value(logs.get(k, "NA"))) for k in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


class LambdaCallback(Callback):
    """A callback from plain functions: on_epoch_begin/end(epoch, logs),
    on_train_begin/end(logs), on_train_batch_begin/end(batch, logs); logs is always a dict."""

    _HOOKS = ("on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end",
              "on_train_batch_begin", "on_train_batch_end")

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs):
        super().__init__()
        self.__dict__.update(kwargs)
        given = dict(zip(self._HOOKS, (on_epoch_begin, on_epoch_end, on_train_begin,
                                       on_train_end, on_train_batch_begin, on_train_batch_end)))
        for name, fn in given.items():
            if fn is not None and not callable(fn):
                raise TypeError(f"LambdaCallback: {name} must be callable, got {fn!r}")
        self._fns = {k: v for k, v in given.items() if v is not None}

    def _call(self, hook, *args, logs):
        fn = self._fns.get(hook)
        if fn is not None:
            fn(*args, logs if logs is not None else {})

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs=logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs=logs)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs=logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs=logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs=logs)


class BackupAndRestore(Callback):
    """Back up the training state at the end of every epoch into backup_dir, and restore it at
    the start of the next fit, so an interrupted fit resumes from its last completed epoch.

    The state is one file, ``backup_dir/latest.npz`` (written atomically, read without pickle):
    the model's weights, the optimizer's state (``optimizer.get_state``: step count, slots) and
    nncore's random generator (so the next epochs shuffle as they would have). Restoring sets
    ``model._initial_epoch`` (Keras 3's protocol). delete_checkpoint removes backup_dir when fit
    ends normally. Only save_freq='epoch' is supported."""

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False,
                 delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError("Empty `backup_dir` argument passed")
        if save_freq != "epoch":
            raise ValueError("BackupAndRestore: only save_freq='epoch' is supported, got "
                             f"{save_freq!r}")
        self.backup_dir = pathlib.Path(backup_dir)
        self.save_freq, self.double_checkpoint = save_freq, bool(double_checkpoint)
        self.delete_checkpoint = bool(delete_checkpoint)
        self._path = self.backup_dir / "latest.npz"
        self._prev = self.backup_dir / "latest.npz.bkp"

    def _params_of(self):
        return list(self.model.trainable_weights)

    def on_train_begin(self, logs=None):
        path = self._path if self._path.is_file() else (
            self._prev if self._prev.is_file() else None)
        if path is None:
            return
        try:
            self._restore(path)
        except ValueError:
            if path == self._prev or not self._prev.is_file():
                raise
            self._restore(self._prev)

    def _restore(self, path):
        from .datasets._loader import load_npz
        from .saving.files import MAX_ZIP_MEMBERS
        from .utils import random as _random

        try:  # nncore's one npz reader (regular file, sizes checked from the headers first)
            arrays = load_npz(path, max_members=MAX_ZIP_MEMBERS)
        except (OSError, ValueError) as e:
            raise ValueError(f"BackupAndRestore: {path}: unreadable backup ({e})") from None
        try:
            meta = json.loads(bytes(arrays.pop("meta")).decode("utf-8"))
            n_w, n_opt, epoch = int(meta["weights"]), int(meta["optimizer"]), int(meta["epoch"])
            weights = [arrays[f"w{i}"] for i in range(n_w)]
            opt_state = [arrays[f"o{i}"] for i in range(n_opt)]
        except (KeyError, ValueError, TypeError, UnicodeDecodeError) as e:
            raise ValueError(f"BackupAndRestore: {path}: malformed backup ({e})") from None
        self.model.set_weights(weights)
        opt = getattr(self.model, "optimizer", None)
        if opt is not None and n_opt:
            opt.set_state(self._params_of(), opt_state)
        if meta.get("rng") is not None:
            rng = np.random.default_rng()
            rng.bit_generator.state = meta["rng"]
            _random._rng = rng
        if epoch > 0:
            self.model._initial_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        from .utils import random as _random

        opt = getattr(self.model, "optimizer", None)
        state = opt.get_state(self._params_of()) if opt is not None else []
        weights = self.model.get_weights()
        meta = {"epoch": epoch + 1, "weights": len(weights), "optimizer": len(state),
                "rng": _random.get_rng().bit_generator.state}
        arrays = {f"w{i}": w for i, w in enumerate(weights)}
        arrays.update({f"o{i}": s for i, s in enumerate(state)})
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        if self.double_checkpoint and self._path.is_file():
            # The last good backup becomes the previous one in one rename (never half copied).
            os.replace(self._path, self._prev)
        write_atomic(self._path, buf.getvalue())

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and self.backup_dir.exists():
            shutil.rmtree(self.backup_dir)


def _tensorboard():
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as e:
        raise ImportError("The TensorBoard callback needs the `tensorboard` package to write "
                          "event files: pip install tensorboard") from e
    return EventFileWriter, event_pb2, summary_pb2


class TensorBoard(Callback):
    """Write the epoch logs (and, with update_freq an int, every update_freq-th batch's) as
    TensorBoard scalar events: log_dir/train ('epoch_loss', 'epoch_<metric>', 'batch_...') and
    log_dir/validation (the val_ entries without the prefix), as Keras's callback lays them out.
    Histograms, images, graphs and profiling are not written (histogram_freq, write_graph,
    write_images, profile_batch are accepted only at their 'off' values)."""

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0,
                 embeddings_freq=0, embeddings_metadata=None):
        super().__init__()
        self._writer_cls, self._event_pb2, self._summary_pb2 = _tensorboard()
        if histogram_freq or write_images or profile_batch or embeddings_freq:
            raise ValueError("TensorBoard: only scalars are written; histogram_freq, "
                             "write_images, profile_batch and embeddings_freq must be 0/False")
        if update_freq != "epoch" and (isinstance(update_freq, bool)
                                       or not isinstance(update_freq, int) or update_freq < 1):
            raise ValueError(f"update_freq must be 'epoch' or a positive int, got "
                             f"{update_freq!r}")
        self.log_dir = os.fspath(log_dir)
        self.update_freq = update_freq
        self.write_steps_per_second = bool(write_steps_per_second)
        self._writers = {}
        self._step = 0

    def _writer(self, which):
        if which not in self._writers:
            path = os.path.join(self.log_dir, which)
            os.makedirs(path, exist_ok=True)
            self._writers[which] = self._writer_cls(path)
        return self._writers[which]

    def _scalars(self, which, values, step):
        vals = []
        for tag, v in values.items():
            try:
                f = float(v)
            except (TypeError, ValueError):
                continue  # per-class arrays are not scalars
            vals.append(self._summary_pb2.Summary.Value(tag=tag, simple_value=f))
        if vals:
            ev = self._event_pb2.Event(wall_time=time.time(), step=int(step),
                                       summary=self._summary_pb2.Summary(value=vals))
            self._writer(which).add_event(ev)

    def on_train_begin(self, logs=None):
        self._step = 0
        self._epoch_start = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self.update_freq != "epoch" and self._step % self.update_freq == 0:
            self._scalars("train", {f"batch_{k}": v for k, v in (logs or {}).items()},
                          self._step)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {f"epoch_{k}": v for k, v in logs.items() if not k.startswith("val_")}
        if self.write_steps_per_second:
            dt = time.time() - self._epoch_start
            steps = self.params.get("steps") or 0
            if dt > 0 and steps:
                train["epoch_steps_per_second"] = steps / dt
        opt = getattr(self.model, "optimizer", None)
        if opt is not None and "epoch_learning_rate" not in train:
            train["epoch_learning_rate"] = float(opt.learning_rate)
        self._scalars("train", train, epoch)
        val = {f"epoch_{k[4:]}": v for k, v in logs.items() if k.startswith("val_")}
        self._scalars("validation", val, epoch)
        for w in self._writers.values():
            w.flush()

    def on_train_end(self, logs=None):
        for w in self._writers.values():
            w.close()
        self._writers = {}


__all__ = ["Callback", "CallbackList", "History", "TerminateOnNaN", "EarlyStopping",
           "ModelCheckpoint", "LearningRateScheduler", "BackupAndRestore", "CSVLogger",
           "LambdaCallback", "ReduceLROnPlateau", "TensorBoard"]
