"""Output paths of long jobs: checked (and their folders made) before the job starts.

A job that trains for minutes and then cannot write its result loses it. So the
command line calls :func:`writable_file` / :func:`writable_folder` on every output
path first: the folder is created if missing and a test file is written into it,
which catches a missing or read-only folder, a file where a folder should be, and a
full disk's most common cousin, a folder we may not write. :func:`spare_paths` names
places for a rescue copy when the final write fails anyway.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path


class OutputPathError(ValueError):
    """An output path that cannot be written; the message names the path and the reason."""


def writable_folder(path: str | os.PathLike[str]) -> Path:
    """``path`` as a folder that exists (made here if missing, with its parents) and accepts new files.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> writable_folder(root / "a" / "b").is_dir()
    True
    >>> _ = (root / "f").write_text("x")
    >>> writable_folder(root / "f" / "sub")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hookgnn.outpaths.OutputPathError: cannot create folder '.../f/sub': ... is a file
    """
    folder = Path(path)
    if os.fspath(path) == "":
        raise OutputPathError("the path is empty")
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(f"{os.fspath(folder)!r} is a file, not a folder")
    blocker = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OutputPathError(f"cannot create folder {os.fspath(folder)!r}: {os.fspath(blocker)!r} is a file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputPathError(f"cannot create folder {os.fspath(folder)!r}: {err.strerror or err}") from None
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".hookgnn-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputPathError(f"cannot write into folder {os.fspath(folder)!r}: {err.strerror or err}") from None
    return folder


def writable_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a file that can be (over)written: not a folder, its folder made and writable.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> writable_file(root / "new" / "m.pt").parent.is_dir()
    True
    >>> writable_file(root)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hookgnn.outpaths.OutputPathError: '...' is a folder; give a file name such as '.../model.pt'
    """
    file = Path(path)
    if os.fspath(path) == "":
        raise OutputPathError("the path is empty")
    if file.is_dir():
        raise OutputPathError(f"{os.fspath(file)!r} is a folder; give a file name such as "
                              f"{os.fspath(file / 'model.pt')!r}")
    writable_folder(file.parent)
    return file


def spare_paths(path: str | os.PathLike[str]) -> list[Path]:
    """Places for a rescue copy of ``path``: beside it, in the working folder, in the temp folder.

    Each name carries the time, so no existing file is overwritten.

    >>> [p.parent.name for p in spare_paths("runs/m.pt")][:1]
    ['runs']
    """
    file = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{file.stem}.rescued-{stamp}-{os.getpid()}{file.suffix}"
    return [file.parent / name, Path.cwd() / name, Path(tempfile.gettempdir()) / name]
