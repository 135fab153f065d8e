"""What translate's reader reads: a scene, or a mosaic's VRT, perhaps through a warp to the
model's pixel size, and which part of it is written."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import rasterio
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window


@dataclass(frozen=True)
class SceneRead:
    """What the reader reads, and which part of it is written.

    Attributes:
        path: What ``rasterio.open`` reads: the scene, or a mosaic's in-memory VRT.
        region: The part of it the windows are laid over (pixels of the source, or of
            the warped grid with ``warp``).
        crop: The part of ``region`` written to the output (region pixels): all of it
            for a scene on its own, the scene within a margin of its neighbours.
        warp: Keywords of a ``WarpedVRT`` (``crs``, ``transform``, ``width``, ``height``,
            ``resampling``) to read the source through, or None.
    """

    path: str
    region: Window
    crop: Window
    warp: Mapping[str, Any] | None = None

    @classmethod
    def whole(cls, path: str, height: int, width: int,
              warp: Mapping[str, Any] | None = None) -> SceneRead:
        """All of a ``height`` × ``width`` source, written whole."""
        window = Window(0, 0, width, height)
        return cls(path, window, window, warp)

    @contextlib.contextmanager
    def open(self) -> Iterator[Any]:
        """A handle of the source's own (through the WarpedVRT, if any), for one thread
        at a time."""
        with rasterio.open(self.path) as dataset:
            if self.warp is None:
                yield dataset
                return
            with WarpedVRT(dataset, **self.warp) as warped:
                yield warped


__all__ = ["SceneRead"]
