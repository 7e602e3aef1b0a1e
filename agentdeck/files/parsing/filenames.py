"""The name an upload is shown and stored under: never a path, printable, at most 255 bytes."""

from __future__ import annotations

import unicodedata

MAX_FILENAME_BYTES = 255  # ext4, APFS, NTFS (in UTF-16 units) and FileMetadata.name

# Bidirectional overrides turn "invoice\u202efdp.exe" into what displays as "invoiceexe.pdf".
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)

# Tabs and line breaks become spaces; other control characters (str.split() also counts
# \x1c-\x1f as whitespace) are dropped.
_WHITESPACE_CONTROLS = str.maketrans(dict.fromkeys("\t\n\r\x0b\x0c", " "))


def sanitize_filename(name: str) -> str:
    """The name to show and store for an upload: never a path, printable, at most 255 bytes."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = name.translate(_WHITESPACE_CONTROLS)
    name = "".join(
        ch
        for ch in name
        if unicodedata.category(ch) not in ("Cc", "Cs") and ch not in _BIDI_CONTROLS
    )
    name = " ".join(name.split())
    # Leading dots hide a file ("..", ".bashrc"); trailing dots and spaces vanish on Windows.
    name = name.lstrip(". ").rstrip(". ")
    if len(name.encode("utf-8")) > MAX_FILENAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem or len(ext.encode("utf-8")) > 16 or " " in ext:
            stem, ext = name, ""
        else:
            ext = "." + ext
        budget = MAX_FILENAME_BYTES - len(ext.encode("utf-8"))
        # Cut on bytes, then drop the partial character the cut may leave.
        stem = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(". ")
        name = (stem or "file") + ext
    return name or "file"
