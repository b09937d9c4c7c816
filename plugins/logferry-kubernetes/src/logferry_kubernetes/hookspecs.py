"""The hook logferry-kubernetes adds: other plugins give the records of a container's log more fields.

logferry-kubernetes registers this module through ``logferry_addhooks``. Implement the hook in a
plugin of your own (its ``logferry`` entry point), marked optional so that your plugin also loads
where logferry-kubernetes is not installed (or is registered after yours)::

    @logferry.hookimpl(optionalhook=True)
    def logferry_kubernetes_fields(path, fields):
        return {"app": labels_of(fields["pod_uid"]).get("app")}
"""

from __future__ import annotations

from typing import Any

from logferry import hookspec


@hookspec
def logferry_kubernetes_fields(path: str, fields: dict[str, str]) -> dict[str, Any] | None:
    """More fields for every record of the container log at ``path``.

    Called once per log file (and path) when its first records are decoded, on logferry's
    processing thread (never the event loop; it holds up that file's records while it runs, so
    keep it quick: look labels up in a cache kept fresh elsewhere, not on the network). Only called
    for paths in kubelet's or Docker's layout.

    :param path: the log's path, e.g. ``/var/log/pods/shop_web-7d4b_0b1e…/web/0.log``.
    :param fields: what the path tells: ``namespace``, ``pod``, ``pod_uid`` and ``container``
        (kubelet), or ``container_id`` (Docker). A copy: changing it changes nothing.
    :return: fields to add (merged in; a plugin registered later wins a name two give; a name of a
        record's own keys, such as ``ts``, becomes ``parsed_ts``), or None.
    """
