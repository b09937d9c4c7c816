"""Where kubelet and dockerd write containers' logs: the globs to follow, and the fields a path tells.

kubelet (any CRI runtime: containerd, CRI-O, cri-dockerd)::

    <pods_root>/<namespace>_<pod>_<pod uid>/<container>/<restart count>.log
                                                        <restart count>.log.<YYYYMMDD-HHMMSS>      its rotations
                                                        <restart count>.log.<YYYYMMDD-HHMMSS>.gz   older, compressed
                                                        ….log.<YYYYMMDD-HHMMSS>.tmp                compressing (gzip bytes)

dockerd's json-file driver::

    <containers_root>/<id>/<id>-json.log, <id>-json.log.1, .2, … (max-file), .N.gz with compress=true

Namespaces, pods and containers are DNS names (no ``_``), so the pod directory splits at its two ``_``.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence

_POD_LOG = re.compile(
    r"(?:^|/)(?P<namespace>[^/_]+)_(?P<pod>[^/_]+)_(?P<pod_uid>[^/_]+)/(?P<container>[^/]+)/"
    r"\d+\.log(?:\.\d{8}-\d{6}(?:\.gz)?)?$", re.ASCII)
_DOCKER_LOG = re.compile(r"(?:^|/)(?P<container_id>[^/]+)/(?P=container_id)-json\.log(?:\.\d+(?:\.gz)?)?$", re.ASCII)


def path_fields(path: str) -> dict[str, str]:
    """The fields a log's path tells: ``namespace``, ``pod``, ``pod_uid`` and ``container`` for
    kubelet's layout, ``container_id`` for Docker's; none for any other path (also for a rotation's
    name: ``0.log.20240501-100000`` is still that container's log)."""
    match = _POD_LOG.search(path) or _DOCKER_LOG.search(path)
    return match.groupdict() if match else {}


def pod_globs(root: str, namespaces: Sequence[str], pods: Sequence[str], containers: Sequence[str]) -> list[str]:
    """The logs (and their rotations) of the containers the three lists of globs select."""
    base = glob.escape(os.fspath(root))
    # One pattern for a log and its rotations, compressed ones included (HALF_WRITTEN is left out): a pattern that
    # matches nothing yet (no rotation so far) is said at every start.
    return [f"{base}/{ns}_{pod}_*/{container}/*.log*" for ns in namespaces for pod in pods for container in containers]


def pod_excludes(root: str, namespaces: Sequence[str], pods: Sequence[str], containers: Sequence[str]) -> list[str]:
    """Exclude patterns (matched like ``[sources] exclude``: ``*`` crosses ``/``) for the namespaces,
    pods and containers left out."""
    base = glob.escape(os.fspath(root))
    return ([f"{base}/{ns}_*" for ns in namespaces] + [f"{base}/*_{pod}_*" for pod in pods]
            + [f"{base}/*_*_*/{container}/*" for container in containers])


def docker_globs(root: str) -> list[str]:
    """Docker's json-file logs and their rotations (``-json.log.1``, …, and ``.N.gz`` with ``compress``)."""
    return [glob.escape(os.fspath(root)) + "/*/*-json.log*"]


HALF_WRITTEN = ["*.tmp"]
"""Left out: kubelet's ``.tmp``, a rotation being compressed; renamed to ``.gz`` once whole. A
compressed rotation is recognised by the core as the file it was compressed from (nothing is
shipped twice; what was not shipped yet is read from it)."""
