"""What a model is trained on, read from its chips for the model file: the chips'
pixel size, each domain's band values and sharpness
(:class:`~geogan.nn.data_profile.DataProfile`), and the band names.

``translate`` compares scenes with them: a scene at another resolution, or with values
unlike the training chips', gets a warning (:mod:`geogan.inference.scene_checks`); a
softer one is sharpened (:mod:`geogan.inference.scene_sharpness`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from geogan.nn.data_profile import BandProfile, DataProfile, PixelSize, band_shares
from geogan.nn.normalization import BandNormalization
from geogan.raster.resolution import pixel_size
from geogan.raster.sharpness import spectral_slope, typical_slope
from geogan.training.chip_folder import ChipFolder, read_chip

#: At most this many chips of a domain are read for its value profile, spread evenly
#: over the training chips, and at most this many valid pixels of each.
PROFILE_CHIPS = 64
PROFILE_PIXELS = 4096


def band_descriptions(folder: ChipFolder) -> dict[str, list[str | None]]:
    """Each domain's band names, read from its first training chip (``translate`` gives
    them to the output's bands)."""
    names: dict[str, list[str | None]] = {}
    for domain, chips in folder.train.items():
        if chips:
            with rasterio.open(chips[0]) as chip:
                names[domain] = list(chip.descriptions)
    return names


def data_profile(folder: ChipFolder,
                 normalization: Mapping[str, BandNormalization] | None = None) -> DataProfile:
    """The pixel size of the first training chip (input domain), and the value profile
    and sharpness of each domain's training chips (the sharpness of the chips as
    ``normalization`` maps them, as the model saw them, when given).

    Chips without a CRS leave the pixel size unknown; several chip folders trained
    together are expected to share a pixel size (the first one's is recorded).
    """
    size = None
    if folder.train["a"]:
        with warnings.catch_warnings():  # chips without a CRS: the size is unknown
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(folder.train["a"][0]) as chip:
                found = pixel_size(chip)
        size = None if found is None else PixelSize.from_dict(found)
    bands: dict[str, tuple[BandProfile, ...]] = {}
    shares: dict[str, tuple[BandProfile, ...]] = {}
    sharpness: dict[str, float] = {}
    for domain, chips in folder.train.items():
        sample, slope = sample_chips(chips, (normalization or {}).get(domain))
        if slope is not None:
            sharpness[domain] = slope
        if sample is None:
            continue
        bands[domain] = tuple(BandProfile.of(band) for band in sample)
        parts = band_shares(sample)
        if parts is not None and parts.shape[1]:
            shares[domain] = tuple(BandProfile.of(band) for band in parts)
    return DataProfile(size, bands, shares, sharpness)


def sample_chips(chips: Sequence[Path], normalization: BandNormalization | None = None
                 ) -> tuple[np.ndarray | None, float | None]:
    """What (up to :data:`PROFILE_CHIPS` of) ``chips`` hold, each chip read once: their
    valid pixels, (C, N) float64 (None when they hold none), and the median spectral
    slope (:func:`geogan.raster.sharpness.spectral_slope`) of the wholly valid ones,
    normalised by ``normalization`` when given (None when none is wholly valid).

    Deterministic: the same chips give the same sample (an even spread of chips, and of
    pixels within each)."""
    samples, slopes = [], []
    for index in _picks(chips):
        data, valid = read_chip(chips[index])  # (C, H, W), (H, W)
        values = data[:, valid].astype(np.float64)  # (C, N)
        step = max(1, values.shape[1] // PROFILE_PIXELS)
        samples.append(values[:, ::step])
        if valid.all():
            mapped = data
            if normalization is not None and normalization.bands == data.shape[0]:
                mapped = normalization.normalize(data)
            slopes.append(spectral_slope(mapped))
    if not samples:
        return None, None
    pooled = np.concatenate(samples, axis=1)  # (C, N)
    return (pooled if pooled.shape[1] else None), typical_slope(slopes)


def _picks(chips: Sequence[Path]) -> list[int]:
    """Indices of up to :data:`PROFILE_CHIPS` of ``chips``, spread evenly over them."""
    if not chips:
        return []
    spread = np.linspace(0, len(chips) - 1, min(len(chips), PROFILE_CHIPS)).round()
    return [int(i) for i in np.unique(spread)]
