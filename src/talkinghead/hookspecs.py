"""The hooks a talkinghead plug-in can implement.

A plug-in is a module (or object) with functions marked ``@talkinghead.hookimpl`` and exposed
through the ``talkinghead`` entry-point group. Built-in backends use the very same hook.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT = "talkinghead"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_backends(register: Callable[[type], None]) -> None:
    """Register backend classes.

    :param register: call ``register(BackendClass)`` for each backend the plug-in provides. The
        class declares ``stage`` and ``name`` class attributes and is constructed with keyword
        configuration. Importing the class must be cheap: load models in its ``load()`` method.
    """
