"""The closed set of classes a model file may name.

Built-in layers and models register themselves (``register``); users add their own classes with
``register_keras_serializable`` or pass ``custom_objects`` / use ``custom_object_scope``. A file can
only ever name a class found here: nothing is imported or evaluated because a file names it.
"""

from __future__ import annotations

import contextlib
import importlib
import threading

_BUILTIN: dict = {}
_CUSTOM: dict = {}
_scope = threading.local()
# Modules whose import registers the built-in classes (imported on the first look-up).
_BUILTIN_MODULES = ("nncore.layers", "nncore.models", "nncore.ops")
_loaded = False


def register(cls=None, *, name=None):
    """Class decorator: make a built-in class loadable under its class name (or `name`)."""

    def deco(c):
        _BUILTIN[name or c.__name__] = c
        return c

    return deco(cls) if cls is not None else deco


def register_keras_serializable(package="Custom", name=None):
    """Keras's decorator: register a user class as 'package>name' (name: the class name)."""
    if not isinstance(package, str) or (name is not None and not isinstance(name, str)):
        raise TypeError("register_keras_serializable: package and name must be strings")

    def deco(c):
        key = f"{package}>{name or c.__name__}"
        _CUSTOM[key] = c
        c._registered_name = key
        return c

    return deco


@contextlib.contextmanager
def custom_object_scope(custom_objects):
    """Within the block, classes in the dict `custom_objects` may be named by files."""
    if not isinstance(custom_objects, dict):
        raise TypeError("custom_object_scope expects a dict of name -> class")
    stack = getattr(_scope, "stack", None)
    if stack is None:
        stack = _scope.stack = []
    stack.append(dict(custom_objects))
    try:
        yield
    finally:
        stack.pop()


CustomObjectScope = custom_object_scope


def _ensure_builtins():
    global _loaded
    if not _loaded:
        for mod in _BUILTIN_MODULES:
            importlib.import_module(mod)
        _loaded = True


def registered_name(cls) -> str:
    """The name a file records for cls."""
    return getattr(cls, "_registered_name", None) or cls.__name__


def get_class(name, custom_objects=None):
    """The class a file names, or None when it is neither built in nor registered."""
    if not isinstance(name, str):
        return None
    cls = user_class(name, custom_objects)
    if cls is not None:
        return cls
    if name in _CUSTOM:
        return _CUSTOM[name]
    _ensure_builtins()
    return _BUILTIN.get(name)


def user_class(name, custom_objects=None):
    """The class the caller supplies under `name` (custom_objects or an enclosing
    custom_object_scope), or None: how a file may name an unregistered custom class."""
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    for scope in reversed(getattr(_scope, "stack", None) or []):
        if name in scope:
            return scope[name]
    return None


def get_registered_object(name, custom_objects=None):
    return get_class(name, custom_objects)
