"""Where lines go: the :class:`~logferry.sinks.base.Sink` interface and the built-in sinks (file, stdout, null)."""
