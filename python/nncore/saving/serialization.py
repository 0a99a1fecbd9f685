"""Objects to and from configs: every class through the registry, every graph rebuilt by calling
its layers on symbolic tensors again (so every shape is checked as when it was first built).

Graph configs are data: a node names layers and tensors as [layer name, node index, tensor
index]; a reference to something not defined, a cycle, or an oversized graph raises ValueError.
"""

from __future__ import annotations

from .registry import get_class, registered_name

MAX_LAYERS = 4096
MAX_NODES_PER_LAYER = 1024
MAX_FAN_IN = 1024


def serialize_layer(layer) -> dict:
    entry = {"class_name": registered_name(type(layer)), "config": layer.get_config()}
    build = getattr(layer, "_build_config", None)
    build = build() if build is not None else None
    if build is not None:  # a subclassed model: the input shape its graph is traced for
        entry["build_config"] = build
    return entry


def _build_shapes(build, where):
    """The input shape(s) of a file's build_config, checked: [dims] or [[dims], ...]."""
    from ..layers.base import shape_tuple

    shape = build.get("input_shape") if isinstance(build, dict) else None
    multi = isinstance(shape, list) and bool(shape) and all(isinstance(s, list) for s in shape)
    shapes = shape if multi else [shape]
    if not isinstance(shape, list) or not 0 < len(shapes) <= 1024 or not all(
            isinstance(s, list) and len(s) >= 2 for s in shapes):
        raise ValueError(f"{where}: build_config must be {{'input_shape': [batch, dims...]}} or "
                         "a list of such shapes")
    out = [(None,) + shape_tuple(s[1:], "input_shape", where, allow_none=True) for s in shapes]
    return out if multi else out[0]


def _check_entry(entry, where):
    if not isinstance(entry, dict) or not {"class_name", "config"} <= set(entry):
        raise ValueError(f"{where}: a layer entry must have 'class_name' and 'config'")
    if not isinstance(entry["config"], dict) or not all(isinstance(k, str)
                                                        for k in entry["config"]):
        raise ValueError(f"{where}: 'config' must be a dict with string keys")


def deserialize_layer(entry, custom_objects=None, where="model config"):
    """A layer or model from {'class_name', 'config'}; only registered classes."""
    _check_entry(entry, where)
    name = entry["class_name"]
    cls = get_class(name, custom_objects)
    if cls is None:
        raise ValueError(f"{where}: unknown layer type {name!r}: it is neither built into nncore "
                         "nor registered (keras.saving.register_keras_serializable, or pass "
                         "custom_objects={...})")
    cfg = dict(entry["config"])
    try:
        # models rebuild their layers through us; a Lambda looks its function up
        if getattr(cls, "_is_model", False) or getattr(cls, "_from_config_custom_objects", False):
            obj = cls.from_config(cfg, custom_objects=custom_objects)
            if "build_config" in entry and getattr(obj, "_is_model", False) and \
                    obj._is_subclassed() and not obj.built:
                obj.build(_build_shapes(entry["build_config"], where))
            return obj
        return cls.from_config(cfg)
    except TypeError as e:
        raise ValueError(f"{where}: layer {cfg.get('name', name)!r} ({name}): {e}") from None


def _ref(r, where):
    if not (isinstance(r, list) and len(r) == 3 and isinstance(r[0], str)
            and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 1 << 20
                    for i in r[1:])):
        raise ValueError(f"{where}: a tensor reference must be [layer name, node index, tensor "
                         f"index], got {r!r}")
    return r[0], r[1], r[2]


def functional_from_config(cls, config, custom_objects=None):
    where = "functional model config"
    need = {"name", "layers", "input_layers", "output_layers"}
    if not isinstance(config, dict) or not need <= set(config):
        raise ValueError(f"{where}: must have {sorted(need)}")
    entries = config["layers"]
    if not isinstance(entries, list) or not 0 < len(entries) <= MAX_LAYERS:
        raise ValueError(f"{where}: 'layers' must be a list of 1 to {MAX_LAYERS} entries")
    layers, pending = {}, []
    for i, entry in enumerate(entries):
        _check_entry(entry, f"{where}, layer {i}")
        lname = entry.get("name", entry["config"].get("name"))
        if not isinstance(lname, str):
            raise ValueError(f"{where}, layer {i}: missing name")
        if lname in layers:
            raise ValueError(f"{where}: two layers are named {lname!r}")
        nodes = entry.get("inbound_nodes", [])
        if not isinstance(nodes, list) or len(nodes) > MAX_NODES_PER_LAYER:
            raise ValueError(f"{where}: layer {lname!r}: inbound_nodes must be a list of at most "
                             f"{MAX_NODES_PER_LAYER}")
        layer = deserialize_layer(entry, custom_objects, f"{where}, layer {lname!r}")
        if layer.name != lname:
            raise ValueError(f"{where}: layer entry {lname!r} builds a layer named "
                             f"{layer.name!r}")
        layers[lname] = layer
        parsed = []
        for node in nodes:
            if not isinstance(node, dict) or not isinstance(node.get("args"), list) or \
                    not 0 < len(node["args"]) <= MAX_FAN_IN:
                raise ValueError(f"{where}: layer {lname!r}: a node must be {{'args': [refs], "
                                 f"'list': bool}} with 1 to {MAX_FAN_IN} inputs")
            parsed.append(([_ref(r, where) for r in node["args"]], bool(node.get("list"))))
        pending.append([lname, parsed, 0])
    made = {}
    from ..layers.core import InputLayer

    for lname, layer in layers.items():
        if isinstance(layer, InputLayer):
            made[(lname, 0)] = [layer._tensor]
    progress = True
    while progress:
        progress = False
        for item in pending:
            lname, parsed, k = item
            while k < len(parsed):
                refs, as_list = parsed[k]
                if not all((r[0], r[1]) in made for r in refs):
                    break
                args = []
                for r in refs:
                    outs = made[(r[0], r[1])]
                    if r[2] >= len(outs):
                        raise ValueError(f"{where}: {r!r} names output {r[2]} of a node with "
                                         f"{len(outs)} outputs")
                    args.append(outs[r[2]])
                out = layers[lname](args if as_list or len(args) > 1 else args[0])
                from ..layers.node import flatten

                made[(lname, k)] = flatten(out)
                k += 1
                progress = True
            item[2] = k
    left = [(lname, k) for lname, parsed, k in pending if k < len(parsed)]
    if left:
        missing = sorted({r[0] for lname, parsed, k in pending for refs, _ in parsed[k:]
                          for r in refs if r[0] not in layers})
        why = (f"it names layers that are not defined: {missing}" if missing
               else "its nodes form a cycle or refer to nodes that do not exist")
        raise ValueError(f"{where}: cannot rebuild the graph at layer {left[0][0]!r}: {why}")

    def resolve(spec):
        if isinstance(spec, dict):
            return {k: resolve(v) for k, v in spec.items()}
        if isinstance(spec, list) and spec and isinstance(spec[0], list):
            return [resolve(v) for v in spec]
        name, node, idx = _ref(spec, where)
        if (name, node) not in made or idx >= len(made[(name, node)]):
            raise ValueError(f"{where}: input/output {spec!r} does not exist")
        return made[(name, node)][idx]

    model = cls(resolve(config["input_layers"]), resolve(config["output_layers"]),
                name=config["name"])
    if config.get("trainable") is False:
        model.trainable = False
    return model


def sequential_from_config(cls, config, custom_objects=None):
    where = "sequential model config"
    if not isinstance(config, dict) or "layers" not in config:
        raise ValueError(f"{where}: must have 'layers'")
    entries = config["layers"]
    if not isinstance(entries, list) or not 0 < len(entries) <= MAX_LAYERS:
        raise ValueError(f"{where}: 'layers' must be a non-empty list of at most {MAX_LAYERS}")
    name = config.get("name")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"{where}: name must be a string")
    model = cls(name=name)
    for i, entry in enumerate(entries):
        model.add(deserialize_layer(entry, custom_objects, f"{where}, layer {i}"))
    if config.get("trainable") is False:
        model.trainable = False
    return model
