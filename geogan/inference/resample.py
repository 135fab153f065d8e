"""A scene translated at the model's pixel size, and the result brought back onto the
scene's own grid (``--resample``; by default for a scene finer than the model's pixels).

A model trained on 0.5 m chips sees a 2 m scene as shapes four times too small, and a
0.1 m scene as shapes five times too large. Resampled, the scene is read through a
``WarpedVRT`` onto a grid at the model's pixel size (same CRS, the same extent, edges on
multiples of the pixel size so that crops get crops of the same grid), translated there
into a temporary GeoTIFF, and that is warped back onto the scene's grid, block row by
block row: the output still has the scene's CRS, transform and size. The scene is read
with the chosen method (by default averaged down, or read up by Lanczos) and image and
shaded outputs come back with it (bilinear by default); class and crisp palette outputs
come back by nearest neighbour, so that no colour or class is invented. Validity comes
from the scene itself, as without resampling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from geogan.errors import OutputError
from geogan.grids.windows import LatticeRecord
from geogan.inference.options import TranslateOptions
from geogan.inference.pipeline import OutputBands, keep_off_nodata
from geogan.inference.scene_read import SceneRead
from geogan.inference.translator import Translator
from geogan.raster.io import transform_origin, valid_mask, warp_adds_alpha
from geogan.raster.resolution import BACK, resampled_grid


def resampled_read(dataset: Any, source: str, pixel: tuple[float, float], resampling: str,
                   settings: TranslateOptions) -> tuple[SceneRead, LatticeRecord]:
    """What the pipeline reads to translate ``dataset`` at ``pixel`` (x, y in its CRS's
    units) read by ``resampling``, and where the windows go on that grid.

    Pixels outside the scene (the grid's edges round outwards) and the scene's own
    nodata stay invalid: through its nodata value or alpha band, or an alpha band the
    warp adds.
    """
    transform, width, height = resampled_grid(dataset, *pixel)
    warp: dict[str, Any] = {"crs": dataset.crs, "transform": transform, "width": width,
                            "height": height, "resampling": Resampling[resampling]}
    if warp_adds_alpha(dataset):
        warp["add_alpha"] = True
    read = SceneRead.whole(source, height, width, warp)
    if settings.lattice == "grid":
        lattice = LatticeRecord("grid", "crs", transform_origin(transform), (0, 0),
                                (height, width), resampled=True)
    else:
        lattice = LatticeRecord("scene", "asked", None, (0, 0), (height, width),
                                resampled=True)
    return read, lattice


def model_grid_profile(profile: dict[str, Any], read: SceneRead) -> dict[str, Any]:
    """The temporary GeoTIFF's profile: the output's, on the model-size grid."""
    assert read.warp is not None
    return {**profile, "width": read.warp["width"], "height": read.warp["height"],
            "transform": read.warp["transform"], "compress": "deflate", "zlevel": 1}


def back_resampling(translator: Translator, settings: TranslateOptions) -> Resampling:
    """How the translation comes back onto the scene's grid: nearest neighbour for class
    indices and crisp palette colours (interpolating could blend two classes' colours
    into a third's), else the ``resampling`` asked for, or bilinear.

    A shaded map is an image of the map, already drawn between its colours where the
    model is unsure, so it comes back as images do: its edges anti-aliased, as the maps
    it learnt from are, not in steps of the model's pixels. On the real aerial → map
    pairs made 1.5 × and 2.35 × finer than the chips, bilinear gave SSIM +0.006 to
    +0.014 and PSNR +0.02 to +0.05 dB over nearest neighbour, for 0.007–0.016 of δ5
    (``benchmarks/README.md``, stop 71)."""
    if translator.output in ("classes", "palette"):
        return Resampling.nearest
    return Resampling[settings.resampling or BACK]


def warp_back(between: Path, out: Any, source: str, bands: list[int], bands_out: OutputBands,
              resampling: Resampling) -> None:
    """Warp the translation at the model's pixel size (``between``) onto ``out``'s grid,
    one block row at a time, with the scene's own validity.

    Args:
        between: The temporary GeoTIFF at the model's pixel size.
        out: The output, open for writing, on the scene's grid.
        source: The scene (its validity decides the output's nodata and mask).
        bands: The scene's bands the model reads.
        bands_out: How invalid pixels are written.
        resampling: The warp's method.

    Raises:
        OutputError: If ``out`` cannot be written.
    """
    rows = out.block_shapes[0][0]
    marked = bands_out.nodata is not None or bands_out.mask
    with rasterio.open(between) as translated, rasterio.open(source) as scene, \
            WarpedVRT(translated, crs=out.crs, transform=out.transform, width=out.width,
                      height=out.height, resampling=resampling) as warped:
        for row in range(0, out.height, rows):
            window = Window(0, row, out.width, min(rows, out.height - row))
            values = warped.read(window=window)  # (C, rows, W)
            if marked:
                valid = valid_mask(scene, window, scene.read(bands, window=window),
                                   any_band=True)  # (rows, W)
            try:
                if bands_out.nodata is not None:
                    keep_off_nodata(values, valid, bands_out.nodata)
                    values[:, ~valid] = bands_out.nodata
                out.write(values, window=window)
                if bands_out.mask:
                    out.write_mask((valid * 255).astype("uint8"), window=window)
            except OSError as error:
                raise OutputError(f"cannot write {out.name}: {error}") from None
