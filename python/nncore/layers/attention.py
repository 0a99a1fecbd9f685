"""Attention layers: MultiHeadAttention (Keras's dot-product attention over the sequence axis)
and Attention (Luong, after it).

Shapes (B batch, T query length, S key/value length, H heads, Dk key_dim, Dv value_dim):
  Q = (query @ Wq + bq) / sqrt(Dk)   (B,T,H,Dk)     Wq (Eq, H, Dk) as Keras's query/kernel
  K =  key   @ Wk + bk               (B,S,H,Dk)     Wk (Ek, H, Dk)
  V =  value @ Wv + bv               (B,S,H,Dv)     Wv (Ev, H, Dv)
  L[b,h,t,s] = Q[b,t,h] . K[b,s,h];  P = softmax_s(where(mask, L, -1e9)) * mask
  O[b,t,h] = sum_s dropout(P)[b,h,t,s] V[b,s,h]                   (B,T,H,Dv)
  y = O @ Wo + bo                                                 Wo (H, Dv, *output_shape)
The mask (B,T,S) is Keras's: the query's Keras mask on t, the value's (and key's) on s, the
attention_mask and the causal mask, and-ed. A query row with every position masked gives P = 0
when the scores are returned or dropped out (Keras's Softmax layer) and 1/S otherwise (Keras's
fused dot_product_attention path), as Keras. The projections are one GEMM each; the score and
mixing products are one GEMM per (batch, head) on nncore's kernel, so the results do not depend
on the thread count.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _core
from ..kernels import gemm as _gemm
from ..utils.random import get_rng
from .base import (
    BUILD_LOCK,
    Layer,
    as_f32,
    check_initializer,
    check_regularizer,
    fmt_shape,
    is_symbolic,
    positive_int,
)

_NEG = np.float32(-1e9)  # Keras's large negative number for float32 masked scores


def _bmm(a, b, trans_a=False, trans_b=False):
    """Batched op(a) @ op(b) over the leading axis: a (N, m, k), b (N, k, n), float32
    C-contiguous."""
    m = a.shape[2] if trans_a else a.shape[1]
    n = b.shape[1] if trans_b else b.shape[2]
    out = np.empty((a.shape[0], m, n), np.float32)
    for i in range(a.shape[0]):
        _core.sgemm(out[i], a[i], b[i], trans_a, trans_b, 1.0, 0.0, None, False)
    return out


def _heads(x2, batch, length, heads, dim):
    """(B*L, H*D) -> (B*H, L, D), C-contiguous."""
    return np.ascontiguousarray(
        x2.reshape(batch, length, heads, dim).transpose(0, 2, 1, 3)).reshape(-1, length, dim)


def _unheads(x, batch, length, heads, dim):
    """(B*H, L, D) -> (B*L, H*D), C-contiguous."""
    return np.ascontiguousarray(
        x.reshape(batch, heads, length, dim).transpose(0, 2, 1, 3)).reshape(-1, heads * dim)


class MultiHeadAttention(Layer):
    """Keras's MultiHeadAttention on (batch, seq, features) inputs:
    ``mha(query, value, key=None, attention_mask=None, return_attention_scores=False,
    training=None, use_causal_mask=False)``. Weights in Keras's order and shapes: query/kernel
    (Eq, H, Dk), query/bias (H, Dk), key/..., value/... (Ev, H, Dv), attention_output/kernel
    (H, Dv, *output_shape), attention_output/bias (output_shape)."""

    supports_masking = True
    _consumes_mask = True

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
                 output_shape=None, attention_axes=None, flash_attention=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, seed=None, call_args=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_heads = positive_int(num_heads, "num_heads", self.name)
        self.key_dim = positive_int(key_dim, "key_dim", self.name)
        self.value_dim = self.key_dim if not value_dim else positive_int(
            value_dim, "value_dim", self.name)
        if isinstance(dropout, (bool, np.bool_)) or not isinstance(
                dropout, (int, float, np.integer, np.floating)) or not 0 <= dropout < 1:
            raise ValueError(f"{self.name}: dropout must be a number in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        if output_shape:
            if isinstance(output_shape, (int, np.integer)):
                output_shape = (output_shape,)
            try:
                output_shape = tuple(positive_int(d, "output_shape", self.name)
                                     for d in output_shape)
            except TypeError:
                raise ValueError(f"{self.name}: output_shape must be an int or a tuple of ints, "
                                 f"got {output_shape!r}") from None
        self._output_shape = output_shape or None
        if attention_axes is not None:
            raise ValueError(f"{self.name}: attention_axes other than None are not supported "
                             f"(got {attention_axes!r}); attention runs over the sequence axis "
                             "of (batch, seq, features) inputs")
        self.attention_axes = None
        if flash_attention:
            raise ValueError(f"{self.name}: flash_attention is not supported")
        for nm, v in (("activity_regularizer", activity_regularizer),
                      ("kernel_constraint", kernel_constraint),
                      ("bias_constraint", bias_constraint)):
            if v is not None:
                raise ValueError(f"{self.name}: {nm} is not supported")
        self.kernel_initializer = check_initializer(kernel_initializer)
        self.bias_initializer = check_initializer(bias_initializer)
        self.kernel_regularizer = check_regularizer(kernel_regularizer)
        self.bias_regularizer = check_regularizer(bias_regularizer)
        if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(
                seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"{self.name}: seed must be an int >= 0 or None, got {seed!r}")
        self.seed = None if seed is None else int(seed)
        self._rng = None if seed is None else np.random.default_rng(self.seed)
        self._scale = 1.0 / math.sqrt(float(self.key_dim))
        # How the graph calls this layer: its node's inputs are [query, value, (key),
        # (attention_mask)] and the flags are the call's. A layer keeps one such signature
        # (set by its first symbolic call); calling it in a graph with other ones is refused.
        self._call_sig = None
        self._shape_sig = None  # only while an eager call builds the layer
        if call_args is not None:
            self._call_sig = self._sig_from_config(call_args)

    # ---- calling ------------------------------------------------------------------------------
    _SIG_KEYS = ("key", "attention_mask", "use_causal_mask", "return_attention_scores")

    def _sig_from_config(self, cfg):
        if not isinstance(cfg, dict) or set(cfg) - set(self._SIG_KEYS):
            raise ValueError(f"{self.name}: call_args must be a dict with keys among "
                             f"{list(self._SIG_KEYS)}, got {cfg!r}")
        return tuple(bool(cfg.get(k, False)) for k in self._SIG_KEYS)

    def __call__(self, query, value=None, key=None, query_mask=None, value_mask=None,
                 key_mask=None, attention_mask=None, return_attention_scores=False,
                 training=None, use_causal_mask=False, mask=None):
        if value is None:
            if not isinstance(query, (list, tuple)):
                raise TypeError(f"layer {self.name!r} (MultiHeadAttention): call it as "
                                "mha(query, value, key=None, attention_mask=None, ...)")
            # A graph rebuilt from a file: the node's inputs, with the stored signature.
            parts = list(query)
            sig = self._call_sig or (len(parts) > 2, False, False, False)
            want = 2 + sig[0] + sig[1]
            if len(parts) != want:
                raise ValueError(f"layer {self.name!r} (MultiHeadAttention): expected {want} "
                                 f"inputs for its call signature, got {len(parts)}")
            query, value = parts[0], parts[1]
            key = parts[2] if sig[0] else None
            attention_mask = parts[2 + sig[0]] if sig[1] else None
            use_causal_mask, return_attention_scores = sig[2], sig[3]
        sig = (key is not None, attention_mask is not None, bool(use_causal_mask),
               bool(return_attention_scores))
        parts = [query, value] + ([key] if sig[0] else []) + (
            [attention_mask] if sig[1] else [])
        if any(is_symbolic(p) for p in parts):
            if self._call_sig is not None and self._call_sig != sig and self._inbound_nodes:
                raise ValueError(
                    f"layer {self.name!r} (MultiHeadAttention): every call in a graph must pass "
                    f"the same key/attention_mask/use_causal_mask/return_attention_scores "
                    f"(first call: {self._sig_dict(self._call_sig)}, this one: "
                    f"{self._sig_dict(sig)})")
            self._call_sig = sig
            return Layer.__call__(self, parts)
        if any(m is not None for m in (query_mask, value_mask, key_mask, mask)):
            m = mask if isinstance(mask, (list, tuple)) else [mask]
            masks = [query_mask if query_mask is not None else (m[0] if len(m) > 0 else None),
                     value_mask if value_mask is not None else (m[1] if len(m) > 1 else None),
                     key_mask]
        else:
            masks = None
        arrays = [np.asarray(p) for p in parts]
        if not self.built:
            # Built for [query, value, key or value] whatever the stored graph signature.
            with BUILD_LOCK:
                self._shape_sig = (True, False, False, False)
                try:
                    self._maybe_build([tuple(a.shape) for a in arrays[:2]] +
                                      [tuple(arrays[2 if sig[0] else 1].shape)])
                finally:
                    self._shape_sig = None
        out, _ = self._forward_sig(arrays, sig, bool(training), False, masks)
        return out

    def _sig_dict(self, sig):
        return dict(zip(self._SIG_KEYS, sig))

    # ---- shapes and weights -------------------------------------------------------------------
    def _split_shapes(self, input_shape):
        shapes = list(input_shape) if isinstance(input_shape, list) else [input_shape]
        sig = self._shape_sig or self._call_sig or (len(shapes) > 2, False, False, False)
        q, v = shapes[0], shapes[1] if len(shapes) > 1 else None
        k = shapes[2] if sig[0] and len(shapes) > 2 else v
        return q, v, k

    def check_input_shape(self, input_shape):
        where = f"layer {self.name!r} (MultiHeadAttention)"
        if not isinstance(input_shape, list) or len(input_shape) < 2:
            raise ValueError(f"{where} takes query and value, got one input of shape "
                             f"{fmt_shape(input_shape) if input_shape is not None else None}")
        q, v, k = self._split_shapes(input_shape)
        for nm, s in (("query", q), ("value", v), ("key", k)):
            if len(s) != 3 or s[-1] is None:
                raise ValueError(f"{where}: {nm} must have shape (batch, seq, features), got "
                                 f"{fmt_shape(s)}")
        if k[1] is not None and v[1] is not None and k[1] != v[1]:
            raise ValueError(f"{where}: key and value must have the same sequence length, got "
                             f"key {fmt_shape(k)} and value {fmt_shape(v)}")
        for nm, s in (("query", q), ("value", v)):
            if s[0] is not None and q[0] is not None and s[0] != q[0]:
                raise ValueError(f"{where}: query {fmt_shape(q)} and {nm} {fmt_shape(s)} have "
                                 "different batch sizes")

    def _out_dims(self, q_shape):
        return self._output_shape or (q_shape[-1],)

    def weight_specs(self, input_shape):
        q, v, k = self._split_shapes(input_shape)
        h, dk, dv = self.num_heads, self.key_dim, self.value_dim
        ki, bi, kr, br = (self.kernel_initializer, self.bias_initializer,
                          self.kernel_regularizer, self.bias_regularizer)
        specs = []
        for nm, e, d in (("query", q[-1], dk), ("key", k[-1], dk), ("value", v[-1], dv)):
            specs.append((f"{nm}/kernel", (e, h, d), ki, kr))
            if self.use_bias:
                specs.append((f"{nm}/bias", (h, d), bi, br))
        od = self._out_dims(q)
        specs.append(("attention_output/kernel", (h, dv) + tuple(od), ki, kr))
        if self.use_bias:
            specs.append(("attention_output/bias", tuple(od), bi, br))
        return specs

    def compute_output_shape(self, input_shape):
        q, _, _ = self._split_shapes(input_shape)
        out = tuple(q[:-1]) + tuple(self._out_dims(q))
        if self._call_sig is not None and self._call_sig[3]:
            v = self._split_shapes(input_shape)[1]
            return [out, (q[0], self.num_heads, q[1], v[1])]
        return out

    def compute_mask(self, inputs, mask=None):
        qm = mask[0] if isinstance(mask, (list, tuple)) and mask else None
        if self._call_sig is not None and self._call_sig[3]:
            return None if qm is None else [qm, None]
        return qm

    # ---- computation --------------------------------------------------------------------------
    def forward(self, inputs, training=False, need_ctx=False, mask=None):
        sig = self._call_sig or (len(inputs) > 2, False, False, False)
        masks = None
        if mask is not None:
            mask = list(mask)
            masks = [mask[0], mask[1], mask[2] if sig[0] and len(mask) > 2 else None]
        return self._forward_sig(inputs, sig, training, need_ctx, masks)

    def _attention_mask(self, sig, parts, masks, b, t, s):
        """The (B,T,S) boolean mask of this call, or None."""
        m = None
        if masks is not None:
            qm, vm, km = masks
            if qm is not None:
                m = np.asarray(qm).astype(bool).reshape(b, t, 1)
            for x in (vm, km):
                if x is not None:
                    x = np.asarray(x).astype(bool).reshape(b, 1, s)
                    m = x if m is None else m & x
        if sig[2]:
            c = np.tri(t, s, dtype=bool)[None]
            m = c if m is None else m & c
        if sig[1]:
            am = np.asarray(parts[2 + sig[0]])
            try:
                am = np.broadcast_to(am.astype(bool), (b, t, s))
            except ValueError:
                raise ValueError(f"layer {self.name!r} (MultiHeadAttention): attention_mask of "
                                 f"shape {am.shape} does not broadcast to (batch, T, S) = "
                                 f"({b}, {t}, {s})") from None
            m = am if m is None else am & m
        return None if m is None else np.broadcast_to(m, (b, t, s))

    def _project(self, x, i_w, heads, dim):
        """x (B, L, E) -> (B*L, H*D): x2 @ W + b, W one of the (E, H, D) kernels."""
        x2 = as_f32(x).reshape(-1, x.shape[-1])
        w = self._weights[i_w]
        bias = self._weights[i_w + 1].reshape(-1) if self.use_bias else None
        out = np.empty((x2.shape[0], heads * dim), np.float32)
        _core.sgemm(out, x2, w.reshape(w.shape[0], -1), False, False, 1.0, 0.0, bias, False)
        return x2, out

    def _forward_sig(self, parts, sig, training, need_ctx, masks):
        q, v = parts[0], parts[1]
        k = parts[2] if sig[0] else v
        if q.ndim != 3 or v.ndim != 3 or k.ndim != 3:
            with BUILD_LOCK:
                self._shape_sig = (True, False, False, False)
                try:
                    self.check_input_shape([tuple(q.shape), tuple(v.shape), tuple(k.shape)])
                finally:
                    self._shape_sig = None
        b, t, s = q.shape[0], q.shape[1], v.shape[1]
        if k.shape[:2] != v.shape[:2] or v.shape[0] != b:
            raise ValueError(f"layer {self.name!r} (MultiHeadAttention): query "
                             f"{fmt_shape(q.shape)}, key {fmt_shape(k.shape)} and value "
                             f"{fmt_shape(v.shape)} must share the batch size, and key and "
                             "value the sequence length")
        h, dk, dv = self.num_heads, self.key_dim, self.value_dim
        step = 2 if self.use_bias else 1
        q2, qp = self._project(q, 0, h, dk)
        k2, kp = self._project(k, step, h, dk)
        v2, vp = self._project(v, 2 * step, h, dv)
        qp *= np.float32(self._scale)
        qh = _heads(qp, b, t, h, dk)            # (B*H, T, Dk)
        kh = _heads(kp, b, s, h, dk)            # (B*H, S, Dk)
        vh = _heads(vp, b, s, h, dv)            # (B*H, S, Dv)
        logits = _bmm(qh, kh, trans_b=True)     # (B*H, T, S)
        m = self._attention_mask(sig, parts, masks, b, t, s)
        if m is not None:
            mh = np.broadcast_to(m[:, None], (b, h, t, s)).reshape(b * h, t, s)
            logits = np.where(mh, logits, _NEG)
        p = logits - logits.max(axis=-1, keepdims=True)
        np.exp(p, out=p)
        p /= p.sum(axis=-1, keepdims=True)
        dropping = training and self.dropout > 0.0
        mh_ctx = None
        if m is not None:
            mh_ctx = mh
            # Keras zeroes the rows with every position masked only where it computes the
            # scores explicitly (scores returned, or dropout in training); its fused
            # dot_product_attention path leaves them uniform (1/S). Both are followed here.
            if sig[3] or dropping:
                p *= mh
        keep = None
        pd = p
        if dropping:
            rng = self._rng if self._rng is not None else get_rng()
            keep = (rng.random(p.shape, dtype=np.float32) >= np.float32(self.dropout)).astype(
                np.float32) * np.float32(1.0 / (1.0 - self.dropout))
            pd = p * keep
        o = _unheads(_bmm(pd, vh), b, t, h, dv)  # (B*T, H*Dv)
        wo = self._weights[3 * step]
        od = wo.shape[2:]
        y = np.empty((b * t, math.prod(od)), np.float32)
        _core.sgemm(y, o, wo.reshape(h * dv, -1), False, False, 1.0, 0.0,
                    self._weights[3 * step + 1].reshape(-1) if self.use_bias else None, False)
        y = y.reshape((b, t) + tuple(od))
        ctx = None
        if need_ctx:
            ctx = (sig, q2, k2, v2, qh, kh, vh, p, keep, pd, o, (b, t, s),
                   [a.shape for a in parts], mh_ctx)
        if sig[3]:
            return [y, p.reshape(b, h, t, s)], ctx
        return y, ctx

    def _proj_backward(self, x2, d2, i_w, heads, dim, need_input_grad):
        """Weight gradients of one projection and d x2 (or None)."""
        w = self._weights[i_w]
        g, beta = self._grad_out(i_w)
        _gemm.matmul(x2, d2, out=g.reshape(x2.shape[1], -1), transpose_a=True, beta=beta)
        if self.use_bias:
            db = d2.sum(axis=0).reshape(heads, dim)
            self._add_grad(i_w + 1, db)
        if not need_input_grad:
            return None
        return _gemm.matmul(d2, w.reshape(w.shape[0], -1), transpose_b=True)

    def backward(self, ctx, dy, need_input_grad=True):
        sig, q2, k2, v2, qh, kh, vh, p, keep, pd, o, (b, t, s), shapes, mh = ctx
        h, dk, dv = self.num_heads, self.key_dim, self.value_dim
        step = 2 if self.use_bias else 1
        dscores = None
        if sig[3]:
            dy, dscores = dy
        dp = None
        if dy is not None:
            wo = self._weights[3 * step]
            dy2 = np.ascontiguousarray(dy, dtype=np.float32).reshape(b * t, -1)
            g, beta = self._grad_out(3 * step)
            _gemm.matmul(o, dy2, out=g.reshape(h * dv, -1), transpose_a=True, beta=beta)
            if self.use_bias:
                self._add_grad(3 * step + 1, dy2.sum(axis=0).reshape(wo.shape[2:]))
            do = _heads(_gemm.matmul(dy2, wo.reshape(h * dv, -1), transpose_b=True),
                        b, t, h, dv)             # (B*H, T, Dv)
            dvh = _bmm(pd, do, trans_a=True)     # (B*H, S, Dv)
            dp = _bmm(do, vh, trans_b=True)      # (B*H, T, S)
            if keep is not None:
                dp *= keep
        else:
            dvh = np.zeros_like(vh)
        if dscores is not None:
            ds = np.asarray(dscores, np.float32).reshape(b * h, t, s)
            dp = ds.copy() if dp is None else dp + ds
        if dp is None:
            dp = np.zeros_like(p)
        # softmax: dL = P (dP - sum_s P dP); a masked logit is a constant (no gradient).
        dl = p * (dp - (p * dp).sum(axis=-1, keepdims=True))
        if mh is not None:
            dl *= mh
        dqh = _bmm(dl, kh)                       # (B*H, T, Dk), d of the scaled Q
        dkh = _bmm(dl, qh, trans_a=True)         # (B*H, S, Dk)
        dq2 = _unheads(dqh, b, t, h, dk)
        dq2 *= np.float32(self._scale)
        dk2 = _unheads(dkh, b, s, h, dk)
        dv2 = _unheads(dvh, b, s, h, dv)
        dq = self._proj_backward(q2, dq2, 0, h, dk, need_input_grad)
        dk_ = self._proj_backward(k2, dk2, step, h, dk, need_input_grad)
        dv_ = self._proj_backward(v2, dv2, 2 * step, h, dv, need_input_grad)
        if not need_input_grad:
            return None
        dq = dq.reshape(shapes[0])
        dv_ = dv_.reshape(shapes[1])
        dk_ = dk_.reshape(shapes[2] if sig[0] else shapes[1])
        if not sig[0]:
            dv_ = dv_ + dk_
        out = [dq, dv_] + ([dk_] if sig[0] else []) + ([None] if sig[1] else [])
        return out

    def get_config(self):
        from .. import initializers, regularizers

        cfg = super().get_config()
        cfg.update(num_heads=self.num_heads, key_dim=self.key_dim, value_dim=self.value_dim,
                   dropout=self.dropout, use_bias=self.use_bias,
                   output_shape=None if self._output_shape is None else list(self._output_shape),
                   attention_axes=None,
                   kernel_initializer=initializers.serialize(self.kernel_initializer),
                   bias_initializer=initializers.serialize(self.bias_initializer),
                   kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                   bias_regularizer=regularizers.serialize(self.bias_regularizer),
                   seed=self.seed)
        if self._call_sig is not None and any(self._call_sig):
            cfg["call_args"] = self._sig_dict(self._call_sig)
        return cfg


class Attention(Layer):
    """Keras's Attention (Luong) on [query (B,Tq,D), value (B,Tv,Dv), key (B,Tv,D)]:
    scores 'dot' = scale * q k^T, 'concat' = c * sum_d tanh(scale * (q_i + k_j)) (scale and c
    are weights when use_scale / score_mode='concat', else 1); masked scores (value's mask,
    causal) get -1e9 added; W = softmax(scores); out = dropout(W) @ value, zero at masked
    queries. ``att([q, v], return_attention_scores=False, use_causal_mask=False)``."""

    supports_masking = True
    _consumes_mask = True

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None,
                 call_args=None, **kwargs):
        super().__init__(**kwargs)
        if score_mode not in ("dot", "concat"):
            raise ValueError(f"{self.name}: score_mode must be 'dot' or 'concat', got "
                             f"{score_mode!r}")
        if isinstance(dropout, (bool, np.bool_)) or not isinstance(
                dropout, (int, float, np.integer, np.floating)) or not 0 <= dropout < 1:
            raise ValueError(f"{self.name}: dropout must be a number in [0, 1), got {dropout!r}")
        if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(
                seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"{self.name}: seed must be an int >= 0 or None, got {seed!r}")
        self.use_scale = bool(use_scale)
        self.score_mode = score_mode
        self.dropout = float(dropout)
        self.seed = None if seed is None else int(seed)
        self._rng = None if seed is None else np.random.default_rng(self.seed)
        self._call_sig = (False, False)  # (return_attention_scores, use_causal_mask)
        self._loaded_sig = False
        if call_args is not None:
            # From a file: the graph rebuild calls the layer on [query, value] with no flags.
            self._loaded_sig = True
            if not isinstance(call_args, dict) or set(call_args) - {
                    "return_attention_scores", "use_causal_mask"}:
                raise ValueError(f"{self.name}: bad call_args {call_args!r}")
            self._call_sig = (bool(call_args.get("return_attention_scores", False)),
                              bool(call_args.get("use_causal_mask", False)))

    def __call__(self, inputs, mask=None, training=None, return_attention_scores=False,
                 use_causal_mask=False):
        sig = (bool(return_attention_scores), bool(use_causal_mask))
        if not isinstance(inputs, (list, tuple)) or not 2 <= len(inputs) <= 3:
            raise ValueError(f"layer {self.name!r} (Attention) must be called on a list "
                             "[query, value] or [query, value, key]")
        if is_symbolic(list(inputs)):
            if self._loaded_sig and not self._inbound_nodes and sig == (False, False):
                sig = self._call_sig
            if self._inbound_nodes and self._call_sig != sig:
                raise ValueError(f"layer {self.name!r} (Attention): every call in a graph must "
                                 "pass the same return_attention_scores/use_causal_mask")
            self._call_sig = sig
            return Layer.__call__(self, list(inputs))
        arrays = [np.asarray(x) for x in inputs]
        self._maybe_build([tuple(a.shape) for a in arrays])
        masks = None if mask is None else list(mask)
        out, _ = self._forward_sig(arrays, sig, bool(training), False, masks)
        return out

    def check_input_shape(self, input_shape):
        where = f"layer {self.name!r} (Attention)"
        if not isinstance(input_shape, list) or not 2 <= len(input_shape) <= 3:
            raise ValueError(f"{where} takes [query, value] or [query, value, key]")
        q, v = input_shape[0], input_shape[1]
        k = input_shape[2] if len(input_shape) > 2 else v
        for nm, s in (("query", q), ("value", v), ("key", k)):
            if len(s) != 3:
                raise ValueError(f"{where}: {nm} must have shape (batch, steps, features), got "
                                 f"{fmt_shape(s)}")
        if q[-1] != k[-1] or k[1] != v[1]:
            raise ValueError(f"{where}: query {fmt_shape(q)} and key {fmt_shape(k)} must have "
                             f"the same features, key and value {fmt_shape(v)} the same steps")

    def weight_specs(self, input_shape):
        specs = []
        if self.use_scale:
            specs.append(("scale", (), "ones", None))
        if self.score_mode == "concat":
            specs.append(("concat_score_weight", (), "ones", None))
        return specs

    def compute_output_shape(self, input_shape):
        q, v = input_shape[0], input_shape[1]
        out = tuple(q[:-1]) + (v[-1],)
        if self._call_sig[0]:
            k = input_shape[2] if len(input_shape) > 2 else v
            return [out, tuple(q[:-1]) + (k[1],)]
        return out

    def compute_mask(self, inputs, mask=None):
        qm = mask[0] if isinstance(mask, (list, tuple)) and mask else None
        if self._call_sig[0]:
            return None if qm is None else [qm, None]
        return qm

    def forward(self, inputs, training=False, need_ctx=False, mask=None):
        return self._forward_sig(inputs, self._call_sig, training, need_ctx,
                                 None if mask is None else list(mask))

    def _forward_sig(self, parts, sig, training, need_ctx, masks):
        q, v = as_f32(parts[0]), as_f32(parts[1])
        k = as_f32(parts[2]) if len(parts) > 2 else v
        self.check_input_shape([tuple(q.shape), tuple(v.shape), tuple(k.shape)])
        b, tq, tv = q.shape[0], q.shape[1], v.shape[1]
        i = 0
        scale = None
        if self.use_scale:
            scale, i = self._weights[0], 1
        u = t = None
        if self.score_mode == "dot":
            scores = _bmm(q, k, trans_b=True)            # (B, Tq, Tv)
            if scale is not None:
                scores *= scale
        else:
            u = q[:, :, None, :] + k[:, None, :, :]      # (B, Tq, Tv, D)
            t = np.tanh(u * scale if scale is not None else u)
            scores = self._weights[i] * t.sum(axis=-1)
        qm = vm = None
        if masks is not None:
            qm = masks[0] if len(masks) > 0 else None
            vm = masks[1] if len(masks) > 1 else None
        sm = None if vm is None else np.asarray(vm, bool).reshape(b, 1, tv)
        if sig[1]:
            c = np.tri(tq, tv, dtype=bool)[None]
            sm = c if sm is None else sm & c
        if sm is not None:
            scores = np.where(sm, scores, scores - np.float32(1e9))
        w = scores - scores.max(axis=-1, keepdims=True)
        np.exp(w, out=w)
        w /= w.sum(axis=-1, keepdims=True)
        w = w.astype(np.float32, copy=False)
        keep = None
        wd = w
        if training and self.dropout > 0.0:
            rng = self._rng if self._rng is not None else get_rng()
            keep = (rng.random(w.shape, dtype=np.float32) >= np.float32(self.dropout)).astype(
                np.float32) * np.float32(1.0 / (1.0 - self.dropout))
            wd = w * keep
        out = _bmm(np.ascontiguousarray(wd), v)          # (B, Tq, Dv)
        qmb = None
        if qm is not None:
            qmb = np.asarray(qm, bool).reshape(b, tq, 1)
            out = np.where(qmb, out, np.float32(0.0))
        ctx = (sig, q, k, v, len(parts) > 2, w, keep, wd, u, t, qmb) if need_ctx else None
        if sig[0]:
            return [out, w], ctx
        return out, ctx

    def backward(self, ctx, dy, need_input_grad=True):
        sig, q, k, v, has_key, w, keep, wd, u, t, qmb = ctx
        dscores = None
        if sig[0]:
            dy, dscores = dy
        if dy is None:
            dy = np.zeros((w.shape[0], w.shape[1], v.shape[2]), np.float32)
        dy = np.ascontiguousarray(dy, dtype=np.float32)
        if qmb is not None:
            dy = np.where(qmb, dy, np.float32(0.0))
        dv = _bmm(np.ascontiguousarray(wd), dy, trans_a=True)   # (B, Tv, Dv)
        dw = _bmm(dy, v, trans_b=True)                          # (B, Tq, Tv)
        if keep is not None:
            dw *= keep
        if dscores is not None:
            dw += np.asarray(dscores, np.float32)
        ds = w * (dw - (w * dw).sum(axis=-1, keepdims=True))
        i = 0
        scale = None
        if self.use_scale:
            scale, i = self._weights[0], 1
        if self.score_mode == "dot":
            if scale is not None:
                qk = _bmm(q, k, trans_b=True)
                self._add_grad(0, np.asarray(np.sum(ds * qk, dtype=np.float64), np.float32))
                ds = ds * scale
            dq = _bmm(np.ascontiguousarray(ds), k)
            dk = _bmm(np.ascontiguousarray(ds), q, trans_a=True)
        else:
            c = self._weights[i]
            self._add_grad(i, np.asarray(np.sum(ds * t.sum(axis=-1), dtype=np.float64),
                                         np.float32))
            du = (ds * c)[..., None] * (1.0 - t * t)             # d of tanh's argument
            if scale is not None:
                self._add_grad(0, np.asarray(np.sum(du * u, dtype=np.float64), np.float32))
                du = du * scale
            dq = du.sum(axis=2)
            dk = du.sum(axis=1)
        if not need_input_grad:
            return None
        if has_key:
            return [dq, dv, dk]
        return [dq, dv + dk]

    def get_config(self):
        cfg = super().get_config()
        cfg.update(use_scale=self.use_scale, score_mode=self.score_mode, dropout=self.dropout,
                   seed=self.seed)
        if any(self._call_sig):
            cfg["call_args"] = {"return_attention_scores": self._call_sig[0],
                                "use_causal_mask": self._call_sig[1]}
        return cfg
