"""Typed errors raised by the geogan library.

Every error a user can cause derives from :class:`GeoganError`. Its message is one
sentence that says what is wrong and, where it helps, what to do; the command line
prints it on one line and exits with :attr:`GeoganError.exit_code`. Errors outside
this hierarchy are bugs and keep their traceback.
"""

from __future__ import annotations


class GeoganError(Exception):
    """Base class of the errors a user can cause and fix."""

    exit_code: int = 1


class InputError(GeoganError):
    """An input file or argument cannot be used as it is."""


class RasterNotFoundError(InputError):
    """A raster path does not exist."""


class NotARasterError(InputError):
    """A file exists but GDAL cannot open it as a raster."""


class UnreadableError(InputError):
    """A file or folder exists but this user may not read it (its permissions)."""


class MissingCRSError(InputError):
    """A raster has no coordinate reference system or no geotransform."""


class UnsupportedRasterError(InputError):
    """A raster's data type, size or band layout is not supported."""


class NoOverlapError(InputError):
    """Two footprints (or a footprint and an area of interest) do not intersect."""


class FootprintError(InputError):
    """A footprint cannot be placed in another raster's CRS."""


class AOIError(InputError):
    """An area-of-interest file cannot be read or holds no polygon."""


class NoChipsError(InputError):
    """Tiling produced no chip that passes the filters."""


class OutputExistsError(GeoganError):
    """An output already exists and ``overwrite`` was not given."""


class OutputError(GeoganError):
    """An output cannot be written (folder missing, not writable, disk full)."""


class ConfigError(InputError):
    """A model or training setting is unknown or out of range."""


class ChipFolderError(InputError):
    """A chip folder is missing, empty, or its chips do not agree with each other."""


class ModelFileError(InputError):
    """A file is not a geogan model file, or it is damaged or of a newer version."""


class SceneMismatchError(InputError):
    """A scene is far from what the model was trained on (pixel size or values) and
    ``--strict`` asked for an error rather than a warning."""


class DeviceError(InputError):
    """The requested device or precision is not available on this machine."""


class CheckpointError(InputError):
    """A checkpoint cannot be resumed: missing, damaged, or made with other settings."""


class DistributedError(GeoganError):
    """The training processes that torchrun started cannot work together."""


class WorkerError(GeoganError):
    """A worker process stopped unexpectedly (killed, or out of memory)."""


class ExportInterrupted(GeoganError):
    """An export was interrupted (Ctrl-C); its stage folder is kept to resume from."""

    exit_code = 130


class TrainingInterrupted(GeoganError):
    """Training was interrupted (Ctrl-C); a checkpoint was written to resume from."""

    exit_code = 130


class GeoganWarning(UserWarning):
    """Something a user should know that does not stop the work (e.g. a scene without a
    CRS is translated, but its output has none either). The command line prints it as
    one ``Warning:`` line."""
