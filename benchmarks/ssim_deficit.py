"""Where a map model's SSIM falls short of a blank map's, pair by pair.

A blank map of the background colour scores SSIM 1 wherever the real map is flat (both
windows have no variance), so a model loses to it on a pair less by the classes it gets
wrong than by whatever it draws where the map has nothing. For each ``--pairs`` photo that
``quality_real.py`` translated (``WORK/PREFIX_ID_photo.tif``, PREFIX the variant's name
with ``_`` for other characters), the script scores the translation and the blank map
against the real map with geogan's SSIM, and sums the per-window difference by each
window centre's true and drawn class (both snapped to :data:`quality_real.MAP_PALETTE`):
which confusions, and which unsure pixels (drawn more than ``--unsure`` levels from every
palette colour), the deficit comes from. It also gives the figures in the windows where
the map is flat (a standard deviation under one level)::

    python benchmarks/quality_real.py --data ../shared/data/maps --variants faithful \\
        --work quality-real
    python benchmarks/ssim_deficit.py --work quality-real --prefix faithful --pairs 1025
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import rasterio
import torch
from numpy.typing import NDArray
from quality_real import MAP_PALETTE

from geogan.evaluation.class_metrics import snap_to_palette
from geogan.evaluation.image_metrics import SSIM_WINDOW, ssim_map

NAMES = list(MAP_PALETTE)
COLOURS = np.array([MAP_PALETTE[n] for n in NAMES], np.float64)  # (K, 3)
FLAT = 1.0
"""A window of the map is flat when its grey levels' standard deviation is under this."""


def read_rgb(path: Path) -> NDArray[np.float64]:
    """The first three bands, (3, H, W) float64."""
    with rasterio.open(path) as src:
        return src.read(indexes=[1, 2, 3]).astype(np.float64)


def window_ssim(image: NDArray[np.float64], reference: NDArray[np.float64]
                ) -> NDArray[np.float64]:
    """SSIM of each window position, averaged over the bands: (H - 10, W - 10)."""
    as_tensor = [torch.from_numpy(a / 127.5 - 1)[None] for a in (image, reference)]
    values, _ = ssim_map(as_tensor[0], as_tensor[1])
    result: NDArray[np.float64] = values[0].mean(0).numpy()
    return result


def nearest(image: NDArray[np.float64]) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Each pixel's palette class (as ``geogan evaluate`` snaps it) and its distance to that
    class's colour (Euclidean over the bands, in levels)."""
    classes = snap_to_palette(image, MAP_PALETTE)
    distance = np.sqrt(((image - np.moveaxis(COLOURS[classes], -1, 0)) ** 2).sum(axis=0))
    return classes, distance


def window_std(grey: NDArray[np.float64]) -> NDArray[np.float64]:
    """The standard deviation of each SSIM window (box, not Gaussian), as :func:`window_ssim`
    places them."""
    windows = np.lib.stride_tricks.sliding_window_view(grey, (SSIM_WINDOW, SSIM_WINDOW))
    result: NDArray[np.float64] = windows.std(axis=(-2, -1))
    return result


def deficit(prediction: NDArray[np.float64], reference: NDArray[np.float64],
            unsure: float) -> None:
    """Prints the pair's SSIM against the blank map's and where the difference lies."""
    blank = np.broadcast_to(COLOURS[0][:, None, None], reference.shape).copy()
    model, empty = window_ssim(prediction, reference), window_ssim(blank, reference)
    gap = model - empty
    inner = (slice(SSIM_WINDOW // 2, -(SSIM_WINDOW // 2)),) * 2
    truth = nearest(reference)[0][inner]
    drawn, distance = (a[inner] for a in nearest(prediction))
    print(f"  SSIM {model.mean():.3f}, blank map {empty.mean():.3f}: "
          f"difference {gap.mean():+.4f}")
    for t, true_name in enumerate(NAMES):
        for d, drawn_name in enumerate(NAMES):
            where = (truth == t) & (drawn == d)
            if where.mean() >= 0.01:
                print(f"    true {true_name:10} drawn {drawn_name:10} {where.mean():6.1%} "
                      f"of the windows, {gap[where].sum() / gap.size:+.4f}")
    far = distance > unsure
    print(f"    unsure (over {unsure:g} levels from every colour) {far.mean():6.1%}, "
          f"{gap[far].sum() / gap.size:+.4f}")
    flat = window_std(reference.mean(0)) < FLAT
    drawn_std = window_std(prediction.mean(0))[flat]
    print(f"    flat map {flat.mean():6.1%}: SSIM {model[flat].mean():.3f}, blank "
          f"{empty[flat].mean():.3f}, {gap[flat].sum() / gap.size:+.4f}; the drawing's "
          f"standard deviation there: median {np.median(drawn_std):.2f} levels")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="a quality_real.py --work")
    parser.add_argument("--prefix", required=True,
                        help="the variant's file prefix, e.g. faithful_no_gan_seed_1")
    parser.add_argument("--pairs", default="1025", help="pair ids (comma-separated)")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/maps"))
    parser.add_argument("--unsure", type=float, default=8.0,
                        help="levels from every palette colour that make a pixel unsure")
    args = parser.parse_args()
    for pair in args.pairs.split(","):
        print(f"pair {pair}")
        deficit(read_rgb(args.work / f"{args.prefix}_{pair}_photo.tif"),
                read_rgb(args.data / "B_map" / f"{pair}.png"), args.unsure)


if __name__ == "__main__":
    main()
