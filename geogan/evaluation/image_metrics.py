"""Image quality of translated chips: L1, PSNR and SSIM, per image, with a validity mask.

The trainer scores each validation batch with :func:`image_metrics` and averages the
per-image values over the whole validation loader with :class:`MetricMean`, which holds
sums and counts only, never the images.

Conventions shared by every function here:

* Images are float tensors ``(N, C, H, W)`` in the model's normalised space ``[-1, 1]``,
  so the default ``data_range`` (max minus min of that space) is 2.
* ``mask`` is ``(N, 1, H, W)`` of 0/1 (float or bool), 1 where a pixel is valid; ``None``
  means every pixel is valid. Invalid pixels (nodata, chip borders outside the scene)
  never change a result, whatever values they hold, NaN included.
* Every function returns one value per image, shape ``(N,)``, float64 on the input's
  device. An image with nothing valid to score gives NaN, which :class:`MetricMean`
  leaves out of its averages.
* Scores are computed in float64 with autocast turned off, whatever precision the
  caller trains in: SSIM subtracts nearly equal local moments, which float16/bfloat16
  (or even float32, to about 1e-5) would blur. Inputs are detached: these are
  evaluation metrics, not losses.


**PSNR convention** (everywhere in geogan: training validation, the Python API's
``compute_metrics``, ``geogan evaluate`` and the demo): identical images have no finite
PSNR; it is reported as :data:`PSNR_CAP_DB` (100 dB), and no PSNR exceeds it
(:func:`psnr` on tensors, :func:`psnr_from_mse` on a mean squared error).

Class scores of maps are :mod:`geogan.evaluation.class_metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "METRIC_NAMES",
    "PSNR_CAP_DB",
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_SIGMA",
    "SSIM_WINDOW",
    "MetricMean",
    "gaussian_window_1d",
    "image_metrics",
    "l1",
    "psnr",
    "psnr_from_mse",
    "ssim",
    "ssim_map",
]

METRIC_NAMES = ("l1", "psnr", "ssim")
"""The keys of :func:`image_metrics`, in the order they are reported."""

PSNR_CAP_DB = 100.0
"""PSNR of identical images (MSE 0), and the largest PSNR ever reported."""

SSIM_WINDOW = 11
"""Side of the Gaussian SSIM window, in pixels (Wang et al. 2004)."""

SSIM_SIGMA = 1.5
"""Standard deviation of the Gaussian SSIM window, in pixels."""

SSIM_K1 = 0.01
"""SSIM stabilising constant of the luminance term: ``C1 = (K1 * data_range) ** 2``."""

SSIM_K2 = 0.03
"""SSIM stabilising constant of the contrast-structure term: ``C2 = (K2 * data_range) ** 2``."""

_DTYPE = torch.float64


def _prepare(
    prediction: Tensor, target: Tensor, mask: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Check shapes; return float64 copies with invalid pixels zeroed, and the bool mask.

    Zeroing invalid pixels (instead of multiplying by the mask) keeps NaN or infinite
    nodata values from leaking into sums through ``0 * nan``.

    Returns:
        ``prediction`` and ``target`` as ``(N, C, H, W)`` float64, and the validity mask
        as ``(N, 1, H, W)`` bool, all on ``prediction``'s device.

    Raises:
        ValueError: If the shapes do not agree or are not 4-dimensional.
    """
    if prediction.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W); got shape {tuple(prediction.shape)}")
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} "
            "must have the same shape"
        )
    n, _, h, w = prediction.shape
    if mask is None:
        valid = torch.ones((n, 1, h, w), dtype=torch.bool, device=prediction.device)
    else:
        if tuple(mask.shape) != (n, 1, h, w):
            raise ValueError(f"mask must be (N, 1, H, W) = {(n, 1, h, w)}; got {tuple(mask.shape)}")
        valid = mask.detach().to(prediction.device) > 0.5  # (N, 1, H, W)
    zero = torch.zeros((), dtype=_DTYPE, device=prediction.device)
    x = torch.where(valid, prediction.detach().to(_DTYPE), zero)  # (N, C, H, W)
    y = torch.where(valid, target.detach().to(_DTYPE), zero)  # (N, C, H, W)
    return x, y, valid


def _masked_mean(values: Tensor, valid: Tensor) -> Tensor:
    """Mean of ``values`` (N, C, H, W) over each image's valid pixels and all channels.

    ``values`` must already be zero where invalid. An image without a valid pixel gives
    NaN (0 / 0).
    """
    total = values.sum(dim=(1, 2, 3))  # (N,)
    count = valid.sum(dim=(1, 2, 3)).to(_DTYPE) * values.shape[1]  # (N,)
    return total / count


def l1(prediction: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean absolute difference of each image over its valid pixels and all channels.

    This is the pixel term Pix2Pix trains on, so the validation score reads on the same
    scale as the training loss (in normalised units: 0.01 is 1 % of the half range).

    Args:
        prediction: Translated images, (N, C, H, W) in [-1, 1].
        target: Reference images, same shape.
        mask: Valid pixels, (N, 1, H, W) of 0/1; ``None`` for all valid.

    Returns:
        (N,) float64; NaN for an image with no valid pixel.

    Raises:
        ValueError: If the shapes do not agree.
    """
    with torch.autocast(device_type=prediction.device.type, enabled=False):
        x, y, valid = _prepare(prediction, target, mask)
        return _masked_mean((x - y).abs(), valid)


def psnr(
    prediction: Tensor, target: Tensor, mask: Tensor | None = None, data_range: float = 2.0
) -> Tensor:
    """Peak signal-to-noise ratio of each image, ``10 * log10(data_range**2 / MSE)``, in dB.

    The mean squared error is taken over the valid pixels and all channels of an image.
    Identical images (MSE 0) would give infinity, which would poison every average; the
    result is therefore capped at :data:`PSNR_CAP_DB` (100 dB), the value identical images
    get. Averages of PSNR over images are means of per-image dB values (as most papers
    report), not the PSNR of the mean MSE.

    Args:
        prediction: Translated images, (N, C, H, W) in [-1, 1].
        target: Reference images, same shape.
        mask: Valid pixels, (N, 1, H, W) of 0/1; ``None`` for all valid.
        data_range: Max minus min of the value space: 2 for [-1, 1].

    Returns:
        (N,) float64 in dB, at most 100; NaN for an image with no valid pixel.

    Raises:
        ValueError: If the shapes do not agree or ``data_range`` is not positive.
    """
    if not data_range > 0:
        raise ValueError(f"data_range must be positive; got {data_range}")
    with torch.autocast(device_type=prediction.device.type, enabled=False):
        x, y, valid = _prepare(prediction, target, mask)
        mse = _masked_mean((x - y).square(), valid)  # (N,)
        # mse == 0 gives +inf here, and the clamp turns it into the cap; NaN stays NaN.
        db = 10.0 * torch.log10(data_range**2 / mse)
        return db.clamp(max=PSNR_CAP_DB)


def psnr_from_mse(mse: float, data_range: float) -> float:
    """PSNR in dB of a mean squared error, ``10 * log10(data_range**2 / mse)``, capped at
    :data:`PSNR_CAP_DB` as :func:`psnr` is (an MSE of 0 gives the cap).

    Args:
        mse: Mean squared error, at least 0.
        data_range: Max minus min of the value space, positive.
    """
    if mse == 0:
        return PSNR_CAP_DB
    return min(10.0 * math.log10(data_range**2 / mse), PSNR_CAP_DB)


def gaussian_window_1d(
    size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, device: torch.device | None = None
) -> Tensor:
    """The normalised 1-D Gaussian of the SSIM window; its outer product is the 2-D window.

    Returns:
        (size,) float64 summing to 1.
    """
    offsets = torch.arange(size, dtype=_DTYPE, device=device) - (size - 1) / 2
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


def ssim_map(
    prediction: Tensor, target: Tensor, mask: Tensor | None = None, data_range: float = 2.0
) -> tuple[Tensor, Tensor]:
    """The SSIM of every window position of every channel, and which positions count.

    The building block of :func:`ssim`, exposed so that a scene larger than memory can be
    scored window by window (``geogan.evaluation.rasters``): a caller that reads each window with a
    margin of ``SSIM_WINDOW // 2`` pixels and keeps the positions whose centre lies in the
    window's own part gets exactly the sums of the one-shot computation.

    Position ``(i, j)`` of the map is the window centred on pixel ``(i + 5, j + 5)`` of
    the image ('valid' placement, no padding); see :func:`ssim` for the definition.

    Args:
        prediction: Images, (N, C, H, W), in any units; H and W at least 11.
        target: Reference images, same shape and units.
        mask: Valid pixels, (N, 1, H, W) of 0/1; ``None`` for all valid.
        data_range: Max minus min of the value space (2 for [-1, 1], 255 for uint8).

    Returns:
        The SSIM map, (N, C, H - 10, W - 10) float64 (meaningless where not counted), and
        the positions whose whole window lies on valid pixels, (N, 1, H - 10, W - 10) bool.

    Raises:
        ValueError: If the shapes do not agree, an image is smaller than the window, or
            ``data_range`` is not positive.
    """
    if not data_range > 0:
        raise ValueError(f"data_range must be positive; got {data_range}")
    with torch.autocast(device_type=prediction.device.type, enabled=False):
        x, y, valid = _prepare(prediction, target, mask)
        n, c, h, w = x.shape
        if h < SSIM_WINDOW or w < SSIM_WINDOW:
            raise ValueError(
                f"SSIM needs images of at least {SSIM_WINDOW} x {SSIM_WINDOW} pixels; "
                f"got {h} x {w}"
            )
        c1 = (SSIM_K1 * data_range) ** 2
        c2 = (SSIM_K2 * data_range) ** 2

        # The five local moments of every channel, filtered in one separable pass.
        planes = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (N, 5C, H, W)
        planes = planes.reshape(n * 5 * c, 1, h, w)  # (5NC, 1, H, W)
        g = gaussian_window_1d(device=x.device)
        planes = F.conv2d(planes, g.view(1, 1, SSIM_WINDOW, 1))  # (5NC, 1, H-10, W)
        planes = F.conv2d(planes, g.view(1, 1, 1, SSIM_WINDOW))  # (5NC, 1, H-10, W-10)
        ho, wo = h - SSIM_WINDOW + 1, w - SSIM_WINDOW + 1
        mu_x, mu_y, xx, yy, xy = planes.reshape(n, 5, c, ho, wo).unbind(dim=1)  # (N, C, Ho, Wo)

        var_x = xx - mu_x * mu_x
        var_y = yy - mu_y * mu_y
        cov = xy - mu_x * mu_y
        values = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
            (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
        )  # (N, C, Ho, Wo)

        # A position counts only if no invalid pixel lies under its window.
        invalid = (~valid).to(torch.float32)  # (N, 1, H, W)
        window_ok = F.max_pool2d(invalid, SSIM_WINDOW, stride=1) == 0  # (N, 1, Ho, Wo)
        return values, window_ok


def ssim(
    prediction: Tensor, target: Tensor, mask: Tensor | None = None, data_range: float = 2.0
) -> Tensor:
    """Structural similarity of each image (Wang et al. 2004), averaged over channels.

    Local means, variances and the covariance are Gaussian-weighted (11 x 11 window,
    sigma 1.5, weights summing to 1) and are population moments (no ``n / (n - 1)``
    correction); ``C1 = (0.01 * data_range)**2`` and ``C2 = (0.03 * data_range)**2``.
    Each channel gets its own SSIM map (:func:`ssim_map`); the score of an image is the
    mean of its maps over channels and over the window positions whose *whole* window
    lies on valid pixels (the mask eroded by the window).

    Border handling: the window is only placed where it fits inside the image ('valid'
    convolution, no padding), so an ``H x W`` image is scored on ``(H - 10) x (W - 10)``
    positions and no padded value ever enters a score. scikit-image's
    ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=2, channel_axis=0)`` filters with reflected
    borders and then crops the same 5-pixel margin before averaging, so on unmasked
    images the two agree to float rounding (``tests/test_evaluate.py`` checks it).

    Args:
        prediction: Translated images, (N, C, H, W) in [-1, 1], H and W at least 11.
        target: Reference images, same shape.
        mask: Valid pixels, (N, 1, H, W) of 0/1; ``None`` for all valid.
        data_range: Max minus min of the value space: 2 for [-1, 1].

    Returns:
        (N,) float64, at most 1 (1 for identical images); NaN for an image where no
        11 x 11 window lies wholly on valid pixels.

    Raises:
        ValueError: If the shapes do not agree, an image is smaller than the window, or
            ``data_range`` is not positive.
    """
    with torch.autocast(device_type=prediction.device.type, enabled=False):
        values, window_ok = ssim_map(prediction, target, mask, data_range)
        c = values.shape[1]
        zero = torch.zeros((), dtype=_DTYPE, device=values.device)
        total = torch.where(window_ok, values, zero).sum(dim=(1, 2, 3))  # (N,)
        count = window_ok.sum(dim=(1, 2, 3)).to(_DTYPE) * c  # (N,)
        return total / count


def image_metrics(
    prediction: Tensor, target: Tensor, mask: Tensor | None = None
) -> dict[str, Tensor]:
    """L1, PSNR and SSIM of each image, for images in [-1, 1] (``data_range`` 2).

    Args:
        prediction: Translated images, (N, C, H, W) in [-1, 1].
        target: Reference images, same shape.
        mask: Valid pixels, (N, 1, H, W) of 0/1; ``None`` for all valid.

    Returns:
        ``{"l1": ..., "psnr": ..., "ssim": ...}``, each (N,) float64.

    Raises:
        ValueError: If the shapes do not agree or the images are smaller than 11 x 11.
    """
    return {
        "l1": l1(prediction, target, mask),
        "psnr": psnr(prediction, target, mask),
        "ssim": ssim(prediction, target, mask),
    }


class MetricMean:
    """Running mean of per-image metrics over a validation loader.

    Keeps one sum and one count per metric name, so memory does not grow with the
    number of batches. NaN values (images with nothing valid to score) are left out of
    both, so they neither count nor poison the mean; infinite values are kept, as they
    would point at a real problem.

    Example:
        >>> mean = MetricMean()
        >>> for batch in loader:  # doctest: +SKIP
        ...     mean.update(image_metrics(generator(batch.a), batch.b, batch.mask))
        >>> mean.result()  # doctest: +SKIP
        {'l1': 0.12, 'psnr': 21.3, 'ssim': 0.61}
    """

    def __init__(self, names: Iterable[str] = METRIC_NAMES) -> None:
        """Start empty.

        Args:
            names: Metrics always present in :meth:`result` (NaN until a value is seen);
                other names passed to :meth:`update` are added as they come.
        """
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        for name in names:
            self._sums[name] = 0.0
            self._counts[name] = 0

    def update(self, metrics: Mapping[str, Tensor]) -> None:
        """Add the per-image values of one batch.

        Args:
            metrics: Name to per-image values, each (N,) (any shape is flattened), as
                :func:`image_metrics` returns them.
        """
        for name, values in metrics.items():
            flat = values.detach().to(device="cpu", dtype=torch.float64).reshape(-1)  # (N,)
            kept = flat[~torch.isnan(flat)]
            self._sums[name] = self._sums.get(name, 0.0) + float(kept.sum())
            self._counts[name] = self._counts.get(name, 0) + int(kept.numel())

    def counts(self) -> dict[str, int]:
        """Number of (non-NaN) values averaged so far, per metric."""
        return dict(self._counts)

    def result(self) -> dict[str, float]:
        """Mean of each metric over the values seen; NaN for a metric with none."""
        return {
            name: self._sums[name] / count if count else math.nan
            for name, count in self._counts.items()
        }
