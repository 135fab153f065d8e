"""``benchmarks/quality_real.py``'s held-out photos, as it writes them to score: the
softened ones are the same photos blurred, scored against the same maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from tests.helpers import quality_real_module


def _maps_folder(folder: Path, ids: list[str], palette: list[list[int]]) -> Path:
    """Photos of noise and flat-colour maps (blocks of the palette's colours)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for sub in ("A_aerial", "B_map"):
        (folder / sub).mkdir(parents=True)
    colours = np.asarray(palette, np.uint8)
    for name in ids:
        photo = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
        blocks = rng.integers(0, len(colours), (8, 8))
        drawn = colours[np.kron(blocks, np.ones((32, 32), int))]
        Image.fromarray(photo).save(folder / "A_aerial" / f"{name}.png")
        Image.fromarray(drawn).save(folder / "B_map" / f"{name}.png")
    return folder


def test_softened_photos_are_the_held_out_photos_blurred_against_the_same_maps(
        tmp_path: Path) -> None:
    quality_real = quality_real_module()
    ids = [*quality_real.VAL, *quality_real.UNFAMILIAR, "1", "2", "3"]
    data = _maps_folder(tmp_path / "maps", ids, list(quality_real.MAP_PALETTE.values()))
    prepared = quality_real.prepare(data, tmp_path / "work", softened=1.0)
    scenes = prepared["scenes"]
    assert list(scenes) == ["val", "unfamiliar", "val-softened", "unfamiliar-softened"]
    for part in ("val", "unfamiliar"):
        sharp, soft = scenes[part], scenes[f"{part}-softened"]
        assert [m for _, m in soft] == [m for _, m in sharp]  # the same maps
        for (photo, _), (softened, _) in zip(sharp, soft, strict=True):
            assert photo.stem != softened.stem  # their translations do not overwrite
            with rasterio.open(photo) as a, rasterio.open(softened) as b:
                assert (a.crs, a.transform, a.shape) == (b.crs, b.transform, b.shape)
                x, y = a.read().astype(float), b.read().astype(float)
            # Blurred: the same mean, much less of the pixel-to-pixel variation.
            assert abs(x.mean() - y.mean()) < 1.0
            assert np.abs(np.diff(y, axis=2)).mean() < 0.5 * np.abs(np.diff(x, axis=2)).mean()
    # Without the option, only the photos as they are.
    plain = quality_real.prepare(data, tmp_path / "plain")
    assert list(plain["scenes"]) == ["val", "unfamiliar"]


def test_per_photo_figures_are_means_over_the_photos_each_scored_alone(tmp_path: Path) -> None:
    """As ``geogan evaluate`` on each translated photo, averaged: a photo drawn right
    counts mIoU 1, one drawn as a blank map its own (few-class) mIoU, whatever the pixel
    counts of the classes over the split."""
    quality_real = quality_real_module()
    ids = [*quality_real.VAL, *quality_real.UNFAMILIAR, "1", "2", "3"]
    data = _maps_folder(tmp_path / "maps", ids, list(quality_real.MAP_PALETTE.values()))
    work = tmp_path / "work"
    prepared = quality_real.prepare(data, work)
    palette = prepared["palette"]
    maps = [m for _, m in prepared["scenes"]["val"]]
    blank = quality_real.constant_score(maps[-1], work / "blank.tif", work, palette)
    drawn = [*maps[:-1], work / "blank.tif"]  # every map right but the last
    photos = quality_real.score_photos(drawn, maps, work, palette)
    assert set(photos) == set(quality_real.PHOTO_FIGURES)
    assert photos["miou"] == np.mean([1.0] * (len(maps) - 1) + [blank["miou"]])
    assert photos["d5"] == np.mean([1.0] * (len(maps) - 1) + [blank["d5"]])
    pooled = quality_real.score(quality_real._strip(drawn, work / "strip.tif"),
                                quality_real._strip(maps, work / "ref.tif"), work, palette)
    assert pooled["miou"] != photos["miou"]
    # The constant baseline is scored both ways, and leaves no per-photo file behind.
    baseline = quality_real.constant_baseline(prepared, work)
    assert {"val", "val/photo", "unfamiliar", "unfamiliar/photo"} <= set(baseline)
    assert not list(work.glob("constant_val_*.tif"))
