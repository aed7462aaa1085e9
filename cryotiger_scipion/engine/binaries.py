"""Locating external programs (Gctf, novaCTF) without Scipion."""
from __future__ import annotations

import os
import shutil
from typing import Iterable, Optional


def is_executable(path: str) -> bool:
    """True when ``path`` is a file this user may execute."""
    return os.path.isfile(path) and os.access(path, os.X_OK)


def search_executable(folders: Iterable[Optional[str]], names: Iterable[str]) -> Optional[str]:
    """First executable called one of ``names`` in ``folders`` (in order; None
    entries are skipped), then on PATH; None when there is none."""
    names = tuple(names)
    for folder in folders:
        if folder:
            for name in names:
                path = os.path.join(folder, name)
                if is_executable(path):
                    return path
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None
