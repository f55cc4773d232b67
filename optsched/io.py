"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Everything optsched writes (reports, schedules, caches, checkpoints, exported scenarios)
goes through here: the bytes land in a temporary file in the target's folder, are flushed
to disk, and replace the target with `os.replace` (atomic on POSIX and Windows).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on an exception
    it is removed and `path` is left as it was. `suffix` defaults to `path`'s own (some
    writers, e.g. numpy's savez and matplotlib, pick the format from it)."""
    path = Path(path)
    _refuse_special(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.",
                                   suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    except OSError as exc:       # named by the file asked for, not the temporary one
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, _file_mode(path))
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _refuse_special(path: Path) -> None:
    """`os.replace` would put a regular file in place of a link, a device (/dev/full) or a
    pipe, silently: such a target is refused, named, and left as it is."""
    try:
        st = path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return
    if not stat.S_ISREG(st.st_mode):
        kind = ("a symbolic link" if stat.S_ISLNK(st.st_mode) else "a folder"
                if stat.S_ISDIR(st.st_mode) else "not a regular file")
        raise OSError(errno.EINVAL, f"is {kind}; optsched writes only regular files "
                      "(give a file path)", str(path))


def _file_mode(path: Path) -> int:
    """The target's own mode if it exists, else what a plain open() would give (0666 less
    the umask): mkstemp's 0600 would otherwise hide reports from their readers."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())
