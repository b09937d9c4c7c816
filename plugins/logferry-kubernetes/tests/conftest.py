"""The tests of logferry-kubernetes: the decoders on runtimes' real formats, the plugin through the
real ``logferry`` command, and kubelet's rotation under a writing container."""

from __future__ import annotations

pytest_plugins = ["logferry.testing"]  # the processor contract
