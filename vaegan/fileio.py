"""Atomic file writes: every file the project writes appears whole or not at all.

A failure (a bad grid, a full disk, a kill) never leaves a half-written file behind and never
clobbers the good file that was there before.
"""

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None], make_parents: bool = False) -> Path:
    """Call `write(handle)` on a temp file in the target folder, fsync, then os.replace it."""
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
