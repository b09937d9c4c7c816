"""The sinks that ship inside logferry: the writer-thread file sink (also stdout) and ``null:``."""
