"""How a map model's class probabilities are best turned into colours, on real pairs.

Takes a model that ``quality_real.py`` trained (its ``--work`` folder holds the chips, the
validation and unfamiliar pairs and the palette file), translates each photo once, and
scores several ways of drawing the same probabilities with ``geogan evaluate``, as
``quality_real.py`` does: translate's default (``shaded``, its unsure pixels blurred:
the same figures as ``quality_real.py``'s), the crisp colour of the most likely class
(``--output-kind palette``), the probability-weighted mean colour, that mean kept inside
the most likely class's colour cell, and ``shaded`` unblurred for each exact radius and
shade cost of ``--grid``. The defaults of :mod:`geogan.inference.class_colours` were chosen with
it. Options clean the probabilities first (``--smooth``, ``--soften``, ``--unsure``,
``--sieve``, ``--prior``, ``--temperature``, ``--adapt``: BatchNorm's averages taken
from the photos translated) or the drawn colours after (``--blur``,
``--image-mix``), to see whether a smoother or better informed map scores better.
Several ``--model`` files (the same recipe at other seeds) draw the mean of their
probabilities: what averaging trainings would give; several ``--scales`` the mean over the
photo zoomed by each factor (multi-scale inference). ``--pairs`` scores a few pairs alone;
``--split`` names the split ``quality_real.py`` prepared the ``--work`` folder with::

    python benchmarks/quality_real.py --data ../shared/data/maps --variants faithful \\
        --work quality-real
    python benchmarks/shading.py --work quality-real --model quality-real/faithful.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path
from unittest import mock

import numpy as np
import rasterio
import torch
from quality_real import SPLITS, _strip, prepare, score, score_photos
from rasterio.features import sieve
from torch.nn.modules.batchnorm import _BatchNorm

from geogan import Translator, load_model
from geogan.inference import class_colours
from geogan.inference.scene_norms import scene_statistics
from geogan.inference.unsure_blur import DEFAULT_SIGMA, blur_unsure


def unsure_as_background(probabilities: np.ndarray, below: float) -> np.ndarray:
    """The probabilities with each pixel whose most likely class is less likely than
    ``below`` made certain background (class 0, the map's commonest colour)."""
    unsure = probabilities.max(axis=0) < below
    probabilities[:, unsure] = 0.0
    probabilities[0, unsure] = 1.0
    return probabilities


def sieved(probabilities: np.ndarray, size: int) -> np.ndarray:
    """The probabilities with each pixel of a most-likely-class region under ``size``
    pixels made certain of the class that ``rasterio.features.sieve`` gives it instead."""
    if size <= 1:
        return probabilities
    best = probabilities.argmax(0).astype(np.int16)
    kept = sieve(best, size, connectivity=4)
    rows, cols = np.nonzero(kept != best)
    probabilities[:, rows, cols] = 0.0
    probabilities[kept[rows, cols], rows, cols] = 1.0
    return probabilities


def with_priors(probabilities: np.ndarray, priors: list[str]) -> np.ndarray:
    """The probabilities with each class ``K`` of a ``K:F`` in ``priors`` weighed by ``F``,
    then normalised again: a class the model paints too readily on unfamiliar scenes
    (water on dark woods and shadows) made less likely everywhere."""
    for prior in priors:
        index, factor = prior.split(":")
        probabilities[int(index)] *= float(factor)
    return normalised(probabilities)


def tempered(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """The probabilities as the softmax of the (class-weight corrected) logits divided by
    ``temperature``: softer above 1, sharper below."""
    if temperature == 1.0:
        return probabilities
    return normalised(np.power(probabilities, 1.0 / temperature))


def normalised(weights: np.ndarray) -> np.ndarray:
    """(K, ...) non-negative class weights scaled to sum to 1 over K."""
    total: np.ndarray = weights.sum(axis=0, keepdims=True)
    return weights / total


def zoomed(translator: Translator, tiles: torch.Tensor, zoom: float) -> torch.Tensor:
    """The translator's output for ``tiles`` zoomed by ``zoom`` (bilinear, antialiased
    when shrinking), resampled back to the tiles' size."""
    if zoom == 1.0:
        return translator.translate_tiles(tiles)
    size = [round(side * zoom) for side in tiles.shape[-2:]]
    scaled = torch.nn.functional.interpolate(tiles, size=size, mode="bilinear",
                                             antialias=zoom < 1, align_corners=False)
    out = translator.translate_tiles(scaled)
    return torch.nn.functional.interpolate(out, size=list(tiles.shape[-2:]), mode="bilinear",
                                           antialias=zoom > 1, align_corners=False)


def named_norms(translator: Translator, layers: str) -> dict[str, _BatchNorm]:
    """The generator's BatchNorm layers whose names start with ``layers``, by name."""
    return {name: m for name, m in translator.generator.named_modules()
            if isinstance(m, _BatchNorm) and name.startswith(layers)}


def adapt_norms(translator: Translator, trained: dict[str, tuple[torch.Tensor, torch.Tensor]],
                tiles: list[torch.Tensor], share: float) -> None:
    """Set the BatchNorm averages of the ``trained`` layers ``share`` of the way from
    those (the model file's) to what ``translate --adapt-norm`` takes from ``tiles``, each
    its own batch (:func:`geogan.inference.scene_norms.scene_statistics`); the other
    layers keep the model file's. At ``share`` 1 with one photo, this is what the papers'
    own test code does (batch statistics of the test image)."""
    norms = named_norms(translator, "")
    with scene_statistics(translator, [t[0].numpy() for t in tiles], batch_size=1):
        adapted = {name: (norms[name].running_mean.clone(), norms[name].running_var.clone())
                   for name in trained}
    for name, (mean, var) in trained.items():
        norms[name].running_mean.copy_(torch.lerp(mean, adapted[name][0], share))
        norms[name].running_var.copy_(torch.lerp(var, adapted[name][1], share))


def box(x: np.ndarray, radius: int) -> np.ndarray:
    """The mean over each (2 radius + 1)² window of the last two axes (edges reflected)."""
    t = torch.from_numpy(np.ascontiguousarray(x, np.float64)).reshape(-1, 1, *x.shape[-2:])
    t = torch.nn.functional.pad(t, (radius,) * 4, mode="reflect")
    t = torch.nn.functional.avg_pool2d(t, 2 * radius + 1, stride=1)
    return t.reshape(x.shape).numpy()


def guided(probabilities: np.ndarray, photo: np.ndarray, radius: int, eps: float
           ) -> np.ndarray:
    """The probabilities (K, H, W) smoothed along the photo's edges by a guided filter (He
    et al. 2013) with the photo's grey levels (0-1) as the guide: each window's
    probabilities become a linear function of the grey level, so a class follows the
    photo's outlines instead of blurring across them; then clipped at 0 and normalised."""
    guide = photo.astype(np.float64).mean(0) / 255.0  # (H, W)
    mean_i = box(guide, radius)
    var_i = box(guide * guide, radius) - mean_i ** 2
    mean_p = box(probabilities, radius)
    cov = box(probabilities * guide, radius) - mean_i * mean_p
    a = cov / (var_i + eps)
    b = mean_p - a * mean_i
    out = box(a, radius) * guide + box(b, radius)
    return normalised(np.clip(out, 1e-6, None))


def pair_id(photo: Path) -> str:
    """The pair a held-out photo of ``quality_real.prepare`` belongs to (``1003_photo.tif``)."""
    return photo.stem.split("_")[0]


def blurred(colours: np.ndarray, sigma: float) -> np.ndarray:
    """(C, H, W) colours blurred by a Gaussian of ``sigma`` pixels (edges reflected)."""
    if sigma <= 0:
        return colours
    radius = int(np.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel = torch.from_numpy(taps / taps.sum())
    x = torch.from_numpy(np.ascontiguousarray(colours, np.float64))[:, None]
    x = torch.nn.functional.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = torch.nn.functional.conv2d(x, kernel.view(1, 1, 1, -1))
    x = torch.nn.functional.conv2d(x, kernel.view(1, 1, -1, 1))
    return x[:, 0].numpy()


def in_cell(drawn: np.ndarray, soft: np.ndarray, best: np.ndarray, palette: np.ndarray
            ) -> np.ndarray:
    """``drawn`` (C, H, W) moved toward ``soft`` as far as it still snaps to its most likely
    class ``best`` (H, W): the drawing's classes, and so its mIoU, stay as they were."""
    bands = palette.shape[1]
    start, toward, classes = drawn.reshape(bands, -1), (soft - drawn).reshape(bands, -1), \
        best.reshape(-1)
    own = palette.T[:, classes]  # (C, N)
    along = palette @ toward - (own * toward).sum(0)  # (K, N): (c_j - c_m) . toward
    used = palette @ (start - own) - (own * (start - own)).sum(0)  # (c_j - c_m) . (d - c_m)
    np.put_along_axis(along, classes[None], 0.0, axis=0)
    free = class_colours.cell_room(palette)[:, classes] - used
    limits = np.divide(free, along, out=np.full_like(along, np.inf), where=along > 0)
    step = np.clip(limits.min(0), 0.0, 1.0)
    return (start + step * toward).reshape(drawn.shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="a quality_real.py --work")
    parser.add_argument("--model", type=Path, required=True, nargs="+",
                        help="a model file with classes; several (the same classes, e.g. "
                        "trained with other seeds) draw the mean of their probabilities")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/maps"))
    parser.add_argument("--split", choices=list(SPLITS), default="default",
                        help="the split the --work folder was prepared with")
    parser.add_argument("--grid", default="2:300,3:150,3:300,3:500,3:1000,4:300,4:500",
                        help="exact radius:shade cost pairs to score (\"\": none)")
    parser.add_argument("--unsure-grid", default="", metavar="B:S,...",
                        help="also draw translate's default with the unsure pixels those whose "
                        "most likely class is under B, blurred with a sigma of S px (\"\": none)")
    parser.add_argument("--tta", action="store_true", help="probabilities averaged over the "
                        "8 flips and rotations (translate --tta)")
    parser.add_argument("--scales", default="1", help="probabilities averaged over the "
                        "photo zoomed by each of these factors (comma-separated; each side a "
                        "multiple of the U-Net's 2**levels), then resampled back")
    parser.add_argument("--smooth", type=int, default=0, help="box-filter the probabilities "
                        "over this many pixels first (odd; 0: none)")
    parser.add_argument("--unsure", type=float, default=0.0, help="first make pixels whose "
                        "most likely class has a lower probability certain background (0: none)")
    parser.add_argument("--sieve", type=int, default=0, help="first merge the most likely "
                        "classes' regions under this many pixels into their largest neighbour "
                        "(as gdal_sieve; 0: none)")
    parser.add_argument("--soften", type=float, default=0.0, help="first Gaussian-blur the "
                        "probabilities of pixels whose most likely class is less likely than "
                        "--below, with this sigma in pixels (0: none)")
    parser.add_argument("--below", type=float, default=1.01, help="see --soften (default: "
                        "every pixel)")
    parser.add_argument("--blur", type=float, default=0.0, help="Gaussian-blur the drawn "
                        "colours with this sigma in pixels, as the anti-aliased maps are (0: none)")
    parser.add_argument("--inexact-only", type=float, default=0.0, help="blur only the pixels "
                        "drawn further than this (on some band) from their class's colour: the "
                        "unsure ones (0: all)")
    parser.add_argument("--kept", action="store_true", help="keep each blurred colour where it "
                        "still snaps to its most likely class")
    parser.add_argument("--prior", action="append", default=[], metavar="K:F",
                        help="first weigh class K's probability by F and normalise again "
                        "(repeatable)")
    parser.add_argument("--pairs", default="", help="score only these pairs (comma-separated "
                        "ids, e.g. 1003,1011) of each split, against a strip of their own maps")
    parser.add_argument("--temperature", type=float, default=1.0, help="first soften (above "
                        "1) or sharpen (below 1) the probabilities: the logits divided by it")
    parser.add_argument("--image-mix", type=float, default=0.0, help="move each drawn colour "
                        "this share of the way to the image head's colour, as far as it still "
                        "snaps to its most likely class (0: none)")
    parser.add_argument("--image-far", type=float, default=0.0, help="with --image-mix, only "
                        "where the image head lies further than this (on some band) from the "
                        "most likely class's colour")
    parser.add_argument("--guided", default="", metavar="R:EPS", help="first smooth the "
                        "probabilities along the photo's edges: a guided filter of radius R "
                        "px, regularisation EPS (grey levels 0-1)")
    parser.add_argument("--adapt", choices=("none", "split", "chip"), default="none",
                        help="first move BatchNorm's averages to the statistics of each "
                        "split's photos together, or of each photo alone (AdaBN)")
    parser.add_argument("--adapt-share", type=float, default=1.0,
                        help="how far --adapt moves them (1: all the way)")
    parser.add_argument("--adapt-layers", default="", help="adapt only the BatchNorm "
                        "layers whose names start with this (e.g. encoder.1)")
    args = parser.parse_args()
    prepared = prepare(args.data, args.work, args.split)
    if args.pairs:
        wanted = set(args.pairs.split(","))
        held = {pair_id(photo) for pairs in prepared["scenes"].values() for photo, _ in pairs}
        if wanted - held:
            raise SystemExit(f"--pairs {sorted(wanted - held)} are not held out; "
                             f"choose from {sorted(held)}")
        scenes = {split: [(photo, drawn) for photo, drawn in pairs if pair_id(photo) in wanted]
                  for split, pairs in prepared["scenes"].items()}
        prepared["scenes"] = {split: pairs for split, pairs in scenes.items() if pairs}
        prepared["references"] = {
            split: _strip([drawn for _, drawn in pairs], args.work / f"shading_{split}_maps.tif")
            for split, pairs in prepared["scenes"].items()}
    scales = [float(zoom) for zoom in args.scales.split(",")]
    translators = [load_model(path, output="palette", tta=args.tta) for path in args.model]
    translator = translators[0]
    palette = np.asarray(translator.architecture.palette, np.float64)  # (K, C)
    # Palettes found on the same maps with other seeds may differ by a band value or two.
    for other in translators[1:]:
        colours = np.asarray(other.architecture.palette, np.float64)
        if colours.shape != palette.shape or np.abs(colours - palette).max() > 3:
            raise SystemExit("the models' class colours differ: their probabilities cannot "
                             "be averaged")
    trained = [{name: (m.running_mean.clone(), m.running_var.clone())
                for name, m in named_norms(t, args.adapt_layers).items()} for t in translators]
    probabilities, images, profiles, pixels_of = {}, {}, {}, {}
    for pairs in prepared["scenes"].values():
        photo_tiles = {}
        for photo, _ in pairs:
            with rasterio.open(photo) as src:
                pixels, profiles[photo] = src.read(), src.profile
            pixels_of[photo] = pixels
            photo_tiles[photo] = torch.from_numpy(
                translator.input_normalization.normalize(pixels))[None]
        if args.adapt == "split":
            for t, norms in zip(translators, trained, strict=True):
                adapt_norms(t, norms, list(photo_tiles.values()), args.adapt_share)
        for photo, _ in pairs:
            tiles = photo_tiles[photo]
            if args.adapt == "chip":
                for t, norms in zip(translators, trained, strict=True):
                    adapt_norms(t, norms, [tiles], args.adapt_share)
            out = sum(zoomed(t, tiles, zoom) for t in translators
                      for zoom in scales) / (len(translators) * len(scales))
            if args.image_mix:  # the image head's colours, only when they are mixed in
                images[photo] = translator.output_normalization.denormalize(
                    np.clip(out[0, :translator.image_bands].numpy(), -1.0, 1.0)
                ).astype(np.float64)
            out = out[:, translator.image_bands:]
            if args.smooth:
                out = torch.nn.functional.avg_pool2d(out, args.smooth, 1, args.smooth // 2,
                                                     count_include_pad=False)
            out = out[0]
            if args.soften:
                soft = torch.from_numpy(blurred(out.numpy().astype(np.float64), args.soften))
                out = torch.where(out.max(0).values < args.below, soft.to(out.dtype), out)
            p = tempered(out.numpy().astype(np.float64), args.temperature)
            if args.guided:
                radius, eps = args.guided.split(":")
                p = guided(p, pixels_of[photo], int(radius), float(eps))
            probabilities[photo] = with_priors(sieved(unsure_as_background(
                p, args.unsure), args.sieve), args.prior)

    def crisp(p: np.ndarray) -> np.ndarray:
        return np.moveaxis(palette[p.argmax(0)], -1, 0)

    def mean(p: np.ndarray) -> np.ndarray:
        return np.tensordot(palette.T, p, axes=1)

    def shaded(radius: float, cost: float) -> object:
        def draw(p: np.ndarray) -> np.ndarray:
            with mock.patch.multiple(class_colours, EXACT_RADIUS=radius, SHADE_COST=cost):
                return class_colours.shaded_colours(p, palette)
        return draw

    def unsure_blurred(below: float, sigma: float) -> object:
        def draw(p: np.ndarray) -> np.ndarray:
            colours, unsure = class_colours.shade(p, palette, below)
            return blur_unsure(colours, unsure, np.ones(unsure.shape, bool), sigma)
        return draw

    default = unsure_blurred(translator.unsure_below, DEFAULT_SIGMA)

    ways = {"translate's default (shaded, unsure pixels blurred)": default,
            "crisp (palette)": crisp, "mean colour": mean,
            "mean, in the class's cell": shaded(np.inf, 0.0)}
    for pair in filter(None, args.grid.split(",")):
        radius, cost = (float(v) for v in pair.split(":"))
        ways[f"shaded, radius {radius:g}, cost {cost:g}"] = shaded(radius, cost)
    for pair in filter(None, args.unsure_grid.split(",")):
        below, sigma = (float(v) for v in pair.split(":"))
        ways[f"unsure under {below:g} blurred {sigma:g} px"] = unsure_blurred(below, sigma)
    print("| drawing | split | mIoU | δ5 | δ10 | PSNR | SSIM | RMSE | per photo: mIoU | δ5 | δ10 "
          "| PSNR | SSIM | RMSE |")
    print("| --- | --- |" + " ---: |" * 12)
    for name, draw in ways.items():
        for split, pairs in prepared["scenes"].items():
            outputs = []
            for photo, _ in pairs:
                p = probabilities[photo]
                drawn = draw(p)
                if args.inexact_only:  # pixels drawn near their class colour stay
                    unsure = np.abs(drawn - crisp(p)).max(0) > args.inexact_only
                    soft = blur_unsure(drawn.astype(np.float32), unsure,
                                       np.ones(unsure.shape, bool), args.blur)
                else:
                    soft = blurred(drawn, args.blur)
                if args.kept:
                    soft = in_cell(drawn, soft, p.argmax(0), palette)
                if args.image_mix:
                    image = images[photo]
                    far = np.abs(image - crisp(p)).max(0) > args.image_far
                    mixed = in_cell(soft, soft + args.image_mix * (image - soft), p.argmax(0),
                                    palette)
                    soft = np.where(far, mixed, soft)
                values = np.clip(np.rint(soft), 0, 255).astype(np.uint8)
                path = args.work / f"shading_{photo.stem}.tif"
                with rasterio.open(path, "w", **profiles[photo]) as dst:
                    dst.write(values)
                outputs.append(path)
            r = score(_strip(outputs, args.work / f"shading_{split}.tif"),
                      prepared["references"][split], args.work, prepared["palette"])
            each = score_photos(outputs, [truth for _, truth in pairs], args.work,
                                prepared["palette"])
            print(f"| {name} | {split} | {r['miou']:.3f} | {r['d5']:.3f} | {r['d10']:.3f} | "
                  f"{r['psnr']:.2f} | {r['ssim']:.3f} | {r['rmse']:.2f} | {each['miou']:.3f} | "
                  f"{each['d5']:.3f} | {each['d10']:.3f} | {each['psnr']:.2f} | "
                  f"{each['ssim']:.3f} | {each['rmse']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
