"""Built-in source plugin: the ``[[sources.files]]`` tables, and the paths and globs given on the
command line or in ``[sources] paths``."""

from __future__ import annotations

from collections.abc import Iterable

from ..markers import hookimpl
from ..settings import Settings, Source


@hookimpl(trylast=True)
def logferry_sources(settings: Settings) -> Iterable[str | Source]:
    return [*settings.files, *settings.paths]
