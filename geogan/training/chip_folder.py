"""Chip folders for training: what they hold, their split, and reading one chip.

:func:`open_chip_folder` reads two kinds of folders:

* geogan's own (``geogan export-chips``): ``geogan-chips.json`` gives the mode, tile
  size, each domain's bands, data type, nodata and statistics, and ``index.geojson``
  gives each chip's split (spatially disjoint blocks, see :mod:`geogan.grids.split`).
* Folders without that metadata, such as ArcGIS Pro's *Export Training Data For Deep
  Learning* output or hand-made ones: ``images/`` + ``images2/`` (paired, matched by file
  name) or ``train_a/`` + ``train_b/`` (also ``trainA/`` + ``trainB/``; unpaired). Every
  chip's header is checked, the statistics are computed from the training chips, and
  the validation split is a seeded *random* draw of chips: unlike geogan's block
  split it is not spatial, so overlapping or neighbouring chips may sit on both sides.

The format itself (folder and file names) is :mod:`geogan.chips.layout`.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from geogan.chips.layout import (
    CHIP_EXTENSIONS,
    CHIPS_FORMAT,
    CHIPS_FORMAT_VERSION,
    INDEX_NAME,
    METADATA_NAME,
    PAIRED_FOLDERS,
    UNPAIRED_ALIASES,
    UNPAIRED_FOLDERS,
)
from geogan.errors import ChipFolderError, ConfigError, NoChipsError
from geogan.nn.normalization import BandNormalization
from geogan.progress import Counter, ProgressCallback
from geogan.raster.band_stats import BandStatistics, StatisticsAccumulator
from geogan.raster.io import gdal_reason, valid_mask

#: Chips below which a random split keeps no validation chip.
MIN_CHIPS_FOR_VAL = 10

DOMAINS = ("a", "b")
SPLITS = ("train", "val")


_GET_STARTED = "make one with `geogan export-chips`"


@dataclass(frozen=True)
class DomainInfo:
    """What the chips of one domain hold.

    Attributes:
        folder: The domain's sub-folder of the chip folder.
        bands: Bands of every chip.
        dtype: Data type of every chip.
        nodata: Nodata value of the chips (NaN allowed), or None.
        statistics: Per-band statistics of the domain's training chips.
    """

    folder: str
    bands: int
    dtype: str
    nodata: float | None
    statistics: tuple[BandStatistics, ...]

    def normalization(self) -> BandNormalization:
        """The domain's mapping to [-1, 1] (see :mod:`geogan.nn.normalization`)."""
        return BandNormalization.from_statistics(self.statistics, self.dtype, self.nodata)


@dataclass(frozen=True)
class FolderPart:
    """One of the chip folders a training set was opened from, and what it gave.

    Attributes:
        root: The folder.
        source: ``geogan`` or ``arcgis`` (who wrote it).
        train: Its training chips (pairs when paired; domain a's chips otherwise).
        val: Its validation chips, likewise.
    """

    root: Path
    source: str
    train: int
    val: int

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for the model file's training record."""
        return {"path": str(self.root.absolute()), "source": self.source,
                "train_chips": self.train, "val_chips": self.val}


@dataclass(frozen=True)
class ChipFolder:
    """A chip folder opened for training: its layout, domains and split.

    Attributes:
        root: The folder.
        mode: ``paired`` (Pix2Pix) or ``unpaired`` (CycleGAN).
        tile_size: Side of the square chips, pixels.
        domains: ``"a"`` (input) and ``"b"`` (target) descriptions.
        source: ``geogan`` when ``geogan-chips.json`` was read, ``arcgis`` otherwise.
        train: Per domain, the training chips. When paired, ``train["a"][i]`` and
            ``train["b"][i]`` are the two chips of pair ``i``.
        val: Per domain, the validation chips, likewise.
        parts: The folders it was opened from, with their chip counts, when it is the
            union of several (:func:`geogan.training.folder_union.open_chip_folders`).
    """

    root: Path
    mode: str
    tile_size: int
    domains: dict[str, DomainInfo]
    source: str
    train: dict[str, tuple[Path, ...]]
    val: dict[str, tuple[Path, ...]]
    parts: tuple[FolderPart, ...] = ()

    @property
    def paired(self) -> bool:
        """Whether chips of a and b come in pairs."""
        return self.mode == "paired"


def open_chip_folder(
    path: str | os.PathLike[str],
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> ChipFolder:
    """Open a chip folder for training.

    Args:
        path: A folder written by ``geogan export-chips``, by ArcGIS Pro's *Export
            Training Data For Deep Learning*, or by hand (see the module docstring).
        val_fraction: Without geogan's metadata only: share of the chips (of the
            pairs, or of each domain's chips when unpaired) drawn at random for
            validation; at least one when there are 10 chips or more, none below.
        seed: Without geogan's metadata only: seed of that draw and of the
            statistics' subsample.
        progress: Called with (chips done, chips in all) while chips are read.

    Returns:
        The folder's layout, domains and split.

    Raises:
        ChipFolderError: The folder is missing or empty, has neither layout, its
            metadata is damaged or from a newer geogan, chips are missing, unmatched
            or disagree with each other, or there is no training chip.
        ConfigError: ``val_fraction`` is not in [0, 1).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val-fraction must be in [0, 1), not {val_fraction}.")
    root = Path(path)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise ChipFolderError(f"the chip folder {root} {what}; {_GET_STARTED}.")
    if not os.access(root, os.R_OK | os.X_OK):
        raise ChipFolderError(f"the chip folder {root} cannot be read (permission denied); "
                              "check its permissions.")
    if not any(root.iterdir()):
        raise ChipFolderError(f"the chip folder {root} is empty; {_GET_STARTED}.")
    if (root / METADATA_NAME).is_file():
        folder = _open_geogan(root, seed, progress)
    else:
        folder = _open_plain(root, val_fraction, seed, progress)
    for domain in DOMAINS:
        if not folder.train[domain]:
            where = root / folder.domains[domain].folder
            raise ChipFolderError(
                f"no training chips in {where}; export more chips or lower the "
                "validation fraction."
            )
    return folder


# --------------------------------------------------------------------------- geogan folders


def _open_geogan(root: Path, seed: int, progress: ProgressCallback | None) -> ChipFolder:
    meta_path = root / METADATA_NAME
    metadata = _read_json(meta_path)
    if not isinstance(metadata, dict) or metadata.get("format") != CHIPS_FORMAT:
        raise ChipFolderError(f"{meta_path} is not a geogan chip metadata file.")
    version = metadata.get("version")
    if not isinstance(version, int):
        raise ChipFolderError(f"{meta_path} has no valid format version; re-export the chips.")
    if version > CHIPS_FORMAT_VERSION:
        raise ChipFolderError(
            f"{root} was made by a newer geogan (chip format version {version}; this "
            f"geogan reads up to {CHIPS_FORMAT_VERSION}); upgrade geogan."
        )
    try:
        mode = str(metadata["mode"])
        tile_size = int(metadata["tile_size"])
        described = {d: _described_domain(metadata["domains"][d]) for d in DOMAINS}
    except (KeyError, TypeError, ValueError) as error:
        raise ChipFolderError(
            f"{meta_path} is damaged ({type(error).__name__}: {error}); re-export the chips."
        ) from error
    if mode not in ("paired", "unpaired"):
        raise ChipFolderError(f"{meta_path} has an unknown mode {mode!r}; re-export the chips.")

    train, val = _index_split(root, mode, {d: described[d].folder for d in DOMAINS})
    domains: dict[str, DomainInfo] = {}
    for domain in DOMAINS:
        info = described[domain]
        chips = train[domain] + val[domain]
        if chips:  # a cheap check that the metadata describes the chips
            expected = _ChipHeader(info.bands, info.dtype, tile_size, tile_size, info.nodata)
            _check_header(_read_header(chips[0]), expected, chips[0], meta_path)
        if train[domain] and len(info.statistics) != info.bands:  # absent: compute them
            statistics = compute_statistics(train[domain], info.bands, info.dtype, seed,
                                             progress)
            info = replace(info, statistics=statistics)
        domains[domain] = info
    return ChipFolder(root, mode, tile_size, domains, "geogan", train, val)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ChipFolderError(f"cannot read {path} ({error}); re-export the chips.") from error


def _described_domain(d: Mapping[str, Any]) -> DomainInfo:
    """A domain as the metadata describes it (statistics may be empty)."""
    nodata = float("nan") if d.get("nodata_is_nan") else d.get("nodata")
    return DomainInfo(
        folder=str(d["folder"]),
        bands=int(d["bands"]),
        dtype=np.dtype(d["dtype"]).name,
        nodata=None if nodata is None else float(nodata),
        statistics=tuple(BandStatistics.from_dict(s) for s in d.get("statistics") or []),
    )


def _index_split(
    root: Path, mode: str, folders: Mapping[str, str]
) -> tuple[dict[str, tuple[Path, ...]], dict[str, tuple[Path, ...]]]:
    """Each domain's train and val chips, as index.geojson lists them."""
    index_path = root / INDEX_NAME
    if not index_path.is_file():
        raise ChipFolderError(f"{root} has {METADATA_NAME} but no {INDEX_NAME}; re-export it.")
    index = _read_json(index_path)
    lists: dict[str, dict[str, list[Path]]] = {s: {d: [] for d in DOMAINS} for s in SPLITS}
    expected = ("ab",) if mode == "paired" else DOMAINS
    try:
        for feature in index["features"]:
            props = feature["properties"]
            split, domain, name = props["split"], props["domain"], str(props["file"])
            if split not in SPLITS:
                continue
            if domain not in expected:
                raise ChipFolderError(
                    f"{index_path} lists a chip of domain {domain!r} in a {mode} folder; "
                    "re-export the chips."
                )
            for d in DOMAINS if domain == "ab" else (domain,):
                lists[split][d].append(root / folders[d] / name)
    except (KeyError, TypeError) as error:
        raise ChipFolderError(
            f"{index_path} is damaged ({type(error).__name__}: {error}); re-export the chips."
        ) from error
    missing: list[Path] = []
    for d in DOMAINS:
        present = _file_names(root / folders[d])
        missing += [p for s in SPLITS for p in lists[s][d] if p.name not in present]
    if missing:
        raise ChipFolderError(
            f"{len(missing)} chip(s) listed in {index_path} are missing, such as "
            f"{missing[0]}; re-export the chips."
        )
    train = {d: tuple(lists["train"][d]) for d in DOMAINS}
    val = {d: tuple(lists["val"][d]) for d in DOMAINS}
    return train, val


def _file_names(folder: Path) -> set[str]:
    try:
        return {entry.name for entry in os.scandir(folder) if entry.is_file()}
    except OSError:
        return set()


# --------------------------------------------------------------------------- other folders


def _open_plain(root: Path, val_fraction: float, seed: int,
                progress: ProgressCallback | None) -> ChipFolder:
    """A folder without geogan metadata (ArcGIS export or hand-made)."""
    layouts = [("paired", PAIRED_FOLDERS)] + [("unpaired", f) for f in UNPAIRED_ALIASES]
    found = [(m, f) for m, f in layouts if all((root / name).is_dir() for name in f)]
    if not found:
        raise ChipFolderError(
            f"{root} has no {METADATA_NAME} and neither the sub-folders "
            f"{PAIRED_FOLDERS[0]}/ and {PAIRED_FOLDERS[1]}/ (paired chips) nor "
            f"{UNPAIRED_FOLDERS[0]}/ and {UNPAIRED_FOLDERS[1]}/ (unpaired chips); "
            f"{_GET_STARTED}."
        )
    if len(found) > 1:
        names = " and ".join(f"{f[0]}/+{f[1]}/" for _, f in found)
        raise ChipFolderError(f"{root} holds both {names}; keep only one layout.")
    mode, folders = found[0]
    chips = {d: _list_chips(root / name) for d, name in zip(DOMAINS, folders, strict=True)}
    train: dict[str, tuple[Path, ...]] = {}
    val: dict[str, tuple[Path, ...]] = {}
    if mode == "paired":
        chips["a"], chips["b"] = _match_pairs(root, folders, chips["a"], chips["b"])
        is_val = _random_val(len(chips["a"]), val_fraction, [seed, 0])
        for d in DOMAINS:
            train[d] = tuple(c for c, v in zip(chips[d], is_val, strict=True) if not v)
            val[d] = tuple(c for c, v in zip(chips[d], is_val, strict=True) if v)
    else:
        for i, d in enumerate(DOMAINS):
            is_val = _random_val(len(chips[d]), val_fraction, [seed, i])
            train[d] = tuple(c for c, v in zip(chips[d], is_val, strict=True) if not v)
            val[d] = tuple(c for c, v in zip(chips[d], is_val, strict=True) if v)
    for d, name in zip(DOMAINS, folders, strict=True):
        if not train[d]:
            raise ChipFolderError(f"no training chips in {root / name}; {_GET_STARTED}.")

    advance = Counter(sum(len(train[d]) + len(val[d]) for d in DOMAINS), progress)

    domains: dict[str, DomainInfo] = {}
    sizes: dict[str, int] = {}
    for d, name in zip(DOMAINS, folders, strict=True):
        domains[d], sizes[d] = _scan_domain(name, train[d], val[d], seed, advance)
    if sizes["a"] != sizes["b"]:
        raise ChipFolderError(
            f"chips of both domains must have the same size, but {train['a'][0]} is "
            f"{sizes['a']}×{sizes['a']} and {train['b'][0]} is {sizes['b']}×{sizes['b']} pixels."
        )
    return ChipFolder(root, mode, sizes["a"], domains, "arcgis", train, val)


def _list_chips(folder: Path) -> list[Path]:
    try:
        chips = [
            Path(entry.path) for entry in os.scandir(folder)
            if entry.is_file() and Path(entry.name).suffix.lower() in CHIP_EXTENSIONS
        ]
    except OSError as error:
        raise ChipFolderError(f"cannot read the chip folder {folder} "
                              f"({error.strerror or error}); check its permissions.") from None
    return sorted(chips, key=lambda p: p.name)


def _match_pairs(root: Path, folders: Sequence[str], chips_a: list[Path],
                 chips_b: list[Path]) -> tuple[list[Path], list[Path]]:
    """The chips of both folders paired by file stem, in stem order."""
    by_stem: list[dict[str, Path]] = []
    for folder, chips in zip(folders, (chips_a, chips_b), strict=True):
        stems: dict[str, Path] = {}
        for chip in chips:
            if chip.stem in stems:
                raise ChipFolderError(
                    f"{root / folder} holds two chips named {chip.stem}: {stems[chip.stem].name} "
                    f"and {chip.name}; keep one."
                )
            stems[chip.stem] = chip
        by_stem.append(stems)
    for (mine, theirs), (here, there) in (
        ((by_stem[0], by_stem[1]), (folders[0], folders[1])),
        ((by_stem[1], by_stem[0]), (folders[1], folders[0])),
    ):
        alone = sorted(set(mine) - set(theirs))
        if alone:
            raise ChipFolderError(
                f"{len(alone)} chip(s) of {root / here} have no chip of the same name in "
                f"{root / there}, such as {mine[alone[0]].name}; paired chips must come in "
                "pairs of the same name."
            )
    order = sorted(by_stem[0])
    return [by_stem[0][s] for s in order], [by_stem[1][s] for s in order]


def _random_val(n: int, val_fraction: float, seed: list[int]) -> list[bool]:
    """Which of ``n`` chips are drawn for validation: a seeded random (not spatial)
    ``val_fraction`` of them, at least one from :data:`MIN_CHIPS_FOR_VAL` chips on."""
    n_val = 0
    if val_fraction > 0 and n >= MIN_CHIPS_FOR_VAL:
        n_val = min(max(1, round(val_fraction * n)), n - 1)
    chosen = np.zeros(n, dtype=bool)
    chosen[np.random.default_rng(seed).permutation(n)[:n_val]] = True
    return chosen.tolist()


def _scan_domain(folder: str, train: Sequence[Path], val: Sequence[Path], seed: int,
                 advance: Callable[[], None]) -> tuple[DomainInfo, int]:
    """Check that every chip of a domain agrees with the first, and compute the
    statistics of the training chips, in one pass. Returns the domain and chip side."""
    reference = train[0]
    expected = _read_header(reference)
    if expected.width != expected.height:
        raise ChipFolderError(
            f"chips must be square, but {reference} is {expected.width}×{expected.height} pixels."
        )
    accumulator = StatisticsAccumulator(expected.bands, expected.dtype, seed=seed)
    for chip in train:
        data, valid = read_chip(chip)
        bands, height, width = data.shape
        _check_header(_ChipHeader(bands, data.dtype.name, width, height, None), expected, chip,
                      reference)
        accumulator.update(data, valid)
        advance()
    for chip in val:
        _check_header(_read_header(chip), expected, chip, reference)
        advance()
    try:
        statistics = tuple(accumulator.result())
    except NoChipsError as error:
        raise ChipFolderError(f"the training chips in {reference.parent}: {error}.") from error
    info = DomainInfo(folder, expected.bands, expected.dtype, expected.nodata, statistics)
    return info, expected.width


def compute_statistics(chips: Sequence[Path], bands: int, dtype: str, seed: int,
                        progress: ProgressCallback | None) -> tuple[BandStatistics, ...]:
    """Per-band statistics of ``chips``, read in order (seeded subsample, see
    :class:`~geogan.raster.band_stats.StatisticsAccumulator`).

    Raises:
        ChipFolderError: A chip cannot be read, or a band has no valid pixel.
    """
    accumulator = StatisticsAccumulator(bands, dtype, seed=seed)
    for done, chip in enumerate(chips, 1):
        accumulator.update(*read_chip(chip))
        if progress is not None:
            progress(done, len(chips))
    try:
        return tuple(accumulator.result())
    except NoChipsError as error:
        raise ChipFolderError(f"the training chips in {chips[0].parent}: {error}.") from error


# --------------------------------------------------------------------------- reading chips


class _quiet(warnings.catch_warnings):
    """PNG and JPEG chips have no georeferencing, and need none."""

    def __enter__(self) -> None:
        super().__enter__()
        warnings.simplefilter("ignore", NotGeoreferencedWarning)


def _open(path: Path) -> Any:
    try:
        if path.stat().st_size == 0:
            raise ChipFolderError(f"cannot read the chip {path}: the file is empty (0 bytes); "
                                  "re-export the chips.")
        return rasterio.open(path)
    except RasterioIOError as error:
        raise ChipFolderError(f"cannot read the chip {path} ({gdal_reason(error, str(path))}); "
                              "re-export the chips or remove it.") from error
    except OSError as error:
        raise ChipFolderError(f"cannot read the chip {path} ({error.strerror or error}); "
                              "check its permissions.") from None


class _ChipHeader(NamedTuple):
    bands: int
    dtype: str
    width: int
    height: int
    nodata: float | None


def _read_header(path: Path) -> _ChipHeader:
    with _quiet(), _open(path) as src:
        return _ChipHeader(src.count, src.dtypes[0], src.width, src.height, src.nodata)


def _check_header(header: _ChipHeader, expected: _ChipHeader, path: Path,
                  reference: Path) -> None:
    """Raise ChipFolderError naming ``path`` and ``reference`` when their bands, data
    type or size disagree (nodata may differ: each chip's own validity is read)."""
    differences = []
    if header.bands != expected.bands:
        differences.append(f"{header.bands} band(s) instead of {expected.bands}")
    if header.dtype != expected.dtype:
        differences.append(f"data type {header.dtype} instead of {expected.dtype}")
    if (header.width, header.height) != (expected.width, expected.height):
        differences.append(f"{header.width}×{header.height} pixels instead of "
                           f"{expected.width}×{expected.height}")
    if differences:
        raise ChipFolderError(
            f"{path} does not agree with {reference}: it has {'; '.join(differences)}; "
            "every chip of a domain must have the same bands, data type and size."
        )


def read_chip(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read one chip and where it holds data.

    Args:
        path: A chip file (GeoTIFF, PNG, JPEG, MRF).

    Returns:
        The pixels (C, H, W) in the file's data type, and the validity (H, W): True
        where no band is masked (internal mask, alpha band or nodata value, as for
        the exporter) and every band is finite.

    Raises:
        ChipFolderError: The file cannot be read.
    """
    with _quiet(), _open(Path(path)) as src:
        try:
            data = src.read()  # (C, H, W)
            valid = valid_mask(src, Window(0, 0, src.width, src.height), data)  # (H, W)
        except RasterioIOError as error:
            reason = str(error).split("\n")[0]
            raise ChipFolderError(f"cannot read the chip {path} ({reason}).") from error
    return data, valid
