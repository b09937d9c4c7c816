"""The pluggy markers of the ``logferry`` project.

Apart from :mod:`logferry.hookspecs` so that the built-in plugins inside the stages can mark their
hooks without importing the specs (whose signatures name the stages' types).
"""

import pluggy

hookspec = pluggy.HookspecMarker("logferry")
hookimpl = pluggy.HookimplMarker("logferry")
"""The marker for hook implementations: ``@logferry.hookimpl``."""
