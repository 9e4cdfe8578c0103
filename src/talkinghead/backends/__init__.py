"""Built-in backends: one module or subpackage per backend, each carrying its own
``register_backends`` hook implementation, exactly as a third-party plug-in does.

:data:`talkinghead.plugins.DEFAULT_PLUGINS` names them; the plug-in manager registers each module
like an entry-point plug-in. Backend modules import only light dependencies at module level;
models and heavy libraries load in ``load()``.
"""
