"""``[plugins.kubernetes]``: its keys, the sources it makes, and the decoders' options."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from logferry import ConfigError, PluginOption, ProcessorSpec, Source
from logferry.settings import BOOL, DURATION, PATH, SIZE, STR_LIST

from . import PARTIAL_TIMEOUT, layout

MAX_MESSAGE_BYTES = 1 << 20

OPTIONS = [
    PluginOption("pods_root", PATH, Path("/var/log/pods"),
                 "Where kubelet writes the containers' logs: <namespace>_<pod>_<uid>/<container>/<restarts>.log."),
    PluginOption("containers_root", PATH, Path("/var/lib/docker/containers"),
                 "Where dockerd's json-file driver writes them: <id>/<id>-json.log."),
    PluginOption("include_pods", BOOL, True, "Follow kubelet's logs (pods_root), decoded as CRI lines."),
    PluginOption("include_docker", BOOL, True,
                 "Follow Docker's json-file logs (containers_root); false on nodes without Docker."),
    PluginOption("namespaces", STR_LIST, ["*"], "Globs: only the pods of these namespaces."),
    PluginOption("exclude_namespaces", STR_LIST, [], "Globs: not the pods of these namespaces."),
    PluginOption("pods", STR_LIST, ["*"], "Globs of pod names: only these pods."),
    PluginOption("exclude_pods", STR_LIST, [], "Globs of pod names: not these pods."),
    PluginOption("containers", STR_LIST, ["*"], "Globs of container names (in pods): only these containers."),
    PluginOption("exclude_containers", STR_LIST, [], "Globs of container names (in pods): not these containers."),
    PluginOption("exclude", STR_LIST, [], "Globs of paths (or names) left out, as [sources] exclude."),
    PluginOption("max_message_bytes", SIZE, MAX_MESSAGE_BYTES,
                 "The most a message joined from partial lines may hold; the rest starts a record of its own."),
    PluginOption("partial_timeout", DURATION, PARTIAL_TIMEOUT,
                 "How long a quiet log's unfinished message waits for its next part before it goes on as it is."),
]
"""The keys of ``[plugins.kubernetes]`` (``logferry config reference`` shows them)."""


def sources(table: Mapping[str, Any]) -> list[Source]:
    """The sources of a ``[plugins.kubernetes]`` table (its values parsed, defaults filled in)."""
    decoding = {"max_bytes": table["max_message_bytes"], "timeout": table["partial_timeout"]}
    found = []
    if table["include_pods"]:
        root = os.fspath(table["pods_root"])
        found.append(Source(
            paths=layout.pod_globs(root, table["namespaces"], table["pods"], table["containers"]),
            exclude=[*layout.HALF_WRITTEN, *table["exclude"],
                     *layout.pod_excludes(root, table["exclude_namespaces"], table["exclude_pods"],
                                          table["exclude_containers"])],
            processors=[ProcessorSpec("cri", dict(decoding), key="[plugins.kubernetes] pods (cri)")],
            name="kubernetes pods"))
    if table["include_docker"]:
        found.append(Source(
            paths=layout.docker_globs(os.fspath(table["containers_root"])),
            exclude=[*layout.HALF_WRITTEN, *table["exclude"]],
            processors=[ProcessorSpec("docker", dict(decoding), key="[plugins.kubernetes] docker (docker)")],
            name="kubernetes docker"))
    return found


DECODER_OPTIONS = {"max_bytes": SIZE, "timeout": DURATION, "fields": BOOL}


def decoder_options(key: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """A ``cri``/``docker`` table's options, parsed; a ConfigError naming the bad one."""
    parsed = {}
    for name, value in options.items():
        kind = DECODER_OPTIONS.get(name)
        if kind is None:
            raise ConfigError(f"{key}: unknown option {name!r} (known: {', '.join(sorted(DECODER_OPTIONS))})")
        try:
            parsed[name] = kind.parse(value)
        except ValueError as exc:
            raise ConfigError(f"{key} {name}: {exc}") from None
    return parsed
