"""Built-in source plugin: the paths and globs given on the command line or in ``[sources] paths``."""

from __future__ import annotations

from collections.abc import Iterable

from ..markers import hookimpl
from ..settings import Settings


@hookimpl(trylast=True)
def logferry_sources(settings: Settings) -> Iterable[str]:
    return settings.paths
