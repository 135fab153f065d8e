"""Writing output files so that nothing is ever half-written under its real name.

Every file geogan writes (translated rasters, model files, checkpoints) is first written
under a hidden temporary name in the target folder and renamed over the real name only
when complete: ``os.replace`` is atomic within a folder, so a reader sees the old file
or the new one, never a mixture. An error or Ctrl-C deletes the temporary file.
"""

from __future__ import annotations

import errno
import glob
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from geogan.errors import OutputError, OutputExistsError


def check_output_file(path: Path, overwrite: bool, what: str = "output") -> None:
    """Refuse an output that cannot or may not be written, before any work is done.

    Raises:
        OutputExistsError: If ``path`` exists and ``overwrite`` is false.
        OutputError: If ``path`` is a folder, or the folder it would go in exists and is
            not writable (missing folders are created, like ``mkdir -p``).
    """
    if path.is_dir():
        raise OutputError(f"the {what} {path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; pass --overwrite to replace it")
    check_parent_writable(path, what)


def check_parent_writable(path: Path, what: str = "output") -> None:
    """Refuse an output (file or folder) whose folder exists and is not a writable folder;
    missing folders are created later, like ``mkdir -p``.

    Raises:
        OutputError: If the nearest existing folder above ``path`` is not a writable folder.
    """
    existing = path.absolute().parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write the {what} {path}: {existing} is not a folder")
    if not os.access(existing, os.W_OK):
        raise OutputError(f"cannot write the {what} {path}: the folder {existing} "
                          "is not writable")


_TOKEN_BYTES = 4
"""Random bytes in a temporary name (as hex)."""


@contextmanager
def atomic_file(path: Path, what: str = "output") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed to ``path`` on success.

    Args:
        path: The final name; its folder is created if missing.
        what: What the file is, for error messages ("model file", "checkpoint").

    Yields:
        The temporary path (an empty file exists there).

    Raises:
        OutputError: If the folder cannot be created or written, or the rename fails.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = _create_temporary(path)
    except OSError as error:
        raise OutputError(f"cannot write the {what} {path}: {error.strerror or error}") from None
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as error:
        raise OutputError(f"cannot write the {what} {path}: {error.strerror or error}") from None
    finally:
        for leftover in (temporary, temporary.with_name(temporary.name + ".aux.xml")):
            leftover.unlink(missing_ok=True)


def remove_partials(path: Path) -> None:
    """Remove the temporary files that :func:`atomic_file` made for ``path`` in a process
    that was killed before it could clean up (a Dask worker stopped mid-scene)."""
    token = "?" * 2 * _TOKEN_BYTES
    pattern = f".{glob.escape(path.stem)}.{token}.partial{glob.escape(path.suffix)}*"
    for leftover in path.parent.glob(pattern):
        leftover.unlink(missing_ok=True)


def _create_temporary(path: Path) -> Path:
    """A new empty hidden file beside ``path``, with the permissions the umask gives new
    files (``tempfile.mkstemp`` would make it private, and the rename would keep that)."""
    for _ in range(100):
        temporary = path.with_name(
            f".{path.stem}.{secrets.token_hex(_TOKEN_BYTES)}.partial{path.suffix}")
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return temporary
    raise FileExistsError(errno.EEXIST, "no free temporary name", os.fspath(path))
