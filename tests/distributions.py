"""Install-free plugin distributions for tests: a module plus a ``.dist-info`` with entry points,
in a directory put on ``sys.path`` (or PYTHONPATH for a subprocess) — exactly what pip would leave."""

from __future__ import annotations

import textwrap
from pathlib import Path


def make_distribution(root: Path, dist: str, module: str, source: str, entry_name: str | None = None,
                      version: str = "1.0") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[logferry]\n{entry_name or dist} = {module}\n")
    return root


BROKEN = """
raise RuntimeError("this plugin is broken on purpose")
"""

MEMORY_SINK = """
import logferry

RECEIVED = []

class MemorySink(logferry.Sink):
    async def send(self, batch):
        RECEIVED.append(bytes(batch.data))

@logferry.hookimpl
def logferry_sink_schemes():
    return ["memory"]

@logferry.hookimpl
def logferry_make_sink(url, scheme, options, settings):
    if scheme == "memory":
        return MemorySink(url)
"""

CLAIMS_FILE = """
import logferry

@logferry.hookimpl
def logferry_sink_schemes():
    return ["file"]
"""

EXTRA_SOURCES = """
import logferry

@logferry.hookimpl
def logferry_sources(settings):
    return [str(settings.state_dir.parent / "extra" / "*.log")]
"""

SCHEMES_RAISE = """
import logferry

@logferry.hookimpl
def logferry_sink_schemes():
    raise ValueError("cannot say")

@logferry.hookimpl
def logferry_sources(settings):
    raise AssertionError("a failed plugin's hooks must not run")
"""

MISSPELLED_HOOK = """
import logferry

@logferry.hookimpl
def logferry_sink_scheme():  # missing the s
    return ["typo"]
"""

NEWER_HOOK = """
import logferry

@logferry.hookimpl(optionalhook=True)
def logferry_from_a_newer_version():
    return None

@logferry.hookimpl
def logferry_sink_schemes():
    return ["newer"]
"""

SOURCES_RAISE = """
import logferry

@logferry.hookimpl
def logferry_sources(settings):
    raise OSError("the inventory service is down")
"""
