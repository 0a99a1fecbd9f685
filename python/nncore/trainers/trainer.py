"""Trainer: compile / fit / evaluate / predict for any model that can run its graph.

A model provides ``_run(xs, training, need_ctx, fuse) -> (outputs, ctxs, logits)``,
``_backprop(ctxs, output_grads, plan)``, ``_grad_plan()``, ``_trainable_slots()``, its input and
output tensors and names. One training step:

    outputs = forward(x)                  every layer, contexts kept for the backward
    losses  = loss_k(outputs_k, y_k)      per output, weighted; softmax/sigmoid + cross-entropy
                                          fused from the logits where the graph allows
    backward(d losses / d outputs)        gradients summed over fan-out and shared layers
    apply_gradients(grads, weights)       hooks (clipping, all-reduce), then the optimizer

Data are converted per batch to what each model input declares (float32 unless an Input says
otherwise); nothing is converted whole up front.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

from .. import callbacks as callbacks_module
from .data_adapters import IteratorAdapter, make_adapter
from ..utils.progbar import Progbar

# A gradient hook returns this to skip the optimizer update of the step (the distributed fit does,
# when some rank asked to stop: every rank then skips the same step).
SKIP_STEP = object()

_IGNORED_COMPILE = ("run_eagerly", "steps_per_execution", "jit_compile", "auto_scale_loss",
                    "weighted_metrics")


def _resolve_verbose(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return verbose


def _batch_size(batch_size, default=32):
    if batch_size is None:
        return default
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


def _steps(v, name):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive int or None, got {v!r}")
    return int(v)


class _State:
    """What a run needs, computed once per fit / evaluate / train_on_batch."""

    __slots__ = ("losses", "fuse", "plan", "slots", "params", "regs", "has_reg", "metrics",
                 "names")


def _distributed_fit(model):
    """nncore.distributed's side of this fit, when that module is loaded and initialised in a
    group of more than one process; else None (and mpi4py is never imported from here)."""
    mod = sys.modules.get("nncore.distributed")
    return None if mod is None else mod._fit_run(model)


class Trainer:
    def __init__(self):
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self.stop_training = False
        self.stop_reason = None
        self.history = None
        self._compile_spec = None
        self._gradient_hooks: list = []
        self._run_lock = threading.Lock()

    # A model pickles (and deep-copies) as its state without the lock that guards fit, so
    # multiprocessing and scikit-learn (GridSearchCV with n_jobs, clone) can carry models.
    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_run_lock", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._run_lock = threading.Lock()

    # ---- compile ------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, **kwargs):
        """Keras's compile. loss: a name, a Loss, a built-in loss function, or one per output
        (list or dict keyed by output name); loss_weights likewise; metrics: a list (applied to
        every output), a list of lists or a dict per output. run_eagerly, steps_per_execution,
        jit_compile, auto_scale_loss are accepted and ignored (nothing here is compiled)."""
        from .. import losses as losses_module
        from .. import metrics as metrics_module
        from .. import optimizers as optimizers_module

        unknown = sorted(k for k in kwargs if k not in _IGNORED_COMPILE)
        if unknown:
            raise ValueError(f"compile: unknown argument(s) {unknown}")
        if kwargs.get("weighted_metrics"):
            raise ValueError("compile: weighted_metrics are not supported yet")
        if loss is None:
            raise ValueError("compile: a loss is required, e.g. loss='mse'")
        self.optimizer = optimizers_module.get(optimizer)

        def one_loss(v):
            from .custom_loss import resolve

            if v is None:
                return None
            if callable(v) and not isinstance(v, losses_module.Loss):
                name = getattr(v, "__name__", None)
                if getattr(v, "__module__", "") == losses_module.__name__ and name:
                    return losses_module.get(name)
            if not isinstance(v, (str, dict)):
                custom = resolve(v)  # fn(y_true, y_pred) in keras.ops, or a Loss with call
                if custom is not None:
                    return custom
            return losses_module.get(v)

        if isinstance(loss, dict):
            resolved = {k: one_loss(v) for k, v in loss.items()}
        elif isinstance(loss, (list, tuple)):
            resolved = [one_loss(v) for v in loss]
        else:
            resolved = one_loss(loss)
        mets = [] if metrics is None else metrics
        if isinstance(mets, (str, metrics_module.Metric)):
            mets = [mets]
        for m in flatten_metrics(mets):
            metrics_module.get(m, (1, 1), (1, 2))  # unknown names fail now
        if loss_weights is not None and not isinstance(loss_weights, (list, tuple, dict)):
            raise ValueError(f"compile: loss_weights must be a list or a dict, got "
                             f"{loss_weights!r}")
        self.loss = resolved
        self._compile_spec = {"loss": resolved, "loss_weights": loss_weights, "metrics": mets,
                              "raw_metrics": metrics}
        self._metric_ids = mets
        self.compiled = True

    def _require_compiled(self, where):
        if not self.compiled:
            raise RuntimeError(f"{where}: model {self.name!r} must be compiled first: call "
                               "model.compile(optimizer=..., loss=..., metrics=[...])")

    @property
    def metrics_names(self):
        st = getattr(self, "_last_state", None)
        if st is None:
            return ["loss"]
        return st.names

    # ---- per-run state ------------------------------------------------------------------------
    def _per_output(self, spec, what, default=None):
        names = self.output_names
        n = len(names)
        if isinstance(spec, dict):
            unknown = sorted(set(spec) - set(names))
            if unknown:
                raise ValueError(f"compile: {what} names {unknown}, but the model's outputs are "
                                 f"{names}")
            return [spec.get(k, default) for k in names]
        if isinstance(spec, (list, tuple)):
            if len(spec) != n:
                raise ValueError(f"compile: {what} has {len(spec)} entries but the model has "
                                 f"{n} outputs {names}")
            return list(spec)
        return [spec] * n

    def _state(self, y_shapes=None, training=True) -> _State:
        from .. import metrics as metrics_module

        spec = self._compile_spec
        st = _State()
        names = self.output_names
        multi = len(names) > 1
        losses = self._per_output(spec["loss"], "loss")
        weights = self._per_output(spec["loss_weights"], "loss_weights", 1.0) if \
            spec["loss_weights"] is not None else [1.0] * len(names)
        st.losses = [(names[k], losses[k], float(weights[k] if weights[k] is not None else 1.0))
                     for k in range(len(names))]
        if all(lo is None for _, lo, _ in st.losses):
            raise ValueError("compile: no output has a loss")
        # Fuse an output softmax/sigmoid into its cross-entropy when nothing else reads it.
        st.fuse = set()
        for k, (_, loss, _) in enumerate(st.losses):
            if loss is None or loss.fusable is None or loss.from_logits:
                continue
            idx = self._fuse_step(self._out_slots[k], loss.fusable)
            if idx is not None:
                st.fuse.add(idx)
        st.plan = self._grad_plan()
        st.slots = self._trainable_slots()
        st.params = [layer._weights[i] for layer, i in st.slots]
        st.regs = [layer._regularizers[i] for layer, i in st.slots]
        st.has_reg = any(r is not None for lay in self._leaf_layers() for r in lay._regularizers)
        # Metrics per output, named as Keras 3: '<output>_<metric>' with several outputs.
        mspec = spec["metrics"]
        if isinstance(mspec, dict):
            per = self._per_output(mspec, "metrics", [])
        elif multi and mspec and all(isinstance(m, (list, tuple)) for m in mspec):
            per = self._per_output(list(mspec), "metrics")
        else:
            per = [list(mspec)] * len(names)
        st.metrics = []
        for k, ms in enumerate(per):
            if ms is None:
                continue
            if isinstance(ms, (str, metrics_module.Metric)):
                ms = [ms]
            for m in ms:
                ys = y_shapes[k] if y_shapes is not None else (1,) + tuple(
                    d or 1 for d in self.outputs[k].shape[1:])
                obj = metrics_module.get(m, ys, self.outputs[k].shape)
                if multi and len(per) > 1 and isinstance(m, metrics_module.Metric):
                    obj = _copy_metric(obj)
                label = f"{names[k]}_{obj.name}" if multi else obj.name
                st.metrics.append((k, obj, label))
        st.names = ["loss"] + ([f"{n}_loss" for n, lo, _ in st.losses if lo is not None]
                               if multi else []) + [label for _, _, label in st.metrics]
        self._last_state = st
        return st

    # ---- steps --------------------------------------------------------------------------------
    def _prepare_inputs(self, xs, where):
        out = []
        for k, (x, t) in enumerate(zip(xs, self.inputs)):
            x = np.asarray(x)
            if x.ndim == 1 and len(t.shape) == 2 and t.shape[1] == 1:
                x = x.reshape(-1, 1)  # Keras expands rank-1 inputs
            if x.ndim != len(t.shape) or any(
                    a is not None and a != b for a, b in zip(t.shape[1:], x.shape[1:])):
                raise ValueError(
                    f"{where}: input {self.input_names[k]!r} of model {self.name!r} expects "
                    f"shape {_fmt(t.shape)}, got data of shape {x.shape}")
            dt = self._input_dtypes[k]
            if dt == "string":  # Input(dtype="string"): text for TextVectorization & co.
                if x.dtype.kind not in "USO":
                    raise TypeError(f"{where}: input {self.input_names[k]!r} takes strings, got "
                                    f"dtype {x.dtype}")
                out.append(x if x.dtype == object else x.astype(object))
                continue
            if x.dtype.kind not in "biuf":
                raise TypeError(f"{where}: input data must be real numbers, got dtype {x.dtype}")
            out.append(x if (x.dtype == dt and x.flags.c_contiguous) else
                       np.ascontiguousarray(x, dtype=dt))
        return out

    def _prepare_targets(self, ys, st, where, check=True):
        if ys is None:
            raise ValueError(f"{where}: targets y are required")
        out = []
        for k, ((name, loss, _), y) in enumerate(zip(st.losses, ys)):
            y = np.asarray(y)
            if y.dtype.kind not in "biuf":
                raise TypeError(f"{where}: targets must be real numbers, got dtype {y.dtype}")
            oshape = self.outputs[k].shape
            if loss is None:
                out.append(y)
                continue
            if y.ndim == 1 and len(oshape) == 2 and oshape[-1] == 1 and \
                    loss.name != "sparse_categorical_crossentropy":
                y = y.reshape(-1, 1)
            if check:
                loss.check_targets(y, oshape, where if len(ys) == 1 else f"{where} ({name})")
            out.append(loss.prepare_targets(y))
        return out

    def _loss_grads(self, st, outs, logits, ys, sw, need_grad, masks=None):
        """Per output: the loss (Keras's reduction, with the output's mask when it has one) and
        its gradient with respect to the output (or its logits when fused)."""
        douts = [None] * len(outs)
        means = []
        total = 0.0
        for k, (_, loss, w) in enumerate(st.losses):
            if loss is None:
                continue
            s = self._out_slots[k]
            fused = s in logits
            z = logits[s] if fused else outs[k]
            got = None
            if masks and masks[k] is not None:
                got = loss.compute_masked(z, ys[k], masks[k], sw, need_grad, logits=fused)
            if got is not None:
                per, d = got
            else:
                per, d = loss.compute(z, ys[k], need_grad, logits=fused)
                scale = loss.batch_scale(z)
                if scale != 1:  # reduction 'sum'
                    per = per * np.float32(scale)
                    if need_grad:
                        d = d * np.float32(scale)
                if sw is not None:
                    per = per * sw
                    if need_grad:
                        d = d * sw.reshape((-1,) + (1,) * (d.ndim - 1))
            mean = float(np.mean(per, dtype=np.float64)) if per.size else 0.0
            if need_grad and w != 1.0:
                d = d * np.float32(w)
            douts[k] = d
            means.append(mean)
            total += w * mean
        return douts, means, total

    def train_step(self, st, xs, ys, sw):
        """One optimizer step on a prepared batch: (loss incl. regularization, per-output losses,
        outputs)."""
        masks = []
        with _added_losses() as added:  # layers' add_loss values (activity penalties)
            outs, ctxs, logits = self._run(xs, training=True, need_ctx=True, fuse=st.fuse,
                                           out_masks=masks)
        douts, means, total = self._loss_grads(st, outs, logits, ys, sw, True, masks)
        total += added.total
        self._zero_grads()
        self._backprop(ctxs, douts, st.plan)
        # The penalty is reported for the weights the loss was computed with (before the step).
        reg = self.regularization_loss() if st.has_reg else 0.0
        # (rows, data loss, per-output losses) of this step, for gradient hooks that combine
        # steps across processes; such a hook may replace it with the combined values.
        self._step_info = (len(xs[0]) if xs else 0, total, means)
        self.apply_gradients(st, self._collect_grads(st))
        _, total, means = self._step_info
        return total + reg, means, outs, masks

    def _collect_grads(self, st):
        for layer in {id(lay): lay for lay, _ in st.slots}.values():
            layer._finish_grads()
        return [layer.grads[i] for layer, i in st.slots]

    def add_gradient_hook(self, hook):
        """hook(grads, weights) -> grads or None, called on the complete gradient list of every
        step before the optimizer (e.g. a cross-process all-reduce); returning
        trainers.trainer.SKIP_STEP skips this step's update. Returns a remover."""
        self._gradient_hooks.append(hook)
        return lambda: self._gradient_hooks.remove(hook)

    def apply_gradients(self, st, grads):
        """The one place where every gradient of a step exists before the update."""
        for hook in self._gradient_hooks:
            new = hook(grads, st.params)
            if new is SKIP_STEP:
                return
            if new is not None:
                grads = new
        self.optimizer.apply(st.params, grads, st.regs)
        from ..models import inference

        inference.bump()  # weights changed: inference plans rebuild

    def test_step(self, st, xs, ys, sw):
        masks = []
        with _added_losses() as added:
            outs, _, logits = self._run(xs, training=False, need_ctx=False, fuse=st.fuse,
                                        out_masks=masks)
        _, means, total = self._loss_grads(st, outs, logits, ys, sw, False, masks)
        return total + added.total, means, outs, masks

    @staticmethod
    def _update_metrics(metrics, ys, outs, masks):
        # Keras applies an output's mask to the metrics that average values (its
        # MeanMetricWrapper family); the others see every entry.
        for k, m, _ in metrics:
            if masks and masks[k] is not None:
                m._update_masked(ys[k], outs[k], masks[k])
            else:
                m.update_state(ys[k], outs[k])

    def predict_step(self, xs):
        return self._run(xs, training=False, need_ctx=False)[0]

    def _gradients(self, x, y, sample_weight=None):
        """(batch-mean data loss, gradients in trainable_weights order) without updating
        anything; for tests and tools."""
        self._require_compiled("gradients")
        xs, ys = self._inputs_targets(x, y, "gradients")
        st = self._state([np.shape(a) for a in ys])
        xs = self._prepare_inputs(xs, "gradients")
        ys = self._prepare_targets(ys, st, "gradients")
        sw = None if sample_weight is None else np.asarray(sample_weight, np.float32)
        masks = []
        with _added_losses() as added:
            outs, ctxs, logits = self._run(xs, training=True, need_ctx=True, fuse=st.fuse,
                                           out_masks=masks)
        douts, _, total = self._loss_grads(st, outs, logits, ys, sw, True, masks)
        total += added.total
        self._zero_grads()
        self._backprop(ctxs, douts, st.plan)
        return total, [g.copy() for g in self._collect_grads(st)]

    # ---- data ---------------------------------------------------------------------------------
    def _ensure_built_for(self, shapes):
        """Hook for models that build on their first data (Sequential)."""

    def _inputs_targets(self, x, y, where):
        from .data_adapters import align

        if not self.built:
            xs0 = align(x, ["input"], "inputs", where) if not isinstance(x, dict) else None
            if xs0 is not None:
                a = np.asarray(xs0[0])
                if a.ndim == 1:
                    a = a.reshape(-1, 1)
                self._ensure_built_for([a.shape])
        xs = align(x, self.input_names, "inputs", where)
        ys = align(y, self.output_names, "outputs", where)
        return xs, ys

    def _adapter(self, x, y, sample_weight, batch_size, steps, shuffle, where,
                 class_weight=None):
        if x is None:
            raise ValueError(f"{where}: no input data x")
        if not self.built and isinstance(x, (np.ndarray, list)) or not self.built and \
                hasattr(x, "shape"):
            self._inputs_targets(x, None, where)
        if not self.built:
            raise ValueError(f"{where}: model {self.name!r} is not built and its input shape "
                             "cannot be taken from this data; build it or give an Input")
        return make_adapter(x, y, sample_weight, batch_size, steps, shuffle, where,
                            self.input_names, self.output_names, class_weight)

    # ---- fit ----------------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for `epochs` epochs; returns a History (history.history[name] per epoch)."""
        self._require_compiled("fit")
        if not self._run_lock.acquire(blocking=False):
            raise RuntimeError(f"fit: model {self.name!r} is already being trained or evaluated "
                               "in another thread; one model trains in one thread at a time")
        try:
            return self._fit(x, y, batch_size, epochs, verbose, callbacks, validation_split,
                             validation_data, shuffle, class_weight, sample_weight,
                             initial_epoch, steps_per_epoch, validation_steps,
                             validation_batch_size, validation_freq)
        finally:
            self._run_lock.release()

    def _fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split,
             validation_data, shuffle, class_weight, sample_weight, initial_epoch,
             steps_per_epoch, validation_steps, validation_batch_size, validation_freq):
        verbose = _resolve_verbose(verbose)
        batch_size = _batch_size(batch_size)
        steps_per_epoch = _steps(steps_per_epoch, "steps_per_epoch")
        dist = _distributed_fit(self)  # None unless nncore.distributed.init() in a group
        if dist is not None and not dist.primary:
            verbose = 0  # only rank 0 prints
        validation_steps = _steps(validation_steps, "validation_steps")
        for name, v in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"fit: {name} must be an int >= 0, got {v!r}")
        vx = vy = vsw = None
        if validation_data is None and validation_split:
            if not 0.0 < float(validation_split) < 1.0:
                raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
            xs, ys = self._inputs_targets(x, y, "fit")
            if ys is None:
                raise ValueError("fit: validation_split needs targets y")
            n = len(xs[0])
            split = int(n * (1.0 - float(validation_split)))
            if split == 0 or split == n:
                raise ValueError(f"validation_split={validation_split} leaves no training or no "
                                 f"validation samples out of {n}")
            vx, vy = [a[split:] for a in xs], [a[split:] for a in ys]
            x, y = [a[:split] for a in xs], [a[:split] for a in ys]
            if sample_weight is not None:
                sample_weight = np.asarray(sample_weight)
                vsw, sample_weight = sample_weight[split:], sample_weight[:split]
            if len(self.inputs) == 1:
                x, vx = x[0], vx[0]
            if len(self.outputs) == 1:
                y, vy = y[0], vy[0]
        elif validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2,
                                                                                             3):
                if not hasattr(validation_data, "__iter__") or isinstance(
                        validation_data, (tuple, list)):
                    raise ValueError("validation_data must be (x_val, y_val), (x_val, y_val, "
                                     "sample_weight) or a dataset")
                vx = validation_data
            else:
                vx, vy = validation_data[0], validation_data[1]
                vsw = validation_data[2] if len(validation_data) == 3 else None
        data = self._adapter(x, y, sample_weight, batch_size, steps_per_epoch, shuffle, "fit",
                             class_weight)
        if isinstance(data, type(data)) and hasattr(data, "n"):
            if data.n == 0:
                raise ValueError("fit: no training samples (x has 0 rows)")
            if data.ys is None:
                raise ValueError("fit: targets y are required")
        st = self._state(None if not hasattr(data, "ys") or data.ys is None
                         else [a.shape for a in data.ys])
        checked = False
        if hasattr(data, "xs"):
            data.xs = [self._check_array_input(a, k, "fit") for k, a in enumerate(data.xs)]
            data.ys = self._prepare_targets(data.ys, st, "fit")
            checked = True
        if dist is not None:  # this rank's slice of every global batch
            data = dist.train_data(data, steps_per_epoch)
        val = None
        if vx is not None:
            val = self._adapter(vx, vy, vsw, _batch_size(validation_batch_size, batch_size),
                                validation_steps, False, "fit validation_data")
            if hasattr(val, "n") and val.n == 0:
                raise ValueError("fit: validation_data has no samples")
            if dist is not None:
                val = dist.val_data(val)
        history = callbacks_module.History()
        cbs = list(callbacks or []) if not isinstance(callbacks, callbacks_module.CallbackList) \
            else list(callbacks.callbacks)
        if not any(isinstance(c, callbacks_module.TerminateOnNaN) for c in cbs):
            cbs.append(callbacks_module.TerminateOnNaN())
        cbs.append(history)  # last, like Keras: it records what the others add to logs
        if dist is not None:
            cbs = dist.callbacks(cbs)  # files are written by rank 0 only
        steps = data.steps
        cbl = callbacks_module.CallbackList(cbs, model=self, verbose=verbose, epochs=epochs,
                                            steps=steps)
        self.stop_training = False
        self.stop_reason = None
        self.history = history
        self._initial_epoch = None
        cbl.on_train_begin({})
        if self._initial_epoch is not None:  # a callback resumed training (BackupAndRestore)
            initial_epoch = max(initial_epoch, int(self._initial_epoch))
            self._initial_epoch = None
        if dist is not None:
            initial_epoch = dist.start(st, initial_epoch)  # rank 0's state everywhere
        try:
            return self._fit_epochs(st, data, val, cbl, bar_steps=steps, epochs=epochs,
                                    initial_epoch=initial_epoch, verbose=verbose,
                                    checked=checked, history=history,
                                    validation_freq=validation_freq, dist=dist)
        finally:
            if dist is not None:
                dist.end()

    def _fit_epochs(self, st, data, val, cbl, bar_steps, epochs, initial_epoch, verbose,
                    checked, history, validation_freq, dist):
        steps = bar_steps
        logs = {}
        epoch = initial_epoch
        for epoch in range(initial_epoch, epochs):
            for _, m, _ in st.metrics:
                m.reset_state()
            cbl.on_epoch_begin(epoch, {})
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}")
                sys.stdout.flush()
            bar = Progbar(steps or 1, verbose)
            loss_sum, out_sums, seen, local_seen = 0.0, None, 0, 0
            logs = {}
            step = -1
            for step, (xb, yb, sb) in enumerate(data.epoch()):
                cbl.on_train_batch_begin(step, {})
                if not checked:
                    xb = self._prepare_inputs(xb, "fit")
                    yb = self._prepare_targets(yb, st, "fit")
                else:
                    xb = [b if b.dtype == dt else np.asarray(b, _np_dtype(dt))
                          for b, dt in zip(xb, self._input_dtypes)]
                m_rows = len(xb[0])
                loss, means, outs, masks = self.train_step(st, xb, yb, sb)
                local_seen += m_rows
                if dist is not None:
                    if dist.stop_now:  # some rank asked to stop: no rank applied this step
                        self.stop_training = True
                        break
                    m_rows = dist.rows  # the loss is the global batch's
                loss_sum += loss * m_rows
                out_sums = [a * m_rows for a in means] if out_sums is None else [
                    s + a * m_rows for s, a in zip(out_sums, means)]
                seen += m_rows
                self._update_metrics(st.metrics, yb, outs, masks)
                logs = self._logs(st, loss_sum / seen, [s / seen for s in out_sums])
                cbl.on_train_batch_end(step, logs)
                if steps is None or steps < step + 1:
                    bar.target = step + 1
                bar.update(step + 1, logs)
                if self.stop_training:
                    if dist is None:
                        break
                    dist.request_stop()  # every rank stops after the next allreduce
            data.on_epoch_end()
            if step < 0:
                raise ValueError("fit: the data gave no batch")
            if dist is not None:  # metrics averaged over the ranks, weighted by their rows
                logs = dist.epoch_logs(logs, st, local_seen)
            if val is not None and _validate_now(epoch, validation_freq):
                vals = self._evaluate_adapter(val, st, cbl, "fit validation_data")
                if dist is not None:
                    vals = dist.average_logs(vals, self._eval_seen)
                logs.update({f"val_{k}": v for k, v in vals.items()})
            bar.update(step + 1, logs, finalize=True)
            cbl.on_epoch_end(epoch, logs)
            if dist is not None:  # EarlyStopping & co. decide for every rank together
                self.stop_training = dist.any(self.stop_training)
            if self.stop_training:
                break
        cbl.on_train_end(logs)
        history.params = {"verbose": verbose, "epochs": epochs, "steps": steps}
        history.model = self
        return history

    def _check_array_input(self, a, k, where):
        t = self.inputs[k]
        if a.ndim == 1 and len(t.shape) == 2 and t.shape[1] == 1:
            a = a.reshape(-1, 1)
        if a.ndim != len(t.shape) or any(
                d is not None and d != e for d, e in zip(t.shape[1:], a.shape[1:])):
            first = self._first_layer_name(k)
            raise ValueError(
                f"{where}: model {self.name!r} expects input of shape {_fmt(t.shape)}"
                f"{first}, got data of shape {a.shape}")
        return a

    def _first_layer_name(self, k):
        t = self.inputs[k]
        for step in self._steps:
            if self._in_slots[k] in step[1]:
                return f" (first layer {step[0].name!r})"
        return f" (input {t.name!r})"

    @staticmethod
    def _logs(st, loss, out_means):
        logs = {"loss": loss}
        if len(st.losses) > 1:
            k = 0
            for name, lo, _ in st.losses:
                if lo is not None:
                    logs[f"{name}_loss"] = out_means[k]
                    k += 1
        for _, m, label in st.metrics:
            logs[label] = _scalar(m.result())
        return logs

    # ---- evaluate -----------------------------------------------------------------------------
    def _evaluate_adapter(self, data, st, cbl, where, bar=None):
        from .. import metrics as metrics_module

        ms = []
        for k, m, label in st.metrics:
            fresh = _copy_metric(m) if isinstance(m, metrics_module.Metric) else m
            fresh.reset_state()
            ms.append((k, fresh, label))
        est = _State()
        for f in _State.__slots__:
            setattr(est, f, getattr(st, f, None))
        est.metrics = ms
        cbl.on_test_begin({})
        loss_sum, out_sums, seen = 0.0, None, 0
        logs = {}
        for step, (xb, yb, sb) in enumerate(data.epoch()):
            cbl.on_test_batch_begin(step, {})
            xb = self._prepare_inputs(xb, where)
            yb = self._prepare_targets(yb, est, where)
            loss, means, outs, masks = self.test_step(est, xb, yb, sb)
            m_rows = len(xb[0])
            loss_sum += loss * m_rows
            out_sums = [a * m_rows for a in means] if out_sums is None else [
                s + a * m_rows for s, a in zip(out_sums, means)]
            seen += m_rows
            self._update_metrics(ms, yb, outs, masks)
            logs = self._logs(est, loss_sum / seen, [s / seen for s in out_sums])
            cbl.on_test_batch_end(step, logs)
            if bar is not None:
                bar.target = max(bar.target, step + 1)
                bar.update(step + 1, logs)
        if seen == 0:
            raise ValueError(f"{where}: no samples to evaluate on")
        self._eval_seen = seen
        reg = self.regularization_loss() if est.has_reg else 0.0
        logs["loss"] = loss_sum / seen + reg
        cbl.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False, **kwargs):
        """[loss, *metrics] over (x, y) (a scalar loss when compiled without metrics)."""
        self._require_compiled("evaluate")
        verbose = _resolve_verbose(verbose)
        batch_size = _batch_size(batch_size)
        data = self._adapter(x, y, sample_weight, batch_size, _steps(steps, "steps"), False,
                             "evaluate")
        if hasattr(data, "n"):
            if data.n == 0:
                raise ValueError("evaluate: no samples to evaluate on (x has 0 rows)")
            if data.ys is None:
                raise ValueError("evaluate: targets y are required")
        st = self._state(None if not hasattr(data, "ys") else [a.shape for a in data.ys])
        if hasattr(data, "xs"):
            data.xs = [self._check_array_input(a, k, "evaluate") for k, a in enumerate(data.xs)]
            for (name, loss, _), yy in zip(st.losses, self._prepare_targets(
                    data.ys, st, "evaluate")):
                pass
        cbl = callbacks_module.CallbackList(callbacks, model=self, verbose=verbose,
                                            steps=data.steps)
        bar = Progbar(data.steps or 1, verbose)
        logs = self._evaluate_adapter(data, st, cbl, "evaluate", bar)
        bar.update(bar.target, logs, finalize=True)
        if return_dict:
            return dict(logs)
        vals = [logs[k] for k in st.names]
        return vals if len(vals) > 1 else vals[0]

    # ---- predict ------------------------------------------------------------------------------
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Model outputs for x, in batches. Keeps no state on the layers: safe to call from
        several threads at once (kernels release the GIL); memory does not grow across calls."""
        batch_size = _batch_size(batch_size)
        verbose = _resolve_verbose(verbose)
        if (type(x) is np.ndarray and self.built and len(self.inputs) == 1 and not verbose
                and callbacks is None and steps is None and 0 < len(x) <= batch_size):
            # One batch of one array (single-sample latency): straight to the graph, with the
            # input checks done once per model (same checks as the general path).
            spec = getattr(self, "_predict_spec", None)
            if spec is None or spec[0] is not self.inputs[0]:
                t = self.inputs[0]
                spec = self._predict_spec = (t, len(t.shape), t.shape[1:],
                                             _np_dtype(self._input_dtypes[0]))
            _, ndim, dims, dt = spec
            if x.ndim == ndim and x.dtype.kind in "biuf" and all(
                    w is None or w == d for w, d in zip(dims, x.shape[1:])):
                xx = x if (x.dtype == dt and x.flags.c_contiguous) else np.ascontiguousarray(
                    x, dtype=dt)
                outs = [o.copy() if np.may_share_memory(o, x) else o
                        for o in self._run([xx])[0]]
                return self._pack_outputs(outs)
        data = self._adapter(x, None, None, batch_size, _steps(steps, "steps"), False,
                             "predict")
        if hasattr(data, "xs"):
            data.xs = [self._check_array_input(a, k, "predict") for k, a in enumerate(data.xs)]
        cbl = callbacks_module.CallbackList(callbacks, model=self, verbose=verbose,
                                            steps=data.steps) if callbacks else None
        bar = Progbar(data.steps or 1, verbose) if verbose else None
        n = getattr(data, "n", None)
        outs_all = None
        chunks = None
        if cbl is not None:
            cbl.on_predict_begin({})
        lo = 0
        step = -1
        for step, (xb, _, _) in enumerate(data.epoch()):
            if cbl is not None:
                cbl.on_predict_batch_begin(step, {})
            xb = self._prepare_inputs(xb, "predict")
            outs = self.predict_step(xb)
            m = len(xb[0])
            if n is not None:
                if outs_all is None:
                    outs_all = [np.empty((n,) + o.shape[1:], o.dtype) for o in outs]
                for buf, o in zip(outs_all, outs):
                    buf[lo:lo + m] = o
            else:
                chunks = [[o] for o in outs] if chunks is None else [
                    c + [o] for c, o in zip(chunks, outs)]
            lo += m
            if cbl is not None:
                cbl.on_predict_batch_end(step, {"outputs": outs})
            if bar is not None:
                bar.target = max(bar.target, step + 1)
                bar.update(step + 1)
        if outs_all is None:
            if chunks is not None:
                outs_all = [np.concatenate(c) for c in chunks]
            else:
                outs_all = [np.empty((0,) + tuple(d or 0 for d in t.shape[1:]), np.float32)
                            for t in self.outputs]
        if bar is not None and step >= 0:
            bar.update(bar.target, finalize=True)
        if cbl is not None:
            cbl.on_predict_end({})
        return self._pack_outputs(outs_all)

    def _pack_outputs(self, flat):
        struct = self._outputs_struct
        if isinstance(struct, dict):
            return dict(zip(struct, flat))
        if isinstance(struct, list):
            return list(flat)
        return flat[0]

    def __call__(self, inputs, training=None, **kwargs):
        from ..layers.node import is_symbolic

        if is_symbolic(inputs):
            return self._call_symbolic(inputs, **kwargs)
        xs, _ = self._inputs_targets(inputs, None, "call")
        xs = self._prepare_inputs(xs, "call")
        outs, _, _ = self._run(xs, training=bool(training), need_ctx=False)
        return self._pack_outputs(outs)

    # ---- single batches -----------------------------------------------------------------------
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):
        """One optimizer step on one batch; returns the batch loss (with regularization), or
        [loss, *metrics] when compiled with metrics."""
        self._require_compiled("train_on_batch")
        xs, ys = self._inputs_targets(x, y, "train_on_batch")
        if ys is None:
            raise ValueError("train_on_batch: targets y are required")
        if len(xs[0]) == 0:
            raise ValueError("train_on_batch: the batch is empty (0 samples)")
        st = self._state([np.shape(a) for a in ys])
        xs = self._prepare_inputs(xs, "train_on_batch")
        ys = self._prepare_targets(ys, st, "train_on_batch")
        sw = None if sample_weight is None else np.asarray(sample_weight, np.float32)
        if class_weight is not None:
            from .data_adapters import class_weights_to_sample_weights

            sw = class_weights_to_sample_weights(class_weight, ys, sw, "train_on_batch")
        loss, means, outs, masks = self.train_step(st, xs, ys, sw)
        for _, m, _ in st.metrics:
            m.reset_state()
        self._update_metrics(st.metrics, ys, outs, masks)
        logs = self._logs(st, loss, means)
        if return_dict:
            return logs
        vals = [logs[k] for k in st.names]
        return vals if len(vals) > 1 else vals[0]

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._require_compiled("test_on_batch")
        return self.evaluate(x, y, batch_size=max(1, len(np.asarray(
            x if not isinstance(x, (list, dict)) else (list(x.values()) if isinstance(x, dict)
                                                         else x)[0]))),
                             verbose=0, sample_weight=sample_weight, return_dict=return_dict)

    def predict_on_batch(self, x):
        xs, _ = self._inputs_targets(x, None, "predict_on_batch")
        xs = self._prepare_inputs(xs, "predict_on_batch")
        return self._pack_outputs(self.predict_step(xs))


def _np_dtype(name):
    return np.dtype(object) if name == "string" else np.dtype(name)


def _validate_now(epoch, freq):
    if isinstance(freq, int) and not isinstance(freq, bool):
        if freq < 1:
            raise ValueError(f"validation_freq must be >= 1, got {freq}")
        return (epoch + 1) % freq == 0
    return (epoch + 1) in freq


def _copy_metric(m):
    import copy

    # deep: a user Metric's state lives in its variables, which a shallow copy would share
    c = copy.deepcopy(m)
    c.reset_state()
    return c


def _scalar(v):
    """A metric result as a Python float (a user metric may return an array or variable)."""
    if isinstance(v, float):
        return v
    a = np.asarray(v)
    return float(a) if a.size == 1 else a


def _added_losses():
    from ..ops._graph import collect_losses

    return collect_losses()


def flatten_metrics(spec):
    if isinstance(spec, dict):
        out = []
        for v in spec.values():
            out.extend(flatten_metrics(v))
        return out
    if isinstance(spec, (list, tuple)):
        out = []
        for v in spec:
            out.extend(flatten_metrics(v) if isinstance(v, (list, tuple, dict)) else [v])
        return out
    return [] if spec is None else [spec]


def _fmt(shape):
    from ..layers.node import fmt_shape

    return fmt_shape(shape)


__all__ = ["Trainer", "IteratorAdapter"]
