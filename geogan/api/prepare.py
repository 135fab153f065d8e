"""Chip folders opened for the Python API: :func:`prepare_data` and :class:`ChipData`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from geogan.api.figures import RGB, chips_figure
from geogan.errors import ConfigError
from geogan.nn.config import check_kind_fits_chips
from geogan.raster.band_stats import BandStatistics
from geogan.training.chip_folder import ChipFolder, DomainInfo
from geogan.training.folder_union import ChipFolders, folder_paths, open_chip_folders

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["DATASET_TYPES", "ChipData", "prepare_data"]

DATASET_TYPES = {"pix2pix": "Pix2Pix", "cyclegan": "CycleGAN"}
"""arcgis.learn's dataset type names, by geogan's model kind."""


class ChipData:
    """A chip folder opened for the models: what :func:`prepare_data` returns.

    Attributes:
        path: The chip folder (the first, when several are trained on as one).
        paths: Every chip folder.
        dataset_type: ``Pix2Pix`` (paired chips) or ``CycleGAN``.
        chip_size: Side of the square chips, pixels.
        batch_size: Chips per training step, or ``None`` for the preset's (4 faithful, 1).
        val_split_pct: Validation share drawn from folders without geogan metadata.
        seed: Seed of that draw, and the models' training seed unless they set one.
        folder: The underlying :class:`~geogan.training.dataset.ChipFolder` (split, domains).
    """

    def __init__(self, folder: ChipFolder, dataset_type: str, batch_size: int | None,
                 val_split_pct: float, seed: int) -> None:
        self.folder = folder
        self.path = folder.root
        self.paths = [part.root for part in folder.parts] or [folder.root]
        self.dataset_type = dataset_type
        self.chip_size = folder.tile_size
        self.batch_size = batch_size
        self.val_split_pct = val_split_pct
        self.seed = seed

    @property
    def kind(self) -> str:
        """geogan's model kind: ``pix2pix`` or ``cyclegan``."""
        return "pix2pix" if self.dataset_type == "Pix2Pix" else "cyclegan"

    @property
    def paired(self) -> bool:
        """Whether chips come in input/target pairs (``images/`` + ``images2/``)."""
        return self.folder.paired

    @property
    def domains(self) -> dict[str, DomainInfo]:
        """``a`` (input) and ``b`` (target): folder, bands, dtype, nodata, statistics."""
        return self.folder.domains

    @property
    def bands(self) -> dict[str, int]:
        """Band count of each domain."""
        return {d: info.bands for d, info in self.domains.items()}

    @property
    def n_channels(self) -> int:
        """Bands of the input domain (arcgis.learn's ``n_channel``)."""
        return self.domains["a"].bands

    @property
    def dtypes(self) -> dict[str, str]:
        """Data type of each domain's chips."""
        return {d: info.dtype for d, info in self.domains.items()}

    @property
    def statistics(self) -> dict[str, tuple[BandStatistics, ...]]:
        """Per-band statistics of each domain's training chips (min, max, mean, std,
        2nd and 98th percentiles): what the models' value mapping is made from."""
        return {d: info.statistics for d, info in self.domains.items()}

    @property
    def train_count(self) -> int:
        """Training chips of the input domain (pairs, when paired)."""
        return len(self.folder.train["a"])

    @property
    def val_count(self) -> int:
        """Validation chips of the input domain (pairs, when paired)."""
        return len(self.folder.val["a"])

    def __repr__(self) -> str:
        where = self.path if len(self.paths) == 1 else f"{len(self.paths)} folders: " + \
            ", ".join(str(p) for p in self.paths)
        lines = [f"ChipData({self.dataset_type}, {where})",
                 f"  chips     {self.chip_size} × {self.chip_size}, {self.folder.source} "
                 f"folder, {self.train_count} train / {self.val_count} val"
                 + (" pairs" if self.paired else " (domain a)")]
        for domain, info in self.domains.items():
            ranges = ", ".join(f"{s.p2:.4g}…{s.p98:.4g}" for s in info.statistics)
            lines.append(f"  {domain} ({info.folder + '/':9}) {info.bands} band(s) {info.dtype}, "
                         f"nodata {info.nodata}, 2–98 %: {ranges}")
        return "\n".join(lines)

    def show_batch(self, rows: int = 4, rgb_bands: RGB = None, split: str = "train") -> Figure:
        """A figure of ``rows`` chips: input | target when paired, a sample of each
        domain side by side when unpaired. Values are shown as the training previews
        show them (the models' value mapping; invalid pixels black).

        Args:
            rows: Chips to show (fewer when the split holds fewer).
            rgb_bands: Bands to show (0-based), see :data:`geogan.api.figures.RGB`.
            split: ``train`` or ``val``.

        Raises:
            ConfigError: Without matplotlib, for a bad band or an empty split.
        """
        return chips_figure(self.folder, split, self.seed, rows, rgb_bands)


def prepare_data(path: ChipFolders, dataset_type: str | None = None, *,
                 batch_size: int | None = None, chip_size: int | None = None,
                 val_split_pct: float = 0.1, seed: int = 42) -> ChipData:
    """Open a chip folder for :class:`Pix2Pix` or :class:`CycleGAN` (``arcgis.learn``'s
    ``prepare_data``).

    Args:
        path: A folder from ``geogan export-chips``, or from ArcGIS Pro's *Export
            Training Data For Deep Learning* (*Export Tiles*): ``images/`` + ``images2/``
            (paired) or ``train_a/`` + ``train_b/`` (unpaired); or a list of such
            folders, trained on as one (same layout, bands, data types and tile size;
            each keeps its split; statistics pooled over all their training chips).
        dataset_type: ``Pix2Pix`` or ``CycleGAN`` (any case); ``None`` infers it from the
            layout (paired → Pix2Pix, unpaired → CycleGAN).
        batch_size: Chips per training step; ``None`` for the preset's (4 for
            ``faithful``, 1 for ``paper`` and ``tiny``).
        chip_size: ``None`` for the chips' own size; a number must equal it (geogan
            does not resize chips).
        val_split_pct: Share of the chips drawn at random for validation, for folders
            without geogan metadata only: geogan's folders carry their own spatial split
            (``geogan export-chips --val-fraction``).
        seed: Seed of that draw, and the models' training seed unless they set one.

    Returns:
        The opened data.

    Raises:
        ChipFolderError: A folder is missing, empty or inconsistent, or the folders
            differ in layout, bands, data types or tile size.
        ConfigError: An unknown dataset type, Pix2Pix on unpaired chips, a chip size other
            than the chips', or a value out of range.
    """
    kind = None if dataset_type is None else _kind(dataset_type)
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, not {batch_size}")
    if seed < 0:
        raise ConfigError(f"seed must not be negative, not {seed}")
    folder = open_chip_folders(path, val_fraction=val_split_pct, seed=seed)
    where = ", ".join(str(p) for p in folder_paths(path))
    if kind is not None:
        check_kind_fits_chips(kind, folder.paired, where, "use dataset_type='CycleGAN'")
    if chip_size is not None and chip_size != folder.tile_size:
        raise ConfigError(f"the chips in {where} are {folder.tile_size} × {folder.tile_size} "
                          f"pixels, not {chip_size}; geogan does not resize chips: export them "
                          f"with --tile-size {chip_size}, or leave chip_size=None")
    kind = kind or ("pix2pix" if folder.paired else "cyclegan")
    return ChipData(folder, DATASET_TYPES[kind], batch_size, val_split_pct, seed)


def _kind(dataset_type: str) -> str:
    kind = dataset_type.lower()
    if kind not in DATASET_TYPES:
        raise ConfigError(f"unknown dataset_type {dataset_type!r}; use Pix2Pix or CycleGAN")
    return kind
