"""Keras's own files: the Keras 3 ``.keras`` zip, the legacy HDF5 ``.h5`` (tf.keras 2.x and
Keras 3's legacy path) and ``.weights.h5`` weights files, read and written without TensorFlow.

Layouts (learnt from files Keras 3.x writes):
  .keras  an uncompressed zip of config.json (the model's serialized config, compile_config
          inside), metadata.json and model.weights.h5, whose datasets sit at
          ``layers/<snake class name, uniquified per container>/vars/<i>`` in Keras's
          ``model.layers`` order (RNNs under ``.../cell/vars``, nested models under
          ``.../layers/...``, a layer shared by two models only where it is first met);
          an adapted lookup's or TextVectorization's vocabulary in
          ``assets/<that path without /vars>/vocabulary.txt`` (TextVectorization: also under
          ``<path>/_lookup_layer``), a tf_idf layer's weights as the dataset ``idf_weights``.
  .h5     attributes ``model_config`` (JSON) and ``training_config``; group ``model_weights``
          (or the root, for a weights file) with ``layer_names``, and per layer a group with
          ``weight_names`` listing its datasets in weight order.

Conversion is table driven: ``KERAS_LAYERS`` maps a Keras class name to a ``LayerSpec`` (which
Keras config keys pass to nncore, which are accepted only at one value, where the variables sit
in the h5 file). A new nncore layer is one entry. Anything not in the table, an argument value
nncore cannot honour (a Lambda, an unregistered custom class, a ``module`` outside Keras) is a
ValueError naming it: never a silent approximation.

Safety as in native.py: JSON is data; classes come only from nncore's registry; the model is
rebuilt (every shape checked, the parameter count capped against the bytes the file holds) before
any weight is read; every dataset's shape and dtype are checked against the architecture before
its data is read; links other than hard links, external/virtual storage, filters, missing or
unexpected datasets are refused; zip members must be stored (not compressed) and fit in the file.
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
import time
import zipfile

import numpy as np

from .registry import custom_object_scope

H5PY_HINT = ('reading or writing Keras files (.keras, .h5) needs h5py: '
             'pip install "nncore[keras]"')
MAX_CONFIG_BYTES = 16 << 20
MAX_H5_OBJECTS = 1 << 16
MAX_H5_DEPTH = 64
MAX_FILE_BYTES = 4 << 30  # read into memory whole (h5py opens it from there)
KERAS_VERSION = "3.15.1"  # the Keras release whose layout this writes


class _Bad(ValueError):
    pass


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError(H5PY_HINT) from None
    return h5py


def snake_case(name: str) -> str:
    """Keras's naming.to_snake_case: 'MaxPooling2D' -> 'max_pooling2d', 'LSTM' -> 'lstm'."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


# ---- the per-layer table ----------------------------------------------------------------------
_ANY = object()  # "any value is accepted": the key does not change what nncore computes


class LayerSpec:
    """How one Keras layer class maps to nncore's.
    args:   Keras config keys passed to nncore's constructor (same names by design);
    fixed:  keys accepted only at the listed values (dropped), or _ANY (semantics-free);
    vars:   where the layer's variables sit under its h5 group ('vars' or 'cell/vars');
    to_keras: extra Keras config from an nncore layer (the args are written from get_config)."""

    def __init__(self, args=(), fixed=None, vars="vars", to_keras=None, from_keras=None,
                 nested=(), children=None, keras_vars=None, var_names=None, omit=(),
                 node_from_keras=None, node_to_keras=None, groups=None, build_config=None):
        self.omit = frozenset(omit)  # base keys Keras's class does not take (SpatialDropout)
        self.args = frozenset(args.split() if isinstance(args, str) else args)
        self.fixed = dict(fixed or {})
        self.vars = vars
        self.to_keras = to_keras
        self.from_keras = from_keras
        # Wrappers: config keys holding a whole layer entry (converted recursively), and
        # children(layer) -> [(h5 sub-group, inner layer)] in Keras's variable order.
        self.nested = frozenset(nested)
        self.children = children
        # keras_vars(layer) -> the layer's variables as Keras stores them (arrays, or _COUNT for
        # a variable Keras keeps and nncore does not); var_names: Keras's short variable names.
        self.keras_vars = keras_vars
        self.var_names = var_names  # a tuple, or a function of the layer
        # Layers called with arguments beyond one tensor (or list): node_from_keras(args,
        # kwargs, where) -> (tensor references, the layer's call_args) reads a Keras 3 node,
        # node_to_keras(layer, tensors) -> {"args", "kwargs"} writes one. groups(layer) ->
        # [(h5 sub-group, Keras's name for it, variables)] for a layer whose variables Keras
        # keeps in inner layers' groups; build_config(layer) -> Keras's build_config.
        self.node_from_keras = node_from_keras
        self.node_to_keras = node_to_keras
        self.groups = groups
        self.build_config = build_config


class _Count:
    """Normalization's int64 'count' variable: Keras keeps it only to read old files (adapt
    recomputes mean and variance from scratch). Written as 0; read as a checked integer scalar
    and dropped."""


_COUNT = _Count()


_NONE = (None,)
_WEIGHTED = {"kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer"}
_CONSTRAINTS = {"activity_regularizer": _NONE, "kernel_constraint": _NONE,
                "bias_constraint": _NONE}
# Weight constraints nncore applies (written and read as {"module": "keras.constraints", ...}).
_WCON = {"kernel_constraint", "bias_constraint"}
_NO_ACT_REG = {"activity_regularizer": _NONE}
_RNN_ARGS = {"units", "activation", "use_bias", "return_sequences", "recurrent_initializer",
             "recurrent_regularizer", "dropout", "recurrent_dropout", "seed", "go_backwards",
             "return_state", "recurrent_constraint"} | _WEIGHTED | _WCON
_RNN_FIXED = {**_NO_ACT_REG, "stateful": (False,),
              "unroll": _ANY, "zero_output_for_mask": _ANY, "implementation": _ANY,
              "time_major": (False,), "use_cudnn": _ANY}
_MERGE = LayerSpec()
_custom_names = threading.local()
_keras_orders = threading.local()  # model name -> layer names in the file's order


# ---- issue-11 layers (RNN options above; Lambda, ActivityRegularization) ----------------------
def _lambda_name(fn):
    """The registered name of a Keras-serialized function, or None (bytecode, anything else)."""
    if isinstance(fn, dict) and fn.get("class_name") == "function" and \
            fn.get("module") == "builtins" and isinstance(fn.get("config"), str):
        return fn["config"]
    return None


def _lambda_from_keras(cfg):
    cfg["function"] = _lambda_name(cfg["function"])
    return cfg


def _lambda_to_keras(layer):
    name = layer.get_config()["function"]
    return {"function": {"module": "builtins", "class_name": "function", "config": name,
                         "registered_name": "function"}}


_ISSUE11_LAYERS = {
    "Lambda": LayerSpec({"function", "arguments"}, {"output_shape": _NONE, "mask": _NONE},
                        from_keras=_lambda_from_keras, to_keras=_lambda_to_keras),
    "ActivityRegularization": LayerSpec({"l1", "l2"}),
    **{k: LayerSpec(a | {"seed"}, {"data_format": ("channels_last", None)}) for k, a in (
        ("RandomFlip", {"mode"}),
        ("RandomTranslation", {"height_factor", "width_factor", "fill_mode", "interpolation",
                               "fill_value"}),
        ("RandomRotation", {"factor", "fill_mode", "interpolation", "fill_value"}),
        ("RandomZoom", {"height_factor", "width_factor", "fill_mode", "interpolation",
                        "fill_value"}),
        ("RandomContrast", {"factor", "value_range"}),
        ("RandomBrightness", {"factor", "value_range"}))},
    "CategoryEncoding": LayerSpec({"num_tokens", "output_mode"}, {"sparse": (False,)}),
    "Hashing": LayerSpec({"num_bins", "mask_value", "salt", "output_mode"},
                         {"sparse": (False,)}, to_keras=lambda lay: _hashing_to_keras(lay)),
    "RandomCrop": LayerSpec({"height", "width", "seed"},
                            {"data_format": ("channels_last", None)}),
    "Discretization": LayerSpec({"bin_boundaries", "output_mode", "num_bins", "epsilon"},
                                {"sparse": (False,)}, omit={"trainable"}),
    **{k: LayerSpec({"max_tokens", "num_oov_indices", "mask_token", "oov_token", "vocabulary",
                     "invert", "output_mode", "vocabulary_dtype", "pad_to_max_tokens",
                     "idf_weights", "oov_method", "salt"},
                    {"sparse": (False,), "encoding": ("utf-8",), "vocabulary_size": _ANY},
                    to_keras=lambda lay: _vocab_to_keras(lay))
       for k in ("IntegerLookup", "StringLookup")},
    # Keras's TextVectorization holds a StringLookup as '_lookup_layer': its h5 groups and its
    # vocabulary asset sit under both the layer's path and '<path>/_lookup_layer'.
    "TextVectorization": LayerSpec(
        "max_tokens standardize split ngrams output_mode output_sequence_length "
        "pad_to_max_tokens vocabulary idf_weights",
        {"sparse": (False,), "ragged": (False,), "encoding": ("utf-8",),
         "vocabulary_size": _ANY}, to_keras=lambda lay: _vocab_to_keras(lay),
        children=lambda tv: [("_lookup_layer", tv._lookup)]),
}
_BASE_FIXED = {"autocast": _ANY, "activity_regularizer": _NONE}

KERAS_LAYERS: dict = {
    "Dense": LayerSpec({"units", "activation", "use_bias"} | _WEIGHTED | _WCON,
                       {**_NO_ACT_REG, "quantization_config": _NONE, "lora_rank": _NONE,
                        "lora_alpha": _ANY}),
    "Conv2D": LayerSpec({"filters", "kernel_size", "strides", "padding", "dilation_rate",
                         "activation", "use_bias", "data_format"} | _WEIGHTED | _WCON,
                        {**_NO_ACT_REG, "groups": (1,), "lora_rank": _NONE, "lora_alpha": _ANY}),
    "MaxPooling2D": LayerSpec({"pool_size", "strides", "padding"},
                              {"data_format": ("channels_last", None)}),
    "AveragePooling2D": LayerSpec({"pool_size", "strides", "padding"},
                                  {"data_format": ("channels_last", None)}),
    "Flatten": LayerSpec((), {"data_format": ("channels_last", None)}),
    "Reshape": LayerSpec({"target_shape"}),
    "Dropout": LayerSpec({"rate", "seed"}, {"noise_shape": _NONE}),
    "Activation": LayerSpec({"activation"}),
    "SimpleRNN": LayerSpec(_RNN_ARGS, _RNN_FIXED, vars="cell/vars"),
    "LSTM": LayerSpec(_RNN_ARGS | {"recurrent_activation", "unit_forget_bias"}, _RNN_FIXED,
                      vars="cell/vars"),
    "GRU": LayerSpec(_RNN_ARGS | {"recurrent_activation", "reset_after"}, _RNN_FIXED,
                     vars="cell/vars"),
    "Add": _MERGE, "Subtract": _MERGE, "Multiply": _MERGE, "Average": _MERGE,
    "Maximum": _MERGE, "Minimum": _MERGE,
    "Concatenate": LayerSpec({"axis"}),
    "Dot": LayerSpec({"axes", "normalize"}),
    **_ISSUE11_LAYERS,
}


# ---- the issue-11 layers ----------------------------------------------------------------------
def _norm_vars(layer):
    return [] if not layer.weights else [layer.weights[0], layer.weights[1], _COUNT]


def _wrapped(layer):
    return {"layer": _layer_to_keras(layer.layer)}


def _bidi(layer):
    return {"layer": _layer_to_keras(layer.forward_layer),
            "backward_layer": _layer_to_keras(layer.backward_layer)}


_CL = {"data_format": ("channels_last", None)}
_LORA = {"lora_rank": _NONE, "lora_alpha": _ANY}
_CONV_ARGS = "filters kernel_size strides padding dilation_rate activation use_bias " \
    "kernel_initializer bias_initializer kernel_regularizer bias_regularizer"
_POOL1 = LayerSpec("pool_size strides padding", _CL)
_GPOOL = LayerSpec("data_format keepdims")
_NOARGS = LayerSpec()
_DW = "depthwise_initializer depthwise_regularizer depth_multiplier"
KERAS_LAYERS.update({
    "Conv1D": LayerSpec(_CONV_ARGS + " data_format kernel_constraint bias_constraint",
                        {**_NO_ACT_REG, **_LORA, "groups": (1,)}),
    "Conv2DTranspose": LayerSpec(
        _CONV_ARGS + " output_padding data_format kernel_constraint bias_constraint",
        {**_NO_ACT_REG, **_LORA}),
    "DepthwiseConv2D": LayerSpec(
        "kernel_size strides padding dilation_rate activation use_bias bias_initializer "
        "bias_regularizer data_format depthwise_constraint bias_constraint " + _DW,
        {"activity_regularizer": _NONE, **_LORA}, var_names=("kernel", "bias")),
    "SeparableConv2D": LayerSpec(
        _CONV_ARGS.replace("kernel_initializer", "").replace("kernel_regularizer", "") +
        " data_format pointwise_initializer pointwise_regularizer depthwise_constraint "
        "pointwise_constraint bias_constraint " + _DW, {"activity_regularizer": _NONE}),
    "MaxPooling1D": _POOL1, "AveragePooling1D": _POOL1,
    "GlobalAveragePooling1D": _GPOOL, "GlobalAveragePooling2D": _GPOOL,
    "GlobalMaxPooling1D": _GPOOL, "GlobalMaxPooling2D": _GPOOL,
    "Embedding": LayerSpec("input_dim output_dim embeddings_initializer embeddings_regularizer "
                           "mask_zero embeddings_constraint",
                           {"activity_regularizer": _NONE, "input_length": _ANY,
                            "quantization_config": _NONE, **_LORA}),
    "BatchNormalization": LayerSpec(
        "axis momentum epsilon center scale beta_initializer gamma_initializer "
        "moving_mean_initializer moving_variance_initializer beta_regularizer gamma_regularizer "
        "synchronized beta_constraint gamma_constraint",
        {"renorm": (False,), "renorm_clipping": _NONE, "renorm_momentum": _ANY}),
    "LayerNormalization": LayerSpec(
        "axis epsilon center scale rms_scaling beta_initializer gamma_initializer "
        "beta_regularizer gamma_regularizer beta_constraint gamma_constraint"),
    "GroupNormalization": LayerSpec(
        "groups axis epsilon center scale beta_initializer gamma_initializer beta_regularizer "
        "gamma_regularizer beta_constraint gamma_constraint"),
    "UnitNormalization": LayerSpec("axis"),
    "ReLU": LayerSpec("max_value negative_slope threshold"),
    "LeakyReLU": LayerSpec("negative_slope"),
    "ELU": LayerSpec("alpha"),
    "PReLU": LayerSpec("alpha_initializer alpha_regularizer shared_axes",
                       {"alpha_constraint": _NONE}),
    "Softmax": LayerSpec("axis"),
    "Identity": _NOARGS,
    "RepeatVector": LayerSpec("n"),
    "Permute": LayerSpec("dims"),
    "UpSampling1D": LayerSpec("size"),
    "UpSampling2D": LayerSpec("size data_format interpolation"),
    "ZeroPadding1D": LayerSpec("padding", _CL),
    "ZeroPadding2D": LayerSpec("padding data_format"),
    "Cropping1D": LayerSpec("cropping"),
    "Cropping2D": LayerSpec("cropping data_format"),
    # Keras 3's SpatialDropout constructors take no 'trainable' (its get_config gives none).
    "SpatialDropout1D": LayerSpec("rate seed", omit=("trainable",)),
    "SpatialDropout2D": LayerSpec("rate seed", _CL, omit=("trainable",)),
    "GaussianNoise": LayerSpec("stddev seed"),
    "GaussianDropout": LayerSpec("rate seed"),
    "Masking": LayerSpec("mask_value"),
    "Rescaling": LayerSpec("scale offset"),
    "Normalization": LayerSpec("axis mean variance invert", keras_vars=_norm_vars,
                               var_names=("mean", "variance", "count")),
    "TimeDistributed": LayerSpec(nested=("layer",), to_keras=_wrapped,
                                 children=lambda w: [("layer", w.layer)]),
    "Bidirectional": LayerSpec("merge_mode", nested=("layer", "backward_layer"), to_keras=_bidi,
                               children=lambda w: [("forward_layer", w.forward_layer),
                                                   ("backward_layer", w.backward_layer)]),
})
# ---- attention: call arguments in the node, MultiHeadAttention's inner-layer groups -----------
# Keras 3 records mha(query, value, key=..., attention_mask=..., use_causal_mask=...,
# return_attention_scores=...) as a node {"args": [query, value], "kwargs": {...}} and
# att([q, v, k], use_causal_mask=..., return_attention_scores=...) as {"args": [[q, v, k]],
# "kwargs": {...}}; nncore keeps those flags as the layer's call_args and its node's inputs are
# [query, value, (key), (attention_mask)] (or [q, v, (k)]).
_MHA_SUBS = (("query", "query_dense"), ("key", "key_dense"), ("value", "value_dense"),
             ("attention_output", "output_dense"))
_FLAGS = ("use_causal_mask", "return_attention_scores")


def _flag(kwargs, key, where):
    v = kwargs.get(key, False)
    if not isinstance(v, bool):
        raise _Bad(f"{where}: {key} must be a bool in the node, got {v!r}")
    return v


def _no_training(kwargs, where):
    if kwargs.get("training") not in (None, False):
        raise _Bad(f"{where}: call argument training={kwargs['training']!r} is not supported "
                   "by nncore")


def _mha_node_from_keras(args, kwargs, where):
    names = ("query", "value", "key")
    if not 2 <= len(args) <= 3:
        raise _Bad(f"{where}: MultiHeadAttention is called as mha(query, value, key=None, ...); "
                   f"the node has {len(args)} positional argument(s)")
    call = dict(zip(names, args))
    for k, v in kwargs.items():
        if k in call:
            raise _Bad(f"{where}: {k} is given twice in the node")
        if k in ("key", "attention_mask"):
            if v is not None:
                call[k] = v
        elif k in ("query_mask", "value_mask", "key_mask"):
            if v is not None:
                raise _Bad(f"{where}: {k} passed explicitly is not supported; nncore takes the "
                           "query's, value's and key's masks from the layers that make them "
                           "(Embedding(mask_zero=True), Masking)")
        elif k not in _FLAGS + ("training",):
            raise _Bad(f"{where}: call argument {k!r} is not known to nncore's "
                       "MultiHeadAttention")
    _no_training(kwargs, where)
    refs = [_tensor_ref(call[k], where) for k in ("query", "value", "key", "attention_mask")
            if k in call]
    return refs, {"key": "key" in call, "attention_mask": "attention_mask" in call,
                  **{f: _flag(kwargs, f, where) for f in _FLAGS}}


def _att_node_from_keras(args, kwargs, where):
    if len(args) != 1 or not isinstance(args[0], list) or not 2 <= len(args[0]) <= 3:
        raise _Bad(f"{where}: Attention is called on one list [query, value] or [query, value, "
                   f"key], got {args!r:.200}")
    for k in kwargs:
        if k not in _FLAGS + ("training",):  # 'mask' was checked by the caller
            raise _Bad(f"{where}: call argument {k!r} is not known to nncore's Attention")
    _no_training(kwargs, where)
    return ([_tensor_ref(t, where) for t in args[0]],
            {f: _flag(kwargs, f, where) for f in _FLAGS})


def _mha_sig(layer, n_inputs):
    return layer._call_sig or (n_inputs > 2, False, False, False)


def _mha_node_to_keras(layer, ts):
    sig = _mha_sig(layer, len(ts))
    kw = {}
    if sig[0]:
        kw["key"] = ts[2]
    if sig[1]:
        kw["attention_mask"] = ts[2 + sig[0]]
    for f, on in zip(("use_causal_mask", "return_attention_scores"), sig[2:]):
        if on:
            kw[f] = True
    return {"args": ts[:2], "kwargs": kw}


def _att_node_to_keras(layer, ts):
    ret, causal = layer._call_sig
    kw = {}
    if causal:
        kw["use_causal_mask"] = True
    if ret:
        kw["return_attention_scores"] = True
    return {"args": [ts], "kwargs": kw}


def _mha_groups(layer):
    """Keras 3 keeps MultiHeadAttention's variables in its inner EinsumDense layers' groups
    (query_dense, key_dense, value_dense, output_dense: kernel, then bias), next to the empty
    groups of its Softmax and Dropout."""
    per = 2 if layer.use_bias else 1
    ws = list(layer.weights)
    out = [(sub, name, ws[i * per:(i + 1) * per]) for i, (name, sub) in enumerate(_MHA_SUBS)]
    return out + [("_softmax", "softmax", []), ("_dropout_layer", "dropout", [])]


def _mha_var_names(layer):
    return [f"{name}/{v}" for name, _ in _MHA_SUBS
            for v in (("kernel", "bias") if layer.use_bias else ("kernel",))]


def _mha_build_config(layer):
    """Keras's MultiHeadAttention builds from {'shapes_dict': {query_shape, value_shape,
    key_shape (when a key is passed)}}."""
    shapes = list(layer._build_shape)
    q, v, k = layer._split_shapes(shapes)
    d = {"query_shape": _shape_list(q), "value_shape": _shape_list(v)}
    if _mha_sig(layer, len(shapes))[0] or tuple(k) != tuple(v):
        d["key_shape"] = _shape_list(k)
    return {"shapes_dict": d}


_MHA_AXES = (None, [1], [-2], 1, -2)  # the sequence axis of (batch, seq, features)
KERAS_LAYERS.update({
    "MultiHeadAttention": LayerSpec(
        "num_heads key_dim value_dim dropout use_bias output_shape seed kernel_initializer "
        "bias_initializer kernel_regularizer bias_regularizer",
        {**_CONSTRAINTS, "use_gate": (False,), "attention_axes": _MHA_AXES,
         "sliding_window": _NONE, "flash_attention": _ANY},
        to_keras=lambda lay: {"use_gate": False, "attention_axes": [1], "sliding_window": None,
                              **{k: None for k in _CONSTRAINTS}},
        node_from_keras=_mha_node_from_keras, node_to_keras=_mha_node_to_keras,
        groups=_mha_groups, var_names=_mha_var_names, build_config=_mha_build_config),
    "Attention": LayerSpec("use_scale score_mode dropout seed",
                           node_from_keras=_att_node_from_keras, node_to_keras=_att_node_to_keras),
})
# Keras aliases that name the same nncore class.
_ALIASES = {"MaxPool2D": "MaxPooling2D", "AvgPool2D": "AveragePooling2D",
            "MaxPool1D": "MaxPooling1D", "AvgPool1D": "AveragePooling1D",
            "GlobalAvgPool1D": "GlobalAveragePooling1D", "GlobalAvgPool2D":
            "GlobalAveragePooling2D", "GlobalMaxPool1D": "GlobalMaxPooling1D",
            "GlobalMaxPool2D": "GlobalMaxPooling2D", "Convolution1D": "Conv1D",
            "Convolution2D": "Conv2D", "Convolution2DTranspose": "Conv2DTranspose",
            "SeparableConvolution2D": "SeparableConv2D"}
_MODELS = ("Functional", "Sequential", "Model")
# The modules Keras records for built-in objects; anything else is refused for a built-in name.
_KERAS_MODULES = {"keras", "keras.layers", "keras.models", "keras.src.models.functional",
                  "keras.src.models.sequential", "keras.src.models.model", "keras.initializers",
                  "keras.regularizers", "keras.optimizers", "keras.losses", "keras.metrics",
                  "keras.activations", "keras.constraints", None}
_INIT_EXTRA = {"input_axes": _NONE, "output_axes": _NONE}  # Keras 3.1x VarianceScaling keys


# ---- small checks -----------------------------------------------------------------------------
def _check_module(d, where):
    mod = d.get("module")
    if not (mod is None or isinstance(mod, str)) or mod not in _KERAS_MODULES:
        raise _Bad(f"{where}: 'module' {mod!r} is not one of Keras's modules; nothing is "
                   "imported from a file")


def _dtype_ok(v, names=("float32",)):
    if v is None or v in names:
        return True
    if isinstance(v, dict):
        return (v.get("class_name") in ("DTypePolicy", "Policy") and isinstance(
            v.get("config"), dict) and v["config"].get("name") in names)
    return False


# Layers whose integer outputs Keras types by an integer dtype policy (nncore's are int64).
_INT_OUTPUT = {"Hashing"}
_INT_DTYPES = ("int32", "int64")


def _hashing_to_keras(layer):
    if layer.output_mode != "int":
        return {}
    return {"dtype": {**_POLICY, "config": {"name": "int64"}}}


# ---- vocabularies: the .keras zip's assets/ ---------------------------------------------------
# Keras 3 writes an adapted lookup's vocabulary (special tokens first) to
# ``assets/<the layer's h5 path without /vars>/vocabulary.txt``, one token a line, and its
# config's 'vocabulary' is null; a tf_idf layer's weights are the dataset 'idf_weights' of its
# vars group (special and padding slots included). A vocabulary given in the config is used as is.
MAX_ASSET_BYTES = 64 << 20
MAX_VOCAB_TOKENS = 1 << 24
_writing_keras_zip = threading.local()  # set while save_keras writes: vocabularies go to assets


def _lookup_of(layer):
    """The lookup that holds a vocabulary layer's tokens (itself, or TextVectorization's), or
    None for any other layer."""
    from ..layers.categorical import _Lookup
    from ..layers.text import TextVectorization

    if isinstance(layer, TextVectorization):
        return layer._lookup
    return layer if isinstance(layer, _Lookup) else None


def _asset_text(look):
    """The vocabulary file Keras writes for `look`, or None when it must stay in the config:
    no tokens, or tokens Keras's reader would not give back (it splits the file with
    str.splitlines, which also breaks at \\r, \\v, \\f, \\x1c-\\x1e, \\x85, \\u2028-9, and drops
    trailing empty lines, so a last token '' would be lost); or a tf_idf layer padded to
    max_tokens beyond its tokens (Keras 3.15 refuses its own file then: idf longer than them)."""
    if not look._vocab:
        return None
    if look.output_mode == "tf_idf" and look.pad_to_max_tokens and \
            look.vocabulary_size() < look.max_tokens:
        return None
    toks = [str(v) for v in look.get_vocabulary(include_special_tokens=True)]
    if toks[-1] == "" or any(f"x{t}x".splitlines() != [f"x{t}x"] for t in toks):
        return None
    return "\n".join(toks).encode("utf-8")


def _vocab_to_keras(layer):
    if getattr(_writing_keras_zip, "value", False) and _asset_text(_lookup_of(layer)) is not None:
        return {"vocabulary": None, "idf_weights": None}  # in assets/ and the weights file
    return {}


def _vocab_units(model, class_names=None):
    """[(lookup, [asset dirs], [h5 vars groups])] for every vocabulary layer, Keras's paths."""
    units: dict = {}
    for gpath, layer, _ in keras_var_paths(model, class_names):
        look = _lookup_of(layer)
        if look is None or not gpath.endswith("/vars"):
            continue
        u = units.setdefault(id(look), (look, [], []))
        u[1].append(gpath[:-len("/vars")])
        u[2].append(gpath)
    return list(units.values())


def _vocab_assets(model):
    """{zip member: bytes} of the vocabularies save_keras writes."""
    out = {}
    for look, dirs, _ in _vocab_units(model):
        text = _asset_text(look)
        if text is not None:
            for d in dirs:
                out[f"assets/{d}/vocabulary.txt"] = text
    return out


def _idf_value(look):
    if look.idf_weights is not None:
        return np.asarray(look.idf_weights, np.float32)
    return np.zeros(len(look._specials()), np.float32)  # not adapted: Keras's initial value


def _parse_vocab(look, raw, member):
    if len(raw) > MAX_ASSET_BYTES:
        raise _Bad(f"{member}: larger than {MAX_ASSET_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _Bad(f"{member}: not UTF-8 text ({e})") from None
    # Keras 3.15: open(path, "r").read().splitlines(), then trailing empty lines dropped.
    lines = text.splitlines()
    while lines and lines[-1] == "":
        lines.pop()
    if len(lines) > MAX_VOCAB_TOKENS:
        raise _Bad(f"{member}: more than {MAX_VOCAB_TOKENS} tokens")
    if look._integer:
        if not all(re.fullmatch(r"-?[0-9]{1,19}", v) for v in lines):
            bad = next(v for v in lines if not re.fullmatch(r"-?[0-9]{1,19}", v))
            raise _Bad(f"{member}: {bad[:40]!r} is not an integer token")
        lines = [int(v) for v in lines]
    specials = look._specials()
    if lines[:len(specials)] == specials:  # Keras's set_vocabulary drops them when they lead
        lines = lines[len(specials):]
    return lines


def _read_vocab_assets(zf, assets, model, class_names):
    """Give every lookup whose vocabulary is in assets/ its tokens; every member must belong to
    a vocabulary layer of the model. True when a vocabulary was set."""
    units = _vocab_units(model, class_names)
    known = {f"assets/{d}/vocabulary.txt": look for look, dirs, _ in units for d in dirs}
    extra = sorted(n for n in assets if n not in known)
    if extra:
        raise _Bad(f"unexpected asset(s) {extra[:5]} (nncore reads the vocabulary files of "
                   "its lookup and TextVectorization layers only)")
    found = False
    for look, dirs, _ in units:
        members = [f"assets/{d}/vocabulary.txt" for d in dirs
                   if f"assets/{d}/vocabulary.txt" in assets]
        if not members:
            continue
        found = True
        raws = [zf.read(m) for m in members]
        if any(r != raws[0] for r in raws[1:]):
            raise _Bad(f"{members}: the copies of layer {look.name!r}'s vocabulary differ")
        if look._vocab:
            raise _Bad(f"{members[0]}: layer {look.name!r} has a vocabulary in its config "
                       "and another in assets/")
        tokens = _parse_vocab(look, raws[0], members[0])
        try:
            if look.output_mode == "tf_idf":  # the weights come from the h5 file
                look.set_vocabulary(tokens, np.zeros(len(tokens)))
                look._input_idf = None
            else:
                look.set_vocabulary(tokens)
        except ValueError as e:
            raise _Bad(f"{members[0]}: {e}") from None
    return found


def _idf_datasets(units):
    """{h5 path: lookup} of the idf_weights datasets Keras keeps for tf_idf layers."""
    return {f"{g}/idf_weights": look for look, _, groups in units
            if look.output_mode == "tf_idf" for g in groups}


def _read_idfs(h5py, datasets, units):
    staged: dict = {}
    for p, look in _idf_datasets(units).items():
        if p not in datasets:
            raise _Bad(f"missing dataset {p!r} (the tf_idf weights of {look.name!r})")
        out = np.empty((look._depth(),), np.float32)
        _read_dataset(h5py, datasets[p], p, out)
        prev = staged.get(id(look))
        if prev is not None and not np.array_equal(prev[1], out):
            raise _Bad(f"{p}: the copies of layer {look.name!r}'s idf weights differ")
        staged[id(look)] = (look, out)
    for look, w in staged.values():
        if look._vocab:  # a layer never adapted keeps needing adapt()
            look.idf_weights = w
            look._input_idf = None


def _init_from_keras(v, where):
    if v is None or isinstance(v, str):
        return v
    if not isinstance(v, dict) or not isinstance(v.get("config", {}), dict):
        raise _Bad(f"{where}: bad initializer {v!r}")
    _check_module(v, where)
    from .. import initializers

    cfg = {}
    for k, x in v.get("config", {}).items():
        if k in _INIT_EXTRA:
            if x is not None:
                raise _Bad(f"{where}: initializer {k}={x!r} is not supported by nncore")
            continue
        cfg[k] = x
    cls = v.get("class_name")
    if not isinstance(cls, str) or cls not in initializers._BY_CLASS:
        raise _Bad(f"{where}: initializer {cls!r} is not available in nncore "
                   f"(nncore has {sorted(initializers._BY_CLASS)})")
    return {"class_name": cls, "config": cfg}


def _reg_from_keras(v, where):
    if v is None or isinstance(v, str):
        return v
    if not isinstance(v, dict):
        raise _Bad(f"{where}: bad regularizer {v!r}")
    _check_module(v, where)
    return {"class_name": v.get("class_name"), "config": v.get("config", {})}


def _con_from_keras(v, where):
    if v is None:
        return None
    from .. import constraints

    if isinstance(v, str):
        if v not in constraints._NAMES:
            raise _Bad(f"{where}: constraint {v!r} is not available in nncore")
        return v
    if not isinstance(v, dict):
        raise _Bad(f"{where}: bad constraint {v!r}")
    _check_module(v, where)
    cls = v.get("class_name")
    if not isinstance(cls, str) or cls not in constraints._CLASSES:
        raise _Bad(f"{where}: constraint {cls!r} is not available in nncore "
                   f"(nncore has {sorted(constraints._CLASSES)})")
    return {"class_name": cls, "config": v.get("config", {})}


def _arg_from_keras(key, v, where):
    if key.endswith("_constraint"):
        return _con_from_keras(v, f"{where}, {key}")
    if key.endswith("_initializer"):
        return _init_from_keras(v, f"{where}, {key}")
    if key.endswith("_regularizer"):
        return _reg_from_keras(v, f"{where}, {key}")
    if key in ("activation", "recurrent_activation") and isinstance(v, dict):
        _check_module(v, where)  # Keras serializes a function as {class_name: 'function', ...}
        if v.get("class_name") == "function" and isinstance(v.get("config"), str):
            return v["config"]
        raise _Bad(f"{where}: activation {v!r} is not one of nncore's")
    return v


# ---- Keras config -> nncore config ------------------------------------------------------------
def _layer_from_keras(entry, where, custom_objects):
    """nncore's {'class_name', 'config'} entry for a Keras layer entry (models recursively)."""
    from .registry import get_class, user_class

    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str) or \
            not isinstance(entry.get("config"), dict):
        raise _Bad(f"{where}: a layer entry must have 'class_name' and a dict 'config'")
    cls_name = entry["class_name"]
    kcfg = entry["config"]
    reg = entry.get("registered_name")
    lname = kcfg.get("name", entry.get("name"))
    where = f"{where}, layer {lname!r} ({cls_name})" if isinstance(lname, str) else where
    if cls_name.endswith("Lambda") and _lambda_name(kcfg.get("function")) is None:
        raise _Bad(f"{where}: Lambda layers hold Python code, which nncore never runs; "
                   "rewrite the Lambda as a registered layer, or register its function "
                   "(keras.saving.register_keras_serializable) so the file names it")
    # A custom class: one registered with nncore by the name Keras recorded, or one Keras wrote
    # unregistered (registered_name = its class name) that the caller passes by that name in
    # custom_objects or a custom_object_scope.
    unregistered = reg == cls_name and user_class(cls_name, custom_objects) is not None
    if isinstance(reg, str) and reg not in _MODELS and (reg != cls_name or unregistered):
        if get_class(reg, custom_objects) is None:
            raise _Bad(f"{where}: custom object {reg!r} is not registered with nncore "
                       "(keras.saving.register_keras_serializable or custom_objects=)")
        cfg = dict(kcfg)
        if "dtype" in cfg and _dtype_ok(cfg["dtype"]):
            del cfg["dtype"]
        for key, ok in _BASE_FIXED.items():  # Keras's base Layer config keys
            if key in cfg:
                v = cfg.pop(key)
                if ok is not _ANY and v not in ok:
                    raise _Bad(f"{where}: {key}={v!r} is not supported by nncore")
        names = getattr(_custom_names, "value", None)
        if names is not None and isinstance(cfg.get("name"), str):
            names[cfg["name"]] = cls_name  # Keras's h5 group is named after its class
        out = {"class_name": reg, "config": cfg}
        if "build_config" in entry:
            out["build_config"] = entry["build_config"]
        return out
    _check_module(entry, where)
    if cls_name in _MODELS:
        return _model_from_keras(cls_name, kcfg, where, custom_objects)
    cls_name = _ALIASES.get(cls_name, cls_name)
    spec = KERAS_LAYERS.get(cls_name)
    if cls_name == "InputLayer":
        return {"class_name": "InputLayer", "config": _input_from_keras(kcfg, where)}
    if spec is None:
        if user_class(cls_name, custom_objects) is not None:
            return {"class_name": cls_name, "config": dict(kcfg)}
        raise _Bad(f"{where}: nncore has no layer {cls_name!r} (it reads "
                   f"{sorted(KERAS_LAYERS)})")
    cfg = {}
    for key, v in kcfg.items():
        if key == "name":
            cfg["name"] = v
        elif key == "trainable":
            if not isinstance(v, bool):
                raise _Bad(f"{where}: trainable must be a bool")
            cfg["trainable"] = v
        elif key == "dtype":
            if not _dtype_ok(v) and not (cls_name in _INT_OUTPUT and _dtype_ok(v, _INT_DTYPES)):
                raise _Bad(f"{where}: dtype {v!r} is not supported (nncore computes in float32)")
        elif key in ("batch_input_shape", "batch_shape"):
            if v is not None:
                cfg["batch_input_shape"] = v
        elif key == "input_shape":
            cfg["input_shape"] = v
        elif key in spec.nested:
            cfg[key] = None if v is None else _layer_from_keras(v, f"{where}, {key}",
                                                                custom_objects)
        elif key in spec.args:
            cfg[key] = _arg_from_keras(key, v, where)
        elif key in spec.fixed:
            ok = spec.fixed[key]
            if ok is not _ANY and not any(v == o and type(v) is type(o) or
                                          (o is None and v is None) for o in ok):
                raise _Bad(f"{where}: {key}={v!r} is not supported by nncore")
        else:
            raise _Bad(f"{where}: argument {key!r} is not known to nncore's {cls_name}")
    if spec.from_keras is not None:
        cfg = spec.from_keras(cfg)
    return {"class_name": cls_name, "config": cfg}


def _input_from_keras(kcfg, where):
    allowed = {"batch_shape", "batch_input_shape", "shape", "dtype", "sparse", "ragged", "name",
               "optional", "batch_size", "input_shape"}
    extra = set(kcfg) - allowed
    if extra:
        raise _Bad(f"{where}: InputLayer argument(s) {sorted(extra)} are not known")
    for flag in ("sparse", "ragged", "optional"):
        if kcfg.get(flag):
            raise _Bad(f"{where}: {flag}=True inputs are not supported")
    bs = kcfg.get("batch_shape", kcfg.get("batch_input_shape"))
    if bs is not None:
        if not isinstance(bs, list) or len(bs) < 1:
            raise _Bad(f"{where}: bad batch_shape {bs!r}")
        shape, batch = bs[1:], bs[0]
    else:
        shape, batch = kcfg.get("shape", kcfg.get("input_shape")), kcfg.get("batch_size")
    dt = kcfg.get("dtype", "float32")
    if isinstance(dt, dict):
        if not _dtype_ok(dt):
            raise _Bad(f"{where}: dtype {dt!r} is not supported")
        dt = "float32"
    cfg = {"shape": shape, "dtype": dt, "batch_size": batch}
    if "name" in kcfg:
        cfg["name"] = kcfg["name"]
    return cfg


def _tensor_ref(t, where):
    if isinstance(t, dict) and t.get("class_name") == "__keras_tensor__":
        h = t.get("config", {}).get("keras_history") if isinstance(t.get("config"), dict) \
            else None
        if isinstance(h, list) and len(h) == 3:
            return h
    if isinstance(t, list) and len(t) in (3, 4) and isinstance(t[0], str):  # Keras 2
        if len(t) == 4 and t[3] not in ({}, None):
            raise _Bad(f"{where}: call arguments {t[3]!r} are not supported")
        return t[:3]
    raise _Bad(f"{where}: bad tensor reference {t!r}")


_NODE_KWARGS = {"mask": (None,), "training": (None, False)}


def _node_from_keras(node, where, implicit_masks=frozenset(), spec=None):
    """nncore's node {'args': refs, 'list': bool} for a Keras node; for a layer whose spec reads
    call arguments, also 'call_args' (the flags the node passes)."""
    if isinstance(node, dict):  # Keras 3: {"args": [x], "kwargs": {...}}
        args, kwargs = node.get("args"), node.get("kwargs", {})
        hook = spec.node_from_keras if spec is not None else None
        if not isinstance(args, list) or (len(args) != 1 and hook is None) or \
                not isinstance(kwargs, dict):
            raise _Bad(f"{where}: a node must call the layer on one tensor or one list of "
                       f"tensors, got {node!r:.200}")
        rest = {}
        for k, v in kwargs.items():
            if k == "mask" and v is not None:
                # Keras 3 records the mask a layer received as a tensor of its graph; nncore
                # accepts it only when it is the mask an Embedding(mask_zero=True) or a Masking
                # layer computes, which nncore's layers propagate themselves.
                refs = v if isinstance(v, list) else [v]
                for r in refs:
                    if r is not None and _tensor_ref(r, where)[0] not in implicit_masks:
                        raise _Bad(f"{where}: a mask computed by {_tensor_ref(r, where)[0]!r} "
                                   "is passed explicitly; nncore only propagates the masks of "
                                   "Embedding(mask_zero=True) and Masking")
                continue
            if hook is not None:
                rest[k] = v
                continue
            if k not in _NODE_KWARGS or v not in _NODE_KWARGS[k]:
                raise _Bad(f"{where}: call argument {k}={v!r} is not supported by nncore")
        if hook is not None:
            refs, call_args = hook(args, rest, where)
            return {"args": refs, "list": True, "call_args": call_args}
        x = args[0]
        if isinstance(x, list):
            return {"args": [_tensor_ref(t, where) for t in x], "list": True}
        return {"args": [_tensor_ref(x, where)], "list": False}
    if isinstance(node, list) and node:  # Keras 2: [[name, node, tensor, kwargs], ...]
        refs = [_tensor_ref(t, where) for t in node]
        return {"args": refs, "list": len(refs) > 1}
    raise _Bad(f"{where}: bad inbound node {node!r:.200}")


def _model_from_keras(cls_name, kcfg, where, custom_objects):
    if not isinstance(kcfg, dict):
        raise _Bad(f"{where}: a model config must be a dict")
    layers = kcfg.get("layers")
    if not isinstance(layers, list):
        raise _Bad(f"{where}: a model config needs 'layers'")
    allowed = {"name", "trainable", "layers", "input_layers", "output_layers", "dtype",
               "build_input_shape", "input_spec"}
    extra = set(kcfg) - allowed
    if extra:
        raise _Bad(f"{where}: model config key(s) {sorted(extra)} are not known")
    if not _dtype_ok(kcfg.get("dtype")):
        raise _Bad(f"{where}: dtype {kcfg.get('dtype')!r} is not supported")
    name = kcfg.get("name")
    if cls_name == "Sequential":
        out = []
        for i, e in enumerate(layers):
            out.append(_layer_from_keras(e, f"{where}, layer {i}", custom_objects))
        if not out or out[0]["class_name"] != "InputLayer":
            bis = kcfg.get("build_input_shape")
            if not isinstance(bis, list) or len(bis) < 2:
                raise _Bad(f"{where}: the Sequential has no input shape")
            out.insert(0, {"class_name": "InputLayer",
                           "config": {"shape": bis[1:], "batch_size": bis[0]}})
        cfg = {"name": name, "layers": out}
        if kcfg.get("trainable") is False:
            cfg["trainable"] = False
        return {"class_name": "Sequential", "config": cfg}
    out = []
    for i, e in enumerate(layers):
        if not isinstance(e, dict):
            raise _Bad(f"{where}: layer {i} is not an entry")
    masks = _implicit_masks(layers, where)
    order = getattr(_keras_orders, "value", None)
    if order is not None and isinstance(name, str):
        # Keras's model.layers (and so its h5 layout) follow the config's order
        order[name] = [e.get("name") for e in layers if e.get("name") not in masks]
    for e in layers:
        if e.get("name") in masks:
            continue
        ne = _layer_from_keras(e, f"{where}", custom_objects)
        nodes = e.get("inbound_nodes", [])
        if not isinstance(nodes, list):
            raise _Bad(f"{where}: inbound_nodes must be a list")
        ne["name"] = e.get("name", e["config"].get("name"))
        spec = KERAS_LAYERS.get(ne["class_name"])
        lw = f"{where}, layer {ne['name']!r}"
        ne["inbound_nodes"] = [_node_from_keras(n, lw, masks, spec) for n in nodes]
        calls = [n.pop("call_args") for n in ne["inbound_nodes"] if "call_args" in n]
        if calls:
            if any(c != calls[0] for c in calls[1:]):
                raise _Bad(f"{lw}: its calls pass different arguments ({calls[0]} and "
                           f"{next(c for c in calls if c != calls[0])}); nncore calls a "
                           f"{ne['class_name']} the same way at every node")
            ne["config"]["call_args"] = calls[0]
        out.append(ne)
    for ne in out:
        for n in ne["inbound_nodes"]:
            for r in n["args"]:
                if r[0] in masks:
                    raise _Bad(f"{where}, layer {ne['name']!r}: the mask operation {r[0]!r} "
                               "is used as data; nncore does not run Keras operations")

    def refs(spec):
        if isinstance(spec, dict):
            return {k: refs(v) for k, v in spec.items()}
        if isinstance(spec, list) and spec and isinstance(spec[0], (list, dict)):
            return [refs(v) for v in spec]
        if isinstance(spec, list) and len(spec) == 3:
            return list(spec)
        raise _Bad(f"{where}: bad input/output reference {spec!r:.200}")

    outs = refs(kcfg.get("output_layers"))
    if isinstance(outs, list) and len(outs) == 1 and isinstance(outs[0], list):
        outs = outs[0]  # Keras returns a lone output unwrapped (unpack_singleton)
    cfg = {"name": name, "layers": out, "input_layers": refs(kcfg.get("input_layers")),
           "output_layers": outs}
    if kcfg.get("trainable") is False:
        cfg["trainable"] = False
    return {"class_name": "Functional", "config": cfg}


_OPS_MODULE = "keras.src.ops.numpy"


def _is_op(e):
    """A Keras 3 operation entry (the legacy h5 drops the module): only the mask ops."""
    cls = e.get("class_name")
    if cls == "ConvertToTensor":  # Attention's compute_mask passes on its query's mask so
        return e.get("module") in ("keras.src.ops.core", None)
    return cls in ("NotEqual", "Any", "LogicalOr") and e.get("module") in (_OPS_MODULE, None)


def _implicit_masks(layers, where):
    """The names of the operation entries of a Keras 3 functional config that compute the mask
    of an Embedding(mask_zero=True) (not_equal(ids, 0)) or of a Masking layer
    (any(not_equal(x, value), axis=-1)), from that layer's own input, and the logical_or of
    such masks that Keras's elementwise merges (Add, ...) pass on. Any other operation entry is
    refused."""
    by_name = {e.get("name"): e for e in layers}

    def op_input(e, n_extra):
        nodes = e.get("inbound_nodes")
        if not isinstance(nodes, list) or len(nodes) != 1 or not isinstance(nodes[0], dict):
            return None
        args, kwargs = nodes[0].get("args"), nodes[0].get("kwargs", {})
        if not isinstance(args, list) or len(args) != 1 + n_extra or kwargs not in ({}, None):
            return None
        try:
            return _tensor_ref(args[0], where), args[1:]
        except _Bad:
            return None

    def layer_input(name):
        e = by_name.get(name)
        nodes = e.get("inbound_nodes") if isinstance(e, dict) else None
        if not isinstance(nodes, list) or len(nodes) != 1 or not isinstance(nodes[0], dict):
            return None
        args = nodes[0].get("args")
        try:
            return _tensor_ref(args[0], where) if isinstance(args, list) and args else None
        except _Bad:
            return None

    consumers = {}  # tensor ref -> [(class, config)] of the layers called on it
    for e in layers:
        if _is_op(e) or not isinstance(e.get("config"), dict):
            continue
        inp = layer_input(e.get("name"))
        if inp is not None:
            consumers.setdefault(tuple(inp), []).append((e.get("class_name"), e["config"]))
    found = set()
    ors = [e for e in layers if _is_op(e) and e.get("class_name") in ("LogicalOr",
                                                                       "ConvertToTensor")]
    for e in layers:
        if not _is_op(e) or e in ors:
            continue
        name, cls, cfg = e.get("name"), e.get("class_name"), e.get("config")
        ok = False
        if cls == "NotEqual" and isinstance(cfg, dict) and set(cfg) <= {"name"}:
            got = op_input(e, 1)
            if got is not None and isinstance(got[1][0], (int, float)):
                ref, value = tuple(got[0]), got[1][0]
                ok = any(c == "Embedding" and k.get("mask_zero") is True and value == 0
                         for c, k in consumers.get(ref, [])) or any(
                    c == "Masking" and k.get("mask_value", 0.0) == value
                    for c, k in consumers.get(ref, []))
        elif cls == "Any" and isinstance(cfg, dict) and cfg.get("axis") == -1 and \
                cfg.get("keepdims") is False and set(cfg) <= {"name", "axis", "keepdims"}:
            got = op_input(e, 0)
            src = by_name.get(got[0][0]) if got is not None else None
            if isinstance(src, dict) and src.get("class_name") == "NotEqual" and _is_op(src):
                inner = op_input(src, 1)
                ok = inner is not None and any(
                    c == "Masking" and k.get("mask_value", 0.0) == inner[1][0]
                    for c, k in consumers.get(tuple(inner[0]), []))
        if not ok:
            raise _Bad(f"{where}: operation {name!r} ({cls}) is not supported: nncore reads "
                       "Keras operations only as the masks of Embedding(mask_zero=True) and "
                       "Masking")
        found.add(name)
    # logical_or(a, b) of accepted masks (in any order: a merge of merges), and
    # convert_to_tensor(mask) (Attention's output mask is its query's).
    def or_ok(e):
        cfg = e.get("config")
        if not isinstance(cfg, dict):
            return False
        if e.get("class_name") == "ConvertToTensor":
            if set(cfg) - {"name", "dtype", "sparse", "ragged"} or \
                    cfg.get("dtype") not in (None, "bool") or \
                    any(cfg.get(k) not in (None, False) for k in ("sparse", "ragged")):
                return False
            got = op_input(e, 0)
            return got is not None and got[0][0] in found
        got = op_input(e, 1) if set(cfg) <= {"name"} else None
        if got is None:
            return False
        try:
            second = _tensor_ref(got[1][0], where)
        except _Bad:
            return False
        return got[0][0] in found and second[0] in found

    while ors:
        ready = [e for e in ors if or_ok(e)]
        if not ready:
            raise _Bad(f"{where}: operation {ors[0].get('name')!r} "
                       f"({ors[0].get('class_name')}) is not supported: nncore reads it only "
                       "on Embedding/Masking masks, as Keras's merge and attention layers pass "
                       "them on")
        for e in ready:
            found.add(e.get("name"))
            ors.remove(e)
    return frozenset(found)


def model_entry_from_keras(kentry, custom_objects=None):
    """nncore's {'class_name', 'config'} for a Keras model config (as config.json holds it)."""
    from .registry import get_class

    cls_name = kentry.get("class_name") if isinstance(kentry, dict) else None
    reg = kentry.get("registered_name") if isinstance(kentry, dict) else None
    if isinstance(cls_name, str) and cls_name not in _MODELS and isinstance(reg, str) and \
            getattr(get_class(reg, custom_objects), "_is_model", False):
        # a subclassed model the caller names: its constructor's config and a build shape
        return _layer_from_keras(kentry, "model config", custom_objects)
    if not isinstance(cls_name, str) or cls_name not in _MODELS:
        raise _Bad("the file does not hold a Sequential or Functional model "
                   f"(class {cls_name!r})")
    _check_module(kentry, "model")
    return _model_from_keras(kentry["class_name"], kentry.get("config") or {}, "model config",
                             custom_objects)


# ---- nncore -> Keras config -------------------------------------------------------------------
_POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
           "registered_name": None}


def _keras_obj(module, d):
    if d is None or isinstance(d, str):
        return d
    return {"module": module, "class_name": d["class_name"], "config": d["config"],
            "registered_name": None}


def _shape_list(s):
    return None if s is None else [None if d is None else int(d) for d in s]


def _layer_to_keras(layer):
    from ..layers.core import InputLayer
    from .registry import registered_name

    if getattr(layer, "_is_model", False):
        return _model_to_keras(layer)
    cls_name = type(layer).__name__
    if isinstance(layer, InputLayer):
        cfg = {"batch_shape": [layer.batch_size] + _shape_list(layer._input_shape_arg),
               "dtype": layer.dtype, "sparse": False, "ragged": False, "name": layer.name}
        return {"module": "keras.layers", "class_name": "InputLayer", "config": cfg,
                "registered_name": None}
    spec = KERAS_LAYERS.get(cls_name)
    reg = registered_name(type(layer))
    if reg != cls_name or spec is None:  # a user's class: its own config
        module = type(layer).__module__
        if ">" in reg:
            entry = {"module": module, "class_name": _keras_class_name(layer),
                     "config": layer.get_config(), "registered_name": reg}
        elif module == "nncore" or module.startswith("nncore."):
            raise ValueError(f"layer {layer.name!r} ({cls_name}): nncore cannot write this "
                             "layer to a Keras file yet (its converter has no entry for it)")
        else:  # unregistered, as Keras writes it: loading needs custom_objects={name: class}
            entry = {"module": None, "class_name": cls_name, "config": layer.get_config(),
                     "registered_name": cls_name}
        if layer.built and layer._build_shape is not None:
            entry["build_config"] = {"input_shape": _build_shape(layer._build_shape)}
        return entry
    ncfg = layer.get_config()
    cfg = {"name": layer.name, "trainable": layer.trainable, "dtype": dict(_POLICY)}
    for key in sorted(spec.args):
        if key not in ncfg:
            continue
        v = ncfg[key]
        if key.endswith("_initializer"):
            v = _keras_obj("keras.initializers", v)
        elif key.endswith("_regularizer"):
            v = _keras_obj("keras.regularizers", v)
        elif key.endswith("_constraint"):
            from .. import constraints

            if isinstance(v, dict) and v.get("class_name") not in constraints._CLASSES:
                raise ValueError(f"layer {layer.name!r} ({cls_name}): {key} "
                                 f"{v.get('class_name')!r} is not one of Keras's constraints; "
                                 "nncore writes only those to Keras files (save in nncore's "
                                 "own format instead)")
            v = _keras_obj("keras.constraints", v)
        cfg[key] = v
    if spec.to_keras is not None:
        cfg.update(spec.to_keras(layer))
    for key in spec.omit:
        if key == "trainable" and not layer.trainable:
            raise ValueError(f"layer {layer.name!r} ({cls_name}): Keras's {cls_name} cannot be "
                             "written frozen (it takes no 'trainable' argument)")
        cfg.pop(key, None)
    entry = {"module": "keras.layers", "class_name": cls_name, "config": cfg,
             "registered_name": None}
    if layer.built and layer._build_shape is not None and layer.weights:
        entry["build_config"] = spec.build_config(layer) if spec.build_config is not None \
            else {"input_shape": _build_shape(layer._build_shape)}
    return entry


def _build_shape(s):
    if isinstance(s, list):
        return [_shape_list(x) for x in s]
    return _shape_list(s)


def _model_to_keras(model):
    from ..models.sequential import Sequential
    from .registry import registered_name

    if isinstance(model, Sequential):
        layers = []
        if model._input_layer is not None:
            layers.append(_layer_to_keras(model._input_layer))
        layers += [_layer_to_keras(lay) for lay in model.layers]
        cfg = {"name": model.name, "trainable": model.trainable, "dtype": dict(_POLICY),
               "layers": layers}
        entry = {"module": "keras", "class_name": "Sequential", "config": cfg,
                 "registered_name": None}
        if model._input_layer is not None:
            shape = [model._input_layer.batch_size] + _shape_list(
                model._input_layer._input_shape_arg)
            cfg["build_input_shape"] = shape
            entry["build_config"] = {"input_shape": shape}
        return entry
    if model._is_subclassed():  # its class and constructor arguments, built from a shape
        reg = registered_name(type(model))
        entry = {"module": type(model).__module__ if ">" in reg else None,
                 "class_name": _keras_class_name(model), "config": model.get_config(),
                 "registered_name": reg}
        build = model._build_config()
        if build is not None:
            entry["build_config"] = build
        return entry
    ncfg = model.get_config()  # Keras-shaped graph; tensors get their shapes below
    shapes = {}
    for layer in model._layers:
        own = [n for n in layer._inbound_nodes if model._owns(n) or n.is_input]
        for k, n in enumerate(own):
            for i, t in enumerate(n.flat_outputs):
                shapes[(layer.name, k, i)] = (t.shape, t.dtype)
    by_name = {lay.name: lay for lay in model._layers}

    def ktensor(ref):
        shape, dtype = shapes.get(tuple(ref), (None, "float32"))
        return {"class_name": "__keras_tensor__",
                "config": {"shape": _shape_list(shape), "dtype": dtype,
                           "keras_history": list(ref)}}

    layers = []
    for e in ncfg["layers"]:
        ke = _layer_to_keras(by_name[e["name"]])
        ke["name"] = e["name"]
        nodes = []
        spec = KERAS_LAYERS.get(type(by_name[e["name"]]).__name__)
        hook = spec.node_to_keras if spec is not None else None
        for n in e["inbound_nodes"]:
            ts = [ktensor(r) for r in n["args"]]
            if hook is not None:
                nodes.append(hook(by_name[e["name"]], ts))
                continue
            nodes.append({"args": [ts if n["list"] else ts[0]], "kwargs": {}})
        ke["inbound_nodes"] = nodes
        layers.append(ke)
    cfg = {"name": model.name, "trainable": model.trainable, "layers": layers,
           "input_layers": ncfg["input_layers"], "output_layers": ncfg["output_layers"]}
    return {"module": "keras.src.models.functional", "class_name": "Functional", "config": cfg,
            "registered_name": "Functional"}


# ---- the variable layout of Keras 3's h5 ------------------------------------------------------
def _keras_class_name(layer):
    """The class name Keras knows a layer by: a registered custom class 'Package>Name' is Name
    (register_keras_serializable's default is the class's own name)."""
    from .registry import registered_name

    reg = registered_name(type(layer))
    return reg.split(">", 1)[1] if ">" in reg else type(layer).__name__


def keras_var_paths(model, class_names=None):
    """[(group path, layer or model, its own weights)] in the order Keras 3 writes them; models get
    their (empty) own group; a layer met a second time is skipped as Keras does. class_names:
    layer name -> the Keras class name a file recorded for a custom layer."""
    class_names = class_names or {}
    out = [("vars", model, [])]
    seen = {id(model)}

    def walk(m, prefix):
        used: dict = {}
        for layer in keras_layer_order(m):
            base = snake_case(class_names.get(layer.name, _keras_class_name(layer)))
            if base in used:
                used[base] += 1
                base = f"{base}_{used[base]}"
            else:
                used[base] = 0
            path = f"{prefix}/{base}"
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            _groups_of(layer, path, out, seen, walk)

    if getattr(model, "_is_subclassed", lambda: False)():
        _user_groups(model, "", out, seen, walk)  # Keras walks its attributes
    else:
        walk(model, "layers")
    return out


def _groups_of(layer, path, out, seen, walk):
    """One layer's h5 groups at path: a Sequential/Functional's own (empty) group and its
    layers', a user's class by its attributes, a built-in layer by its spec."""
    if getattr(layer, "_is_model", False) and not layer._is_subclassed():
        out.append((f"{path}/vars", layer, []))
        walk(layer, f"{path}/layers")
    elif getattr(layer, "_is_model", False) or type(layer).__name__ not in KERAS_LAYERS:
        _user_groups(layer, path, out, seen, walk)
    else:
        _layer_groups(layer, path, out)


def _natural_key(s):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def _held_layers(obj):
    """[(attribute, layer or [layers])] a user's layer or subclassed model holds, in Keras's
    order (attribute names naturally sorted), as Keras 3's saver walks them."""
    from ..layers.base import _INTERNAL_ATTRS, Layer

    items = []
    for k, v in vars(obj).items():
        if k in _INTERNAL_ATTRS:
            continue
        if isinstance(v, Layer):
            items.append((k, v))
        elif isinstance(v, (list, tuple, dict)):
            held = [x for x in (v.values() if isinstance(v, dict) else v) if isinstance(x, Layer)]
            if held:
                items.append((k, held))
    if getattr(obj, "_is_model", False):
        items.append(("layers", list(obj.layers)))  # a model's `layers` is walked too
    return sorted(items, key=lambda kv: _natural_key(kv[0]))


def _user_groups(obj, path, out, seen, walk):
    """A user's layer or subclassed model as Keras 3 saves it: its own variables at
    <path>/vars, then each attribute holding a layer at <path>/<attribute>, a list of layers
    at <path>/<attribute>/<snake class name>[_k]; a layer met a second time is skipped."""
    def join(*parts):
        return "/".join(p for p in parts if p)

    if path:
        out.append((join(path, "vars"), obj, list(obj._weights)))

    def visit(layer, lpath):
        if id(layer) not in seen:
            seen.add(id(layer))
            _groups_of(layer, lpath, out, seen, walk)

    for attr, held in _held_layers(obj):
        if not isinstance(held, list):
            visit(held, join(path, attr))
            continue
        used: dict = {}
        for layer in held:
            base = snake_case(type(layer).__name__)
            used[base] = used.get(base, -1) + 1
            visit(layer, join(path, attr, base if used[base] == 0 else f"{base}_{used[base]}"))


def keras_layer_order(model):
    """model.layers in the order Keras lists them: nncore's graph order, or for a model read from
    a Keras file whose graph held mask operations (which move Keras's order), the file's."""
    order = getattr(model, "_keras_layer_order", None)
    layers = list(model.layers)
    if order is None:
        return layers
    rank = {n: i for i, n in enumerate(order)}
    return sorted(layers, key=lambda lay: rank.get(lay.name, len(rank)))


def _remember_orders(model, orders):
    if not orders:
        return
    stack = [model]
    while stack:
        m = stack.pop()
        if isinstance(orders.get(m.name), list) and \
                [lay.name for lay in m.layers] != orders[m.name] and \
                sorted(lay.name for lay in m.layers) == sorted(orders[m.name]):
            m._keras_layer_order = list(orders[m.name])
        stack.extend(lay for lay in m.layers if getattr(lay, "_is_model", False))


def _layer_groups(layer, path, out):
    """Append one (non-model) layer's h5 groups: wrappers hold their inner layers' groups."""
    spec = KERAS_LAYERS.get(type(layer).__name__)
    if spec is not None and spec.children is not None:
        out.append((f"{path}/vars", layer, []))
        for sub, inner in spec.children(layer):
            _layer_groups(inner, f"{path}/{sub}", out)
        return
    if spec is not None and spec.groups is not None:
        out.append((f"{path}/vars", layer, []))
        for sub, name, ws in spec.groups(layer):
            out.append((f"{path}/{sub}/vars", _Inner(name, layer), ws))
        return
    vdir = spec.vars if spec is not None else "vars"
    if vdir != "vars":
        out.append((f"{path}/vars", layer, []))
    out.append((f"{path}/{vdir}", layer, keras_layer_vars(layer)))


class _Inner:
    """The h5 group of one of a layer's inner Keras layers (its name, the layer holding it)."""

    def __init__(self, name, owner):
        self.name, self.owner = name, owner


def keras_layer_vars(layer):
    """A layer's variables in Keras's order (trainable then non-trainable as created, wrappers'
    inner layers in turn); _COUNT marks a variable Keras keeps and nncore has no use for."""
    spec = KERAS_LAYERS.get(type(layer).__name__)
    if spec is not None and spec.children is not None:
        return [v for _, inner in spec.children(layer) for v in keras_layer_vars(inner)]
    if spec is not None and spec.keras_vars is not None:
        return spec.keras_vars(layer)
    return list(layer.weights)


def _keras_var_names(layer):
    """Keras's variable names inside a layer, as the legacy h5 records them after the layer's
    name: 'kernel', 'lstm_cell/kernel', and for a wrapper '<inner name>/...'."""
    spec = KERAS_LAYERS.get(type(layer).__name__)
    if spec is not None and spec.children is not None:
        return [f"{inner.name}/{n}" for _, inner in spec.children(layer)
                for n in _keras_var_names(inner)]
    if spec is not None and callable(spec.var_names):
        names = spec.var_names(layer)
    elif spec is not None and spec.var_names is not None:
        names = list(spec.var_names[:len(keras_layer_vars(layer))])
    else:
        names = [n.rsplit("/", 1)[-1] for n in layer._weight_names]
    if spec is not None and spec.vars == "cell/vars":
        names = [f"{snake_case(type(layer).__name__)}_cell/{n}" for n in names]
    return names


def _h5_walk(h5py, group, base=""):
    """{path: dataset} of every dataset under group, refusing anything but hard links."""
    found, groups = {}, []
    stack = [(group, base, 0)]
    count = 0
    while stack:
        g, prefix, depth = stack.pop()
        if depth > MAX_H5_DEPTH:
            raise _Bad("the HDF5 tree is nested too deeply")
        for name in g.keys():
            count += 1
            if count > MAX_H5_OBJECTS:
                raise _Bad("the HDF5 file holds too many objects")
            link = g.get(name, getlink=True)
            path = f"{prefix}/{name}" if prefix else name
            if not isinstance(link, h5py.HardLink):
                raise _Bad(f"HDF5 object {path!r} is a {type(link).__name__}: only plain "
                           "groups and datasets are read")
            obj = g[name]
            if isinstance(obj, h5py.Dataset):
                found[path] = obj
            elif isinstance(obj, h5py.Group):
                groups.append(path)
                stack.append((obj, path, depth + 1))
            else:
                raise _Bad(f"HDF5 object {path!r} is neither a group nor a dataset")
    return found, groups


def _read_dataset(h5py, ds, path, out):
    """Checked read of one float32 dataset into the array `out` (its shape)."""
    if ds.dtype != np.dtype("<f4"):
        raise _Bad(f"dataset {path!r}: dtype {ds.dtype}, expected float32")
    if tuple(ds.shape) != out.shape:
        raise _Bad(f"dataset {path!r}: shape {tuple(ds.shape)}, the model needs {out.shape}")
    if ds.is_virtual or ds.external:
        raise _Bad(f"dataset {path!r} uses external or virtual storage")
    if ds.id.get_create_plist().get_nfilters():
        raise _Bad(f"dataset {path!r} is filtered (compressed); Keras writes plain datasets")
    if out.size:
        ds.read_direct(out)
    if not np.all(np.isfinite(out)):
        raise _Bad(f"dataset {path!r} holds NaN or inf")


def _fill_from_keras_h5(h5py, f, model, class_names=None):
    """Stage every weight from a Keras 3 weights h5 (all checked), then copy into the model."""
    plan = keras_var_paths(model, class_names)
    datasets, _ = _h5_walk(h5py, f)
    expected = {}
    for gpath, layer, ws in plan:
        for i, w in enumerate(ws):
            expected[f"{gpath}/{i}"] = (w, layer)
    units = _vocab_units(model, class_names)
    idfs = _idf_datasets(units)
    extra = sorted(p for p in datasets if p not in expected and p not in idfs and
                   not p.startswith("optimizer/"))
    if extra:
        raise _Bad(f"unexpected dataset(s) {extra[:5]} (not variables of this model)")
    missing = sorted(p for p in expected if p not in datasets)
    if missing:
        raise _Bad(f"missing dataset(s) {missing[:5]}")
    staged = []
    for p, (w, _layer) in expected.items():
        if w is _COUNT:
            _read_count(datasets[p], p)
            continue
        s = np.empty(w.shape, np.float32)
        _read_dataset(h5py, datasets[p], p, s)
        staged.append((w, s))
    _read_idfs(h5py, datasets, units)
    for w, s in staged:
        w[...] = s


def _read_count(ds, path):
    if ds.shape != () or ds.dtype.kind not in "iu":
        raise _Bad(f"dataset {path!r} (Normalization count) must be an integer scalar, got "
                   f"shape {tuple(ds.shape)} dtype {ds.dtype}")
    if ds.is_virtual or ds.external:
        raise _Bad(f"dataset {path!r} uses external or virtual storage")
    if int(ds[()]) < 0:
        raise _Bad(f"dataset {path!r}: a negative count")


def _h5_value(w):
    return np.int64(0) if w is _COUNT else np.asarray(w, np.float32)


# ---- files ------------------------------------------------------------------------------------
def _atomic_write(filepath, data: bytes, overwrite=True):
    # nncore's one writer: temporary file, fsync, rename over the (symlink's) target, mode kept.
    from . import files

    if not overwrite and os.path.exists(os.path.realpath(os.fspath(filepath))):
        raise FileExistsError(f"{os.fspath(filepath)!r} exists and overwrite=False")
    files.atomic_write(filepath, lambda fh: fh.write(data))


def _weights_h5_bytes(model, compiled_optimizer=None) -> bytes:
    h5py = _h5py()
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        for gpath, layer, ws in keras_var_paths(model):
            g = f.require_group(gpath)
            g.attrs["name"] = layer.name
            for i, w in enumerate(ws):
                g.create_dataset(str(i), data=_h5_value(w))
        for p, look in _idf_datasets(_vocab_units(model)).items():
            f.create_dataset(p, data=_idf_value(look))
        if compiled_optimizer is not None:
            g = f.require_group("optimizer/vars")
            g.attrs["name"] = compiled_optimizer.name
            for i, v in enumerate(optimizer_vars(model, compiled_optimizer)):
                g.create_dataset(str(i), data=v)
    return buf.getvalue()


def _keras_layout(opt):
    """Keras 3's optimizer variables after iterations and learning_rate, as
    (groups, slot names, scalar names): for each group, for each trainable weight in
    model.trainable_weights order, that weight's nncore slots of the group (Adam interleaves
    m0, v0, m1, v1 ..., then the amsgrad v_hat of every weight; RMSprop writes every velocity,
    then every momentum, then every average gradient); then the optimizer's scalars (Nadam's
    running u product). None when nncore cannot map the optimizer's state."""
    from .. import optimizers as O

    if isinstance(opt, O.Adam):  # and AdamW
        return ([(0, 1)] + ([(2,)] if opt.amsgrad else []),
                ("momentum", "velocity", "velocity_hat"), ())
    if isinstance(opt, O.SGD):
        return ([(0,)] if opt.momentum else []), ("momentum",), ()
    if isinstance(opt, O.RMSprop):
        return ([(0,)] + ([(1,)] if opt.momentum else []) + ([(2,)] if opt.centered else []),
                ("velocity", "momentum", "average_gradient"), ())
    if isinstance(opt, O.Nadam):
        return [(0, 1)], ("momentum", "velocity"), ("variable",)
    if isinstance(opt, O.Adamax):
        return [(0, 1)], ("momentum", "norm"), ()
    if isinstance(opt, O.Adadelta):
        return [(0, 1)], ("accumulated_grad", "accumulated_delta_var"), ()
    if isinstance(opt, O.Ftrl):
        return [(0, 1)], ("accumulator", "linear"), ()
    if isinstance(opt, (O.Adagrad, O.Lion)):
        return [(0,)], ("accumulator" if isinstance(opt, O.Adagrad) else "momentum",), ()
    return None


def _opt_order(model, opt):
    """[(weight, slot index or None, scalar index or None, Keras's variable name)] after
    iterations and learning_rate, in Keras's order."""
    layout = _keras_layout(opt)
    if layout is None:
        return None
    groups, names, scalars = layout
    tw = model.trainable_weights
    paths = {id(w): p for p, w in zip(model._all_weight_names(), model.weights)}
    out = []
    for group in groups:
        for w in tw:
            slug = re.sub(r"\W", "_", paths.get(id(w), "variable"))
            out += [(w, k, None, f"{slug}_{names[k]}") for k in group]
    out += [(None, None, j, n) for j, n in enumerate(scalars)]
    return out


def optimizer_vars(model, opt):
    """Keras's optimizer variables: iterations (int64), learning_rate (float32), then the slots
    and scalars in Keras's order (_keras_layout); zeros before the first step."""
    out = [np.int64(opt.iterations), np.float32(opt.learning_rate)]
    order = _opt_order(model, opt)
    if order is None:
        return out
    opt.build(model.trainable_weights)
    scal = opt._scalar_state()
    for w, k, j, _ in order:
        out.append(np.float32(scal[j]) if w is None else
                   np.asarray(opt._slots_for(w)[k], np.float32))
    return out


def _optimizer_var_names(model, opt):
    """Keras's variable paths: '<snake class name>/iteration', '.../<weight>_<slot>'."""
    order = _opt_order(model, opt) or []
    pre = snake_case(type(opt).__name__)
    return [f"{pre}/iteration", f"{pre}/learning_rate"] + [f"{pre}/{n}" for *_, n in order]


def _set_optimizer_state(h5py, model, datasets, where):
    """Restore model.optimizer's state from Keras's variables [iterations, learning_rate,
    slots...] (datasets: index -> h5 dataset), every one checked before any is copied."""
    opt = model.optimizer
    order = _opt_order(model, opt)
    if order is None:
        if len(datasets) > 2:
            raise _Bad(f"optimizer state for {type(opt).__name__} cannot be restored by nncore")
        return
    if len(datasets) == 2:  # saved before the optimizer was built: no slots yet
        return
    if sorted(datasets) != list(range(2 + len(order))):
        raise _Bad(f"{where} holds {len(datasets)} variables; {type(opt).__name__} of "
                   f"this model has {2 + len(order)}")
    it = datasets[0]
    if it.shape != () or it.dtype.kind not in "iu":
        raise _Bad(f"{where}: iterations must be an integer scalar")
    iterations = int(it[()])
    if not 0 <= iterations < 1 << 62:
        raise _Bad("optimizer iterations out of range")
    opt.build(model.trainable_weights)
    staged, scal = [], list(opt._scalar_state())
    for i, (w, k, j, name) in enumerate(order):
        ds = datasets[2 + i]
        if w is None:
            if ds.shape != () or ds.dtype != np.dtype("<f4"):
                raise _Bad(f"{where}/{name}: a float32 scalar expected")
            v = float(ds[()])
            if not np.isfinite(v):
                raise _Bad(f"{where}/{name} is not finite")
            scal[j] = v
            continue
        target = opt._slots_for(w)[k]
        if target is None:
            raise _Bad(f"{where}/{name}: {type(opt).__name__} has no such slot")
        s = np.empty(target.shape, np.float32)
        _read_dataset(h5py, ds, f"{where}/{name}", s)
        staged.append((target, s))
    for target, s in staged:
        target[...] = s
    opt._set_scalar_state(scal)
    opt.iterations = iterations


def _load_optimizer_state(h5py, f, model):
    """Restore a compiled model's optimizer state from 'optimizer/vars' (checked)."""
    if "optimizer" not in f or "vars" not in f["optimizer"]:
        return
    datasets, _ = _h5_walk(h5py, f["optimizer"]["vars"])
    if not all(re.fullmatch(r"0|[1-9][0-9]{0,8}", p) for p in datasets):
        raise _Bad("optimizer/vars holds a dataset not named by its index")
    _set_optimizer_state(h5py, model, {int(p): d for p, d in datasets.items()},
                         "optimizer/vars")


def _load_legacy_optimizer(h5py, f, model):
    """Keras's legacy 'optimizer_weights' group: its weight_names list the variables in order."""
    if "optimizer_weights" not in f:
        return
    g = f["optimizer_weights"]
    _h5_walk(h5py, g)  # refuses links, too many objects
    names = _str_list(g.attrs.get("weight_names", np.array([])), "optimizer_weights/weight_names")
    datasets = {}
    for i, n in enumerate(names):
        ds = g.get(n)
        if not isinstance(ds, h5py.Dataset):
            raise _Bad(f"optimizer_weights: dataset {n!r} is missing")
        datasets[i] = ds
    _set_optimizer_state(h5py, model, datasets, "optimizer_weights")


def _write_legacy_optimizer(f, model):
    opt = model.optimizer
    names = _optimizer_var_names(model, opt)
    values = optimizer_vars(model, opt)
    g = f.create_group("optimizer_weights")
    g.attrs["weight_names"] = np.array([n.encode() for n in names])
    for n, v in zip(names, values):
        g.create_dataset(n, data=v)


def _zip_bytes(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=time.gmtime()[:6])
            info.compress_type = zipfile.ZIP_STORED
            z.writestr(info, data)
    return buf.getvalue()


def _keras_compile_config(model):
    if not model.compiled:
        return None
    from .native import _compile_config

    c = _compile_config(model)
    opt = dict(c["optimizer"])
    ocfg = dict(opt["config"])
    ocfg["name"] = str(ocfg.get("name", opt["class_name"])).lower()

    def kloss(v):
        if isinstance(v, dict) and set(v) == {"class_name", "config"}:
            return _keras_obj("keras.losses", v)
        if isinstance(v, dict):
            return {k: kloss(x) for k, x in v.items()}
        if isinstance(v, list):
            return [kloss(x) for x in v]
        return v

    def kmetric(m):
        if isinstance(m, dict) and set(m) == {"class_name", "config"}:
            return _keras_obj("keras.metrics", m)
        if isinstance(m, dict):
            return {k: kmetric(x) for k, x in m.items()}
        if isinstance(m, list):
            return [kmetric(x) for x in m]
        return m

    return {"optimizer": {"module": "keras.optimizers", "class_name": opt["class_name"],
                          "config": ocfg, "registered_name": None},
            "loss": kloss(c["loss"]), "loss_weights": c["loss_weights"],
            "metrics": kmetric(c["metrics"]), "weighted_metrics": None,
            "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}


def save_keras(model, filepath, overwrite=True) -> None:
    """model.save('m.keras'): a Keras 3 file (keras.models.load_model reads it)."""
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built; build or fit it before saving")
    _writing_keras_zip.value = True
    try:
        entry = _model_to_keras(model)
    finally:
        _writing_keras_zip.value = False
    entry["build_config"] = entry.get("build_config", {"input_shape": None})
    cc = _keras_compile_config(model)
    if cc is not None:
        entry["compile_config"] = cc
    meta = {"keras_version": KERAS_VERSION,
            "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S", time.gmtime())}
    data = _zip_bytes({"metadata.json": json.dumps(meta),
                       "config.json": json.dumps(entry),
                       "model.weights.h5": _weights_h5_bytes(
                           model, model.optimizer if cc is not None else None),
                       **_vocab_assets(model)})
    _atomic_write(filepath, data, overwrite)


def save_weights_h5(model, filepath, overwrite=True) -> None:
    """model.save_weights('m.weights.h5'): Keras 3's weights file."""
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built; nothing to save")
    _atomic_write(filepath, _weights_h5_bytes(model, model.optimizer if model.compiled else None),
                  overwrite)


def _read_bytes(filepath) -> bytes:
    """The whole file through nncore's one reader: regular files only (no FIFO, no device),
    the caller's descriptor left open, the size checked before anything is read."""
    from . import files

    try:
        fh, _ = files.open_regular(filepath, MAX_FILE_BYTES)
    except files.FileRefused as e:
        raise _Bad(str(e).replace(f"more than the {MAX_FILE_BYTES} allowed",
                                  f"the file is larger than {MAX_FILE_BYTES} bytes")) from None
    with fh:
        return fh.read()


def _open_keras_zip(filepath):
    raw = _read_bytes(filepath)
    size = len(raw)
    zf = zipfile.ZipFile(io.BytesIO(raw))
    declared = 0
    names = set()
    assets = set()
    for info in zf.infolist():
        if info.flag_bits & 0x1:
            raise _Bad(f"member {info.filename!r} is encrypted")
        if info.is_dir():
            if not (info.filename.rstrip("/") == "assets" or info.filename.startswith("assets/")):
                raise _Bad(f"unexpected directory {info.filename!r}")
            continue
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise _Bad(f"member {info.filename!r} is compressed; Keras stores its members and "
                       "compressed members are refused")
        declared += info.file_size
        if info.filename in names or info.filename in assets:
            raise _Bad(f"member {info.filename!r} appears twice")
        if info.filename.startswith("assets/"):
            if info.file_size > MAX_ASSET_BYTES:
                raise _Bad(f"member {info.filename!r} is larger than {MAX_ASSET_BYTES} bytes")
            assets.add(info.filename)  # matched against the model's vocabulary layers later
        else:
            names.add(info.filename)
    if declared > size:
        raise _Bad(f"members declare {declared} bytes but the file holds {size}")
    want = {"config.json", "metadata.json", "model.weights.h5"}
    if names - want:
        raise _Bad(f"unexpected member(s) {sorted(names - want)[:5]} (a Keras 3 model file "
                   "holds config.json, metadata.json, model.weights.h5 and assets/)")
    if "config.json" not in names or "model.weights.h5" not in names:
        raise _Bad("config.json or model.weights.h5 is missing: not a Keras 3 model file")
    return zf, assets


def _json(raw, what):
    if len(raw) > MAX_CONFIG_BYTES:
        raise _Bad(f"{what} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise _Bad(f"{what} is not valid JSON: {e}") from None


def _h5_from_bytes(h5py, data):
    if not data.startswith(b"\x89HDF\r\n\x1a\n"):
        raise _Bad("model.weights.h5 is not an HDF5 file")
    try:
        return h5py.File(io.BytesIO(data), "r")
    except OSError as e:
        raise _Bad(f"model.weights.h5 cannot be opened: {e}") from None


def _build(entry, max_params, weight_bytes, custom_objects):
    from .native import model_from_entry

    return model_from_entry(entry, allocate=False, max_params=max_params,
                            max_weight_bytes=weight_bytes, custom_objects=custom_objects)


def _from_h5py(tb) -> bool:
    """True when the innermost frame of a traceback is h5py's: HDF5 reports a corrupt file's
    B-trees, heaps and links as RuntimeError there (a RuntimeError of ours stays a bug)."""
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    name = tb.tb_frame.f_code.co_filename if tb is not None else ""
    return f"{os.sep}h5py{os.sep}" in name or os.path.basename(name).startswith("h5")


def _errors(filepath, kind):
    from .native import _ERRORS

    class Ctx:
        def __enter__(self):
            return self

        def __exit__(self, et, e, tb):
            if et is None or et in (FileNotFoundError, IsADirectoryError, ImportError):
                return False
            if issubclass(et, _Bad) or issubclass(et, _ERRORS) or issubclass(et, KeyError) or \
                    issubclass(et, OSError) or (issubclass(et, RuntimeError) and _from_h5py(tb)):
                raise ValueError(f"{os.fspath(filepath)!r} is not a valid {kind}: {e}") from None
            return False

    return Ctx()


def load_keras(filepath, custom_objects=None, compile=True, max_params=1 << 28):
    """keras.models.load_model('m.keras') for a file Keras 3 (or nncore) wrote."""
    h5py = _h5py()
    with _errors(filepath, "Keras model file"):
        zf, assets = _open_keras_zip(filepath)
        with zf:
            cfg = _json(zf.read("config.json"), "config.json")
            if "metadata.json" in zf.namelist():
                _json(zf.read("metadata.json"), "metadata.json")
            if not isinstance(cfg, dict):
                raise _Bad("config.json is not an object")
            _custom_names.value = names = {}
            _keras_orders.value = orders = {}
            try:
                entry = model_entry_from_keras(cfg, custom_objects)
            finally:
                _custom_names.value = None
                _keras_orders.value = None
            wdata = zf.read("model.weights.h5")
            model = _build(entry, max_params, len(wdata), custom_objects)
            _remember_orders(model, orders)
            if _read_vocab_assets(zf, assets, model, names):
                # A vocabulary's size sets the shapes after it (an encoding's width, the Dense
                # reading it): rebuild the model with the vocabularies in its config.
                from .serialization import serialize_layer

                model = _build(serialize_layer(model), max_params, len(wdata), custom_objects)
                _remember_orders(model, orders)
        with _h5_from_bytes(h5py, wdata) as f:
            _fill_from_keras_h5(h5py, f, model, names)
        cc = cfg.get("compile_config")
        if compile and cc is not None:
            with custom_object_scope(custom_objects or {}):  # a user's metric functions
                compile_from_keras(model, cc)
            if model.compiled:
                with _h5_from_bytes(h5py, wdata) as f:
                    _load_optimizer_state(h5py, f, model)
    return model


def load_weights_h5(model, filepath):
    """model.load_weights('w.weights.h5' or a legacy 'w.h5')."""
    h5py = _h5py()
    if not model.built:
        raise ValueError(f"model {model.name!r} must be built before load_weights")
    with _errors(filepath, "Keras weights file"):
        data = _read_bytes(filepath)
        with _h5_from_bytes(h5py, data) as f:
            if "layer_names" in f.attrs or "model_weights" in f:
                _fill_legacy(h5py, f["model_weights"] if "model_weights" in f else f, model)
            else:
                _fill_from_keras_h5(h5py, f, model)
                if model.compiled:
                    _load_optimizer_state(h5py, f, model)


# ---- compile config ---------------------------------------------------------------------------
_OPT_FIXED = {"weight_decay": _NONE, "clipnorm": _NONE, "global_clipnorm": _NONE,
              "clipvalue": _NONE, "use_ema": (False,), "ema_momentum": _ANY,
              "ema_overwrite_frequency": _NONE, "loss_scale_factor": _NONE,
              "gradient_accumulation_steps": _NONE, "is_legacy_optimizer": _ANY, "decay": (0, 0.0),
              "jit_compile": _ANY}
_OPTS = {"Adam": {"learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad", "name"},
         "SGD": {"learning_rate", "momentum", "nesterov", "name"},
         "RMSprop": {"learning_rate", "rho", "momentum", "epsilon", "centered", "name"},
         "AdamW": {"learning_rate", "weight_decay", "beta_1", "beta_2", "epsilon", "amsgrad",
                   "name"},
         "Nadam": {"learning_rate", "beta_1", "beta_2", "epsilon", "name"},
         "Adamax": {"learning_rate", "beta_1", "beta_2", "epsilon", "name"},
         "Adagrad": {"learning_rate", "initial_accumulator_value", "epsilon", "name"},
         "Adadelta": {"learning_rate", "rho", "epsilon", "name"},
         "Lion": {"learning_rate", "beta_1", "beta_2", "name"},
         "Ftrl": {"learning_rate", "learning_rate_power", "initial_accumulator_value",
                  "l1_regularization_strength", "l2_regularization_strength",
                  "l2_shrinkage_regularization_strength", "beta", "name"}}
_LOSS_FIXED = {"reduction": ("sum_over_batch_size", "auto", None), "name": _ANY, "dtype": _ANY,
               "ignore_class": _NONE, "axis": (-1,), "label_smoothing": (0, 0.0),
               "fn": _ANY}
_LOSS_NAMES = {"SparseCategoricalCrossentropy", "CategoricalCrossentropy", "BinaryCrossentropy",
               "MeanSquaredError", "MeanAbsoluteError"}


def _fixed_ok(key, v, table, where):
    ok = table[key]
    if ok is not _ANY and v not in ok:
        raise _Bad(f"{where}: {key}={v!r} is not supported by nncore")


def _optimizer_from_keras(d):
    from .. import optimizers

    if isinstance(d, str):
        return optimizers.get(d)
    if not isinstance(d, dict) or not isinstance(d.get("config"), dict):
        raise _Bad(f"bad optimizer config {d!r:.200}")
    _check_module(d, "optimizer")
    cls = d.get("class_name")
    if not isinstance(cls, str) or cls not in _OPTS:
        raise _Bad(f"optimizer {cls!r} is not available in nncore ({sorted(_OPTS)})")
    cfg = {}
    for k, v in d["config"].items():
        if k in _OPTS[cls]:
            cfg[k] = v
        elif k in _OPT_FIXED:
            _fixed_ok(k, v, _OPT_FIXED, f"optimizer {cls}")
        else:
            raise _Bad(f"optimizer {cls}: argument {k!r} is not known to nncore")
    if not isinstance(cfg.get("learning_rate", 0.0), (int, float)):
        raise _Bad("optimizer: learning-rate schedules are not supported")
    return optimizers.deserialize({"class_name": cls, "config": cfg})


def _loss_from_keras(v):
    from .. import losses

    if v is None or isinstance(v, str):
        return v
    if isinstance(v, list):
        return [_loss_from_keras(x) for x in v]
    if isinstance(v, dict) and "class_name" not in v:
        return {k: _loss_from_keras(x) for k, x in v.items()}
    if not isinstance(v, dict) or not isinstance(v.get("config"), dict):
        raise _Bad(f"bad loss {v!r:.200}")
    _check_module(v, "loss")
    cls = v["class_name"]
    if not isinstance(cls, str) or cls not in _LOSS_NAMES:
        raise _Bad(f"loss {cls!r} is not available in nncore")
    cfg = {}
    for k, x in v["config"].items():
        if k == "from_logits":
            cfg[k] = bool(x)
        elif k in _LOSS_FIXED:
            _fixed_ok(k, x, _LOSS_FIXED, f"loss {cls}")
        else:
            raise _Bad(f"loss {cls}: argument {k!r} is not known to nncore")
    return losses.deserialize({"class_name": cls, "config": cfg})


def _metric_from_keras(m):
    from .. import metrics

    if m is None or isinstance(m, str):
        return metrics.resolve_saved(m)
    if isinstance(m, list):
        return [_metric_from_keras(x) for x in m]
    if isinstance(m, dict) and "class_name" not in m:
        return {k: _metric_from_keras(x) for k, x in m.items()}
    if not isinstance(m, dict) or not isinstance(m.get("config"), dict):
        raise _Bad(f"bad metric {m!r:.200}")
    _check_module(m, "metric")
    cls = getattr(metrics, str(m["class_name"]), None)
    if not (isinstance(cls, type) and issubclass(cls, metrics.Metric)):
        raise _Bad(f"metric {m['class_name']!r} is not available in nncore")
    cfg = {k: x for k, x in m["config"].items() if k != "dtype"}
    try:
        return cls(**cfg)
    except TypeError as e:
        raise _Bad(f"metric {m['class_name']!r}: {e}") from None


def compile_from_keras(model, cc):
    if not isinstance(cc, dict):
        raise _Bad("compile_config must be an object")
    if cc.get("weighted_metrics"):
        raise _Bad("weighted_metrics are not supported by nncore")
    opt = cc.get("optimizer", cc.get("optimizer_config"))
    loss = _loss_from_keras(cc.get("loss"))
    if loss is None:
        return  # compiled without a loss: nothing nncore can train with
    mets = _metric_from_keras(cc.get("metrics")) or []
    model.compile(optimizer=_optimizer_from_keras(opt), loss=loss,
                  loss_weights=cc.get("loss_weights"), metrics=mets)


# ---- legacy HDF5 ------------------------------------------------------------------------------
def _str_list(a, what):
    if isinstance(a, np.ndarray) and a.size == 0:
        return []
    try:
        out = [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in np.asarray(a)]
    except (TypeError, UnicodeDecodeError):
        raise _Bad(f"{what} is not a list of names") from None
    if len(out) > MAX_H5_OBJECTS:
        raise _Bad(f"{what} is too long")
    return out


def _attr_text(attrs, key):
    v = attrs.get(key)
    if v is None:
        return None
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    raise _Bad(f"attribute {key!r} is not text")


def _fill_legacy(h5py, g, model):
    """Weights from a legacy group, as Keras's legacy loader matches them: the layers that have
    weights, in order (layer_names), each with its weight_names datasets in weight order."""
    names = _str_list(g.attrs.get("layer_names", np.array([])), "layer_names")
    _h5_walk(h5py, g)  # refuses soft/external links anywhere in the tree
    filed = []
    for lname in names:
        lg = g.get(lname)
        if not isinstance(lg, h5py.Group):
            raise _Bad(f"layer group {lname!r} is missing")
        wnames = _str_list(lg.attrs.get("weight_names", np.array([])), f"{lname}/weight_names")
        if wnames:
            filed.append((lname, lg, wnames))
    ours = [lay for lay in keras_layer_order(model) if lay.weights]
    if len(filed) != len(ours):
        raise _Bad(f"the file has weights for {len(filed)} layers ({[n for n, _, _ in filed][:8]}"
                   f"), the model has {len(ours)} layers with weights")
    staged = []
    for (lname, lg, wnames), layer in zip(filed, ours):
        ws = _legacy_vars(layer)
        if len(wnames) != len(ws):
            raise _Bad(f"layer {lname!r}: the file has {len(wnames)} weights, layer "
                       f"{layer.name!r} has {len(ws)}")
        for wn, w in zip(wnames, ws):
            ds = lg.get(wn)
            if not isinstance(ds, h5py.Dataset):
                raise _Bad(f"layer {lname!r}: dataset {wn!r} is missing")
            if w is _COUNT:
                _read_count(ds, f"{lname}/{wn}")
                continue
            s = np.empty(w.shape, np.float32)
            _read_dataset(h5py, ds, f"{lname}/{wn}", s)
            staged.append((w, s))
    for w, s in staged:
        w[...] = s


def load_h5(filepath, custom_objects=None, compile=True, max_params=1 << 28):
    """keras.models.load_model('m.h5') for a legacy HDF5 model file."""
    h5py = _h5py()
    with _errors(filepath, "legacy Keras .h5 model file"):
        data = _read_bytes(filepath)
        size = len(data)
        with _h5_from_bytes(h5py, data) as f:
            raw = _attr_text(f.attrs, "model_config")
            if raw is None:
                raise _Bad("no 'model_config' attribute: a weights file, not a model "
                           "(use model.load_weights)")
            cfg = _json(raw, "model_config")
            _keras_orders.value = orders = {}
            try:
                entry = model_entry_from_keras(cfg, custom_objects)
            finally:
                _keras_orders.value = None
            model = _build(entry, max_params, size, custom_objects)
            _remember_orders(model, orders)
            if "model_weights" not in f:
                raise _Bad("no 'model_weights' group")
            _fill_legacy(h5py, f["model_weights"], model)
            tc = _attr_text(f.attrs, "training_config")
            if compile and tc is not None:
                with custom_object_scope(custom_objects or {}):  # a user's metric functions
                    compile_from_keras(model, _json(tc, "training_config"))
                if model.compiled:
                    _load_legacy_optimizer(h5py, f, model)
    return model


def save_h5(model, filepath, overwrite=True, weights_only=False) -> None:
    """The legacy HDF5 layout (as Keras 3's legacy saver writes it)."""
    h5py = _h5py()
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built; nothing to save")
    if not weights_only and model._is_subclassed():
        raise ValueError(f"model {model.name!r} ({type(model).__name__}): a subclassed model "
                         "cannot be saved to the legacy .h5 format, which holds only Sequential "
                         "and Functional models (as in Keras); save it as .keras or save_weights")
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        if weights_only:
            g = f
        else:
            entry = _model_to_keras(model)
            f.attrs["model_config"] = json.dumps({"class_name": entry["class_name"],
                                                  "config": entry["config"]})
            f.attrs["backend"] = "tensorflow"
            f.attrs["keras_version"] = KERAS_VERSION
            cc = _keras_compile_config(model)
            if cc is not None:
                tc = dict(cc)
                tc["optimizer_config"] = {k: v for k, v in tc.pop("optimizer").items()
                                          if k in ("class_name", "config")}
                f.attrs["training_config"] = json.dumps(tc)
                if _keras_layout(model.optimizer) is not None:
                    _write_legacy_optimizer(f, model)
            g = f.create_group("model_weights")
        layers = keras_layer_order(model)
        if getattr(model, "_input_layer", None) is not None:
            layers = [model._input_layer] + layers
        g.attrs["layer_names"] = np.array([lay.name.encode() for lay in layers])
        g.attrs["backend"] = "tensorflow"
        g.attrs["keras_version"] = KERAS_VERSION
        for lay in layers:
            lg = g.create_group(lay.name)
            names = _legacy_weight_names(lay)
            lg.attrs["weight_names"] = np.array([n.encode() for n in names])
            for n, w in zip(names, _legacy_vars(lay)):
                lg.create_dataset(n, data=_h5_value(w))
    _atomic_write(filepath, buf.getvalue(), overwrite)


def _legacy_vars(layer):
    if getattr(layer, "_is_model", False):
        return list(layer.weights)
    return keras_layer_vars(layer)


def _legacy_weight_names(layer):
    """Keras's legacy weight_names: '<layer>/<variable>' ('dense/kernel',
    'lstm/lstm_cell/kernel', 'bidirectional/forward_lstm/lstm_cell/kernel')."""
    if getattr(layer, "_is_model", False):
        return [f"{layer.name}/{p}" for p in layer._all_weight_names()]
    return [f"{layer.name}/{n}" for n in _keras_var_names(layer)]


# ---- sniffing ---------------------------------------------------------------------------------
def file_kind(filepath) -> str:
    """'keras' (a Keras 3 zip), 'native' (nncore's zip), 'h5' (HDF5) or 'unknown'."""
    from . import files

    try:
        fh, size = files.open_regular(filepath)
    except (IsADirectoryError, PermissionError, files.FileRefused):
        return "unknown"  # the loader refuses it with its own reason
    with fh:
        head = fh.read(8)
        if head.startswith(b"\x89HDF\r\n\x1a\n"):
            return "h5"
        if not head.startswith(b"PK"):
            return "unknown"
        try:
            files.zip_member_count(fh, size)  # before zipfile parses every entry
            fh.seek(0)
            with zipfile.ZipFile(fh) as z:
                names = set(z.namelist())
        except (zipfile.BadZipFile, OSError, ValueError):
            return "unknown"
        finally:
            fh.seek(0)
    return "keras" if "config.json" in names else "native"


__all__ = ["KERAS_LAYERS", "LayerSpec", "load_keras", "save_keras", "load_h5", "save_h5",
           "load_weights_h5", "save_weights_h5", "snake_case", "file_kind"]
