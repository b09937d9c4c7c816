"""How a file's bytes are text: its codec, the bytes of its newline, and the byte-order mark it may
start with. Lines are cut at the newline *in the file's encoding* (``0A 00`` in UTF-16LE), so every
offset stays a byte offset in the file; the processing stage decodes each line with the codec."""

from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Text:
    codec: str
    """The Python codec each line is decoded with (``"utf-16-le"``: a UTF-16 file's byte order is known)."""
    newline: bytes
    """``"\\n"`` encoded: what lines end with. Longer than a byte, it is only found at offsets that are
    a multiple of its length (a UTF-16 character's bytes may look like a newline across two)."""
    bom: bytes = b""
    """A byte-order mark the file may start with: skipped, never part of a line."""


UTF8 = Text("utf-8", b"\n", codecs.BOM_UTF8)

_WIDE = {  # encodings with a byte order: (little-endian BOM, big-endian BOM)
    "utf-16": (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE),
    "utf-32": (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE),
}


def text_of(encoding: str, head: bytes | memoryview) -> Text | None:
    """The text of a file in ``encoding`` (a canonical codec name, see ``settings.parse_encoding``)
    that starts with ``head``; None while ``head`` is too short to tell its byte order.

    ``"utf-16"``/``"utf-32"`` take the byte order from the BOM, little-endian without one (as
    Windows writes them); ``"utf-16-le"`` and the like skip a BOM of their own order too.
    """
    if encoding in ("utf-8", "utf-8-sig"):
        return UTF8
    family = encoding[:6]
    if family in _WIDE:
        little, big = _WIDE[family]
        if encoding == family:
            if len(head) < len(big) and big.startswith(bytes(head)):
                return None
            order = "be" if bytes(head[:len(big)]) == big else "le"
            codec = f"{family}-{order}"
        else:
            codec = encoding
        bom = big if codec.endswith("be") else little
        return Text(codec, "\n".encode(codec), bom)
    return Text(encoding, "\n".encode(encoding))
