"""Helpers shared by the test modules: seeded rasters, tiny models, settings.

Fixtures live in ``conftest.py``; plain functions and constants live here, so that no test
module imports another.
"""

from __future__ import annotations

import importlib.util
import math
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from affine import Affine

from geogan.chips.export import export_chips
from geogan.chips.options import ExportOptions
from geogan.nn.config import build_configs
from geogan.nn.data_profile import DataProfile, PixelSize
from geogan.nn.model_file import ModelFile, save_model_file
from geogan.nn.networks import build_generator
from geogan.nn.normalization import BandNormalization

UTM33 = "EPSG:32633"

#: Translate options for exact, device-independent results.
CPU = {"device": "cpu", "precision": "fp32"}
TILE = 64

#: Narrow networks for training tests.
TINY = {"ngf": 8, "ndf": 8, "workers": 0, "precision": "fp32"}

MAP_PALETTE = ((232.0, 229.0, 222.0), (255.0, 255.0, 255.0), (170.0, 201.0, 254.0),
               (202.0, 223.0, 174.0))
"""The four colours of :func:`write_map_chips`'s map."""


def write_raster(
    path: Path,
    data: np.ndarray,
    *,
    crs: Any = UTM33,
    transform: Affine | None = None,
    nodata: float | None = None,
    **profile: Any,
) -> Path:
    """Write ``data`` (C, H, W) as a GeoTIFF; default grid: 1 m pixels in UTM 33N."""
    count, height, width = data.shape
    if transform is None:
        transform = Affine(1.0, 0.0, 500_000.0, 0.0, -1.0, 5_000_000.0)
    with rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=count,
        dtype=data.dtype, crs=crs, transform=transform, nodata=nodata, **profile,
    ) as dst:
        dst.write(data)
    return path


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], scale: int = 16) -> np.ndarray:
    """A smooth random field in [0, 1]: textured enough for registration, smooth enough
    for interpolation tests."""
    coarse = rng.random((shape[0] // scale + 3, shape[1] // scale + 3))
    rows = np.linspace(0, coarse.shape[0] - 2.001, shape[0])
    cols = np.linspace(0, coarse.shape[1] - 2.001, shape[1])
    r0, c0 = rows.astype(int), cols.astype(int)
    fr, fc = (rows - r0)[:, None], (cols - c0)[None, :]
    top = coarse[r0][:, c0] * (1 - fc) + coarse[r0][:, c0 + 1] * fc
    bottom = coarse[r0 + 1][:, c0] * (1 - fc) + coarse[r0 + 1][:, c0 + 1] * fc
    field: np.ndarray = top * (1 - fr) + bottom * fr
    return field


def natural(rng: np.random.Generator, bands: int = 3, size: int = 256) -> np.ndarray:
    """(bands, size, size) fields with a 1/f² power spectrum, as aerial imagery has."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    radius = np.sqrt(fy * fy + fx * fx)
    amplitude = np.where(radius > 0, 1.0 / np.maximum(radius, 1e-9), 0.0)
    spectra = (rng.normal(size=(bands, *radius.shape))
               + 1j * rng.normal(size=(bands, *radius.shape))) * amplitude
    fields = np.fft.irfft2(spectra, s=(size, size))
    return fields / fields.std(axis=(1, 2), keepdims=True)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Each band blurred by an exact Gaussian of ``sigma`` px (circular)."""
    fy = np.fft.fftfreq(image.shape[-2])[:, None]
    fx = np.fft.rfftfreq(image.shape[-1])[None, :]
    gain = np.exp(-2 * math.pi**2 * sigma**2 * (fy * fy + fx * fx))
    return np.fft.irfft2(np.fft.rfft2(image) * gain, s=image.shape[-2:])


def unsharp_mask(image: np.ndarray, radius: float, amount: float) -> np.ndarray:
    """Each band unsharp-masked from the definition, x + amount (x - gaussian(x)): a
    vendor's sharpening (circular, unclipped)."""
    return image + amount * (image - gaussian_blur(image, radius))


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op threads of this thread set to ``count`` for a while."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def pair_scene(tmp: Path, size: int = 256) -> tuple[Path, Path]:
    """A learnable pair: RGB uint8 input, target = a fixed colour mapping of it."""
    rng = np.random.default_rng(11)
    a = (np.stack([smooth_field(rng, (size, size), 16) for _ in range(3)]) * 250).astype(np.uint8)
    b = np.stack([a[1], 255 - a[0], a[2] // 2]).astype(np.uint8)
    return write_raster(tmp / "a.tif", a), write_raster(tmp / "b.tif", b)


def pair_chips(tmp: Path, size: int = 256, val_fraction: float = 0.25,
               out: Path | None = None) -> Path:
    """A geogan chip folder of 64 px chips cut from :func:`pair_scene` (written in ``tmp``)
    at ``out`` (default ``tmp / "chips"``)."""
    from geogan.chips.export import export_chips
    from geogan.chips.options import ExportOptions

    out = tmp / "chips" if out is None else out
    a, b = pair_scene(tmp, size)
    export_chips(a, b, out, ExportOptions(tile_size=64, val_fraction=val_fraction, workers=1))
    return out


def domain(bands: int, dtype: str, value_range: tuple[float, float] | None,
            nodata: float | None) -> BandNormalization:
    if value_range is None:
        value_range = (0.0, 255.0) if dtype == "uint8" else (100.0, 300.0)
    low, high = value_range
    return BandNormalization((low,) * bands, (high,) * bands, dtype, nodata)


def make_model(kind: str = "pix2pix", in_bands: int = 3, out_bands: int = 3, *,
               in_dtype: str = "uint8", in_range: tuple[float, float] | None = None,
               in_nodata: float | None = None, out_dtype: str = "uint8",
               out_range: tuple[float, float] | None = None, out_nodata: float | None = None,
               local: bool = False, out_bias: float | None = None,
               descriptions: list[str] | None = None, seed: int = 0,
               pixel: float | None = None,
               palette: tuple[tuple[float, ...], ...] = (), class_scale: float = 1.0
               ) -> ModelFile:
    """A tiny random-weight model (tile 64, ngf 4).

    Args:
        local: Pix2Pix only: cut the U-Net's inner levels off its last layer, so that
            the output depends only on a few pixels around each pixel (as a trained
            model's mostly does) while the tile's zero padding still changes the
            outermost pixels: a generator with border effects and no others.
        out_bias: Pix2Pix only: the last layer's bias (-20 saturates the output at the
            low end of the target range).
        descriptions: Band names of the target domain.
        pixel: The training chips' pixel size to record, in metres of UTM 33N (None:
            unknown, as in model files from before it was recorded).
        palette: Pix2Pix only: the colours of a class head (none by default).
        class_scale: Pix2Pix only: the class logits multiplied by this (3000 makes the
            model sure of about 80 % of the pixels, as a trained one is).
    """
    arch, _ = build_configs(kind, in_bands, out_bands, TILE, preset="tiny",
                            overrides={"ngf": 4, "ndf": 4})
    if palette:
        arch = replace(arch, palette=palette,
                       class_names=tuple(f"class {i}" for i in range(len(palette))))
    torch.manual_seed(seed)
    generators = {}
    for direction in arch.directions:
        state = {k: v.clone() for k, v in build_generator(arch, direction).state_dict().items()}
        if local:
            weight = state["decoder.0.1.weight"]  # (2 ngf in: skip, inner; out, 4, 4)
            weight[weight.shape[0] // 2:] = 0.0
        if out_bias is not None:
            state["decoder.0.1.bias"][:] = out_bias
        if palette:
            state["decoder.0.1.weight"][:, out_bands:] *= class_scale
            state["decoder.0.1.bias"][out_bands:] *= class_scale
        generators[direction] = state
    training: dict[str, Any] = {"steps": 1}
    if descriptions is not None:
        training["band_descriptions"] = {"b": descriptions}
    return ModelFile(
        architecture=arch, generators=generators,
        normalization={"a": domain(in_bands, in_dtype, in_range, in_nodata),
                       "b": domain(out_bands, out_dtype, out_range, out_nodata)},
        training=training,
        trained_on=DataProfile(None if pixel is None else
                               PixelSize(pixel, pixel, "metre", 1.0, UTM33)),
    )


MAP_PALETTE = ((232.0, 229.0, 222.0), (202.0, 223.0, 174.0), (177.0, 207.0, 254.0),
               (254.0, 254.0, 253.0))
"""Background, park, water and road colours of a web map."""


def save_model(path: Path, *args: Any, **kwargs: Any) -> Path:
    """:func:`make_model` saved as a model file at ``path``."""
    return save_model_file(path, make_model(*args, **kwargs))


def textured(rng: np.random.Generator, bands: int, height: int, width: int) -> np.ndarray:
    """A (bands, height, width) uint8 scene with texture at several scales."""
    scales = [16, 8, 4, 32]
    return (np.stack([smooth_field(rng, (height, width), scales[b % 4]) for b in range(bands)])
            * 250 + 2).astype(np.uint8)


def leftovers(folder: Path) -> list[str]:
    """Temporary files of atomic_file (and the COG's intermediate) left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name)


def count_calls(monkeypatch: Any, owner: Any, name: str) -> dict[str, int]:
    """Wrap ``owner.name`` (for the test's duration) so that ``calls["n"]`` counts its
    calls; it still does what it did."""
    real = getattr(owner, name)
    calls = {"n": 0}

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def interrupt_at(step: int) -> Any:
    """A training progress callback that sends this process SIGINT (what Ctrl-C does) when
    the run reports ``step``."""
    def progress(state: Any) -> None:
        if state.step == step:
            os.kill(os.getpid(), signal.SIGINT)
    return progress


def batch(n: int = 2, a_bands: int = 3, b_bands: int = 3, size: int = 64) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(n, a_bands, size, size, generator=generator) * 2 - 1
    b = torch.tanh(a[:, :1].repeat(1, b_bands, 1, 1) * 2)
    ones = torch.ones(n, 1, size, size)
    return {"a": a, "b": b, "mask_a": ones, "mask_b": ones.clone()}


RANGE_SERVER = r"""
import http.server, json, sys
from pathlib import Path

folder, log = Path(sys.argv[1]), Path(sys.argv[2])


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.answer(body=False)

    def do_GET(self):
        self.answer(body=True)

    def answer(self, body):
        ranged = self.headers.get("Range", "")
        with log.open("a") as out:
            out.write(json.dumps([self.command, self.path, ranged]) + "\n")
        path = folder / self.path.split("?")[0].lstrip("/")
        if not path.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = path.read_bytes()
        if ranged.startswith("bytes="):
            first, _, last = ranged[6:].partition("-")
            start, end = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
            part = data[start:end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            part = data
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        if body:
            self.wfile.write(part)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@contextmanager
def serve_folder(folder: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server of ``folder`` that answers HEAD and ranged GET requests
    (``Range: bytes=a-b``, what GDAL's ``/vsicurl/`` and ``/vsis3/`` send).

    It runs in its own process: GDAL holds the GIL while it reads, so a server thread of
    the reading process would never answer. Yields its base URL
    (``http://127.0.0.1:PORT``) and a file with one JSON line per request it answered
    (method, path, range)."""
    log = folder.parent / f"{folder.name}-requests.jsonl"
    log.touch()
    server = subprocess.Popen([sys.executable, "-c", RANGE_SERVER, str(folder), str(log)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        yield f"http://127.0.0.1:{port}", log
    finally:
        server.terminate()
        server.wait(timeout=10)


def die(*args: Any) -> None:
    """Stand-in for a worker's task: the worker process dies (as the OOM killer does)."""
    os._exit(9)


def write_map_chips(folder: Path) -> Path:
    """Paired 64 px chips (``folder / "chips"``) of a photo-like input and a flat-colour map
    of it in :data:`MAP_PALETTE`: what a class head learns from."""
    rng = np.random.default_rng(5)
    photo = (np.stack([smooth_field(rng, (256, 256), 16) for _ in range(3)]) * 250
             ).astype(np.uint8)
    classes = np.digitize(photo[0], [60, 120, 180])
    target = np.asarray(MAP_PALETTE, np.uint8)[classes].transpose(2, 0, 1)
    a = write_raster(folder / "photo.tif", photo)
    b = write_raster(folder / "map.tif", np.ascontiguousarray(target))
    export_chips(a, b, folder / "chips", ExportOptions(tile_size=64, val_fraction=0.25, workers=1))
    return folder / "chips"


def quality_real_module() -> Any:
    """``benchmarks/quality_real.py`` as a module (it needs Pillow: skipped without it)."""
    import pytest

    pytest.importorskip("PIL")
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "quality_real.py"
    spec = importlib.util.spec_from_file_location("quality_real", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
