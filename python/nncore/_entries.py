"""One reader for the {"class_name": ..., "config": {...}} entries that name a loss, metric,
optimizer, schedule, initializer or regularizer in a config or a model file.

Such an entry is data: the class comes only from the caller's table of nncore's own classes, and
anything malformed (not a dict, extra keys, a class name that is not a string or not in the
table, a config that is not a dict or that the class rejects) is a ValueError naming `what`.
"""

from __future__ import annotations


def from_entry(d, table: dict, what: str, *, exact: bool = True, call: bool = False,
               errors: tuple = (TypeError,)):
    """The object entry `d` names. `exact`: no keys but class_name and config; `call`: build
    with cls(**config) instead of cls.from_config(config); `errors`: the exceptions of the
    build that mean a bad config."""
    ok = isinstance(d, dict) and (set(d) == {"class_name", "config"} if exact else True)
    name = d.get("class_name") if ok else None
    if not (isinstance(name, str) and name in table and isinstance(d.get("config"), dict)):
        raise ValueError(f"invalid {what} config {d!r}")
    cls = table[name]
    try:
        return cls(**d["config"]) if call else cls.from_config(d["config"])
    except errors as e:
        raise ValueError(f"invalid {what} config {d!r}: {e}") from None
