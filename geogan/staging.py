"""Staged folders: an output folder built under a hidden name and renamed when complete.

A folder output (``export-chips``' chip folder) is built in a hidden *stage* beside it,
``.NAME.partial``, and moved into place only when complete, so a failure or Ctrl-C never
leaves a folder under the real name whose manifest lists files that are not there. Each
file in the stage is written whole under a hidden temporary name and renamed
(:func:`write_whole`), so a file in the stage is always complete; an interrupted stage
keeps a record of the settings it was started with (:func:`make_stage`), so that the same
job can resume it. The file counterpart is :func:`geogan.outputs.atomic_file`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from geogan.errors import OutputError, OutputExistsError
from geogan.outputs import check_parent_writable

#: Suffix of a stage folder, and of a file being written in it (both hidden: a leading dot).
PARTIAL_SUFFIX = ".partial"


def check_folder_output(out: Path, overwrite: bool) -> None:
    """Refuse a folder output that cannot or may not be written, before any work is done.

    Raises:
        OutputExistsError: If ``out`` is a folder that is not empty and ``overwrite`` is
            false.
        OutputError: If ``out`` is a file, or the folder the stage goes in (beside
            ``out``) is not writable.
    """
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} exists and is not a folder; choose another output.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(
            f"{out} exists and is not empty; pass --overwrite to replace it, "
            "or choose another folder."
        )
    check_parent_writable(out, "folder")  # the stage is made beside it


def stage_path(out: Path) -> Path:
    """The hidden folder beside ``out`` that it is built in."""
    return out.absolute().parent / f".{out.name}{PARTIAL_SUFFIX}"


def published_path(stage: Path) -> Path:
    """The output that ``stage`` becomes (the inverse of :func:`stage_path`)."""
    return stage.parent / stage.name[1:-len(PARTIAL_SUFFIX)]


def make_stage(stage: Path, settings_name: str, settings: str) -> None:
    """A fresh ``stage`` (an earlier one is removed) holding the job's settings, as the
    text file ``settings_name``, so that an interrupted job can be resumed.

    Raises:
        OutputError: If it cannot be created.
    """
    shutil.rmtree(stage, ignore_errors=True)
    try:
        stage.parent.mkdir(parents=True, exist_ok=True)
        stage.mkdir()
    except OSError as error:
        raise OutputError(f"cannot create {stage}: {error.strerror}.") from error
    write_text(stage / settings_name, settings)


def write_whole(path: Path, content: bytes | bytearray, what: str) -> None:
    """``content`` under ``path``, written whole under a hidden temporary name and renamed.

    Raises:
        OutputError: If it cannot be written (the temporary file is removed, as it is on
            Ctrl-C: nothing half-written is left).
    """
    temporary = path.with_name(f".{path.name}{PARTIAL_SUFFIX}")
    try:
        with open(temporary, "wb") as file:
            file.write(content)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise OutputError(f"cannot write the {what} {path}: {error.strerror or error}") from None
    except BaseException:  # Ctrl-C (KeyboardInterrupt) between the open and the rename
        temporary.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """:func:`write_whole` for a text file."""
    write_whole(path, text.encode(), "file")


def remove_partial_files(stage: Path) -> None:
    """Delete files left half-written (in the stage's sub-folders) by a process that was
    killed outright."""
    for leftover in stage.glob(f"*/.*{PARTIAL_SUFFIX}"):
        leftover.unlink(missing_ok=True)


def publish(stage: Path, out: Path) -> None:
    """Move the finished ``stage`` folder to ``out``, replacing what was there."""
    if out.exists():
        old = out.absolute().parent / f".{out.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        stage.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        stage.rename(out)
