"""Small text files (angle files, IMOD .xf, task lists): one checked decoder.

Not a format of its own: the rules every text reader of the engine shares, so
that a binary file given by mistake (an image stack named as a .tlt), a file
saved as UTF-16 by a Windows editor or a huge file all get the same one-line
answer.  Encodings: UTF-8 (with or without a byte order mark) and UTF-16
with its byte order mark; line ends LF, CRLF or CR (``str.splitlines``).
"""
from __future__ import annotations

import os
from typing import List

from .. import InputError

#: Largest text file read (bytes): far above any angle or transform file.
TEXT_LIMIT = 16 << 20


def read_text_lines(path: str, what: str) -> List[str]:
    """The lines of the small text file ``path`` (angles, transforms, task
    lists), without their line ends.

    ``what`` names the file in messages (e.g. "tilt-angle file").  Decoded as
    UTF-8 (a BOM and CRLF line ends accepted) or UTF-16 with its BOM; at most
    :data:`TEXT_LIMIT` bytes are read, so a stack given by mistake is never
    read whole.  Returns a list of str.

    Raises InputError (one line naming ``path``) for a missing or unreadable
    file, a folder, binary data (a NUL byte), text that is not UTF-8, or a
    file over 16 MB."""
    if not os.path.exists(path):
        raise InputError(f"{path}: {what} not found")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a folder; give the {what}")
    limit = TEXT_LIMIT
    try:
        with open(path, "rb") as f:
            raw = f.read(limit + 1)       # never the whole of a stack given by mistake
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}); check the file and its "
                         "permissions") from None
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") and len(raw) <= limit:   # UTF-16 (Windows editors)
        try:
            return raw.decode("utf-16").splitlines()
        except UnicodeDecodeError:
            pass
    if b"\0" in raw[:65536] or (len(raw) > limit and b"\0" in raw):
        raise InputError(f"{path}: binary data, not a text {what} (was an image stack given?)")
    if len(raw) > limit:
        raise InputError(f"{path}: over {limit >> 20} MB, too large for a {what}; check the file name")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a text {what} (byte {exc.start + 1} is not UTF-8 text)") from None
    return text.splitlines()
