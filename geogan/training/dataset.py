"""A torch dataset of chip pairs, and the keys that decide data order and augmentation.

The chip folders themselves are read by :mod:`geogan.training.chip_folder`.

Data order and augmentation are decided by *keys*, ``(index_a, index_b, transform)``,
drawn by :func:`epoch_keys` from the seed and the epoch alone. A :class:`ChipDataset`
is indexed by keys and a :class:`KeySampler` hands them to a ``DataLoader``, so the
batches do not depend on the number of loader workers and training resumes
bit-for-bit from any epoch.

Every sample, paired or not, is the same dict::

    {"a": (Ca, H, W) float32 in [-1, 1], "b": (Cb, H, W) float32 in [-1, 1],
     "mask_a": (1, H, W) float32 0/1, "mask_b": (1, H, W) float32 0/1}

with invalid (nodata) pixels set to 0 in "a" and "b". For paired data both masks are
the pixels valid in *both* chips, so that losses can ignore nodata of either.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from geogan.nn.normalization import BandNormalization
from geogan.training.chip_folder import SPLITS, ChipFolder, read_chip

#: (index of the chip of domain a, index of the chip of domain b, dihedral transform).
Key = tuple[int, int, int]

# --------------------------------------------------------------------------- keys


def dihedral(array: np.ndarray, transform: int) -> np.ndarray:
    """One of the 8 flips and right-angle rotations of the last two axes.

    Args:
        array: Array of shape (..., H, W), e.g. (C, H, W) pixels or an (H, W) mask.
        transform: 0 = identity; 1–3 = ``rot90`` ``transform`` times; 4–7 =
            horizontal flip, then ``rot90`` ``transform - 4`` times.

    Returns:
        A new C-contiguous array.

    Raises:
        ValueError: If ``transform`` is not in 0..7.
    """
    if not 0 <= transform < 8:
        raise ValueError(f"transform must be in 0..7, not {transform}")
    view = array[..., ::-1] if transform >= 4 else array
    view = np.rot90(view, transform % 4, axes=(-2, -1))
    return np.array(view, order="C", copy=True)


def epoch_keys(folder: ChipFolder, epoch: int, seed: int, augment: bool,
               repeats: Sequence[int] | None = None) -> list[Key]:
    """The training keys of one epoch, from the seed and the epoch alone.

    Paired: each pair once, in a random order, ``index_b == index_a``; with ``repeats``
    (:func:`geogan.training.rare_repeats.chip_repeats`) as many pairs as there are,
    drawn without replacement from the pairs each counted that many times. Unpaired (as the
    CycleGAN reference): ``max(len(a), len(b))`` keys whose ``index_a`` cycles through a
    random order of domain a and whose ``index_b`` is drawn uniformly from domain b.
    The transform is a random :func:`dihedral` one when ``augment``, else 0; both chips
    of a key get the same one.

    Args:
        folder: The opened chip folder.
        epoch: The epoch number (any non-negative int).
        seed: The training seed (non-negative).
        augment: Draw flips and rotations.
        repeats: Paired only: how many times each training pair counts in the draw.

    Returns:
        The keys, in order.
    """
    rng = np.random.default_rng([seed, epoch])
    n_a, n_b = len(folder.train["a"]), len(folder.train["b"])
    if repeats is None:
        order = rng.permutation(n_a)
    else:
        if not folder.paired or len(repeats) != n_a:
            raise ValueError(f"repeats need paired chips and one count per pair ({n_a}), "
                             f"not {len(repeats)}")
        order = rng.permutation(np.repeat(np.arange(n_a), repeats))[:n_a]
    if folder.paired:
        index_a = index_b = order
    else:
        length = max(n_a, n_b)
        index_a = order[np.arange(length) % n_a]
        index_b = rng.integers(0, n_b, size=length)
    transforms = (
        rng.integers(0, 8, size=len(index_a)) if augment else np.zeros(len(index_a), np.int64)
    )
    return list(zip(index_a.tolist(), index_b.tolist(), transforms.tolist(), strict=True))


def val_keys(folder: ChipFolder) -> list[Key]:
    """Every validation chip of a once, untransformed; unpaired chips of b cycle.

    Args:
        folder: The opened chip folder.

    Returns:
        The keys, empty when there is no validation chip.
    """
    n_a, n_b = len(folder.val["a"]), len(folder.val["b"])
    if n_a == 0 or n_b == 0:
        return []
    return [(i, i if folder.paired else i % n_b, 0) for i in range(n_a)]


# --------------------------------------------------------------------------- dataset


class ChipDataset(Dataset[dict[str, torch.Tensor]]):
    """The chips of one split, indexed by keys ``(index_a, index_b, transform)``.

    Args:
        folder: The opened chip folder.
        split: ``train`` or ``val``.
        norm_a: Normalisation of domain a.
        norm_b: Normalisation of domain b.
        cache_bytes: Bytes of chips kept in memory after their first read, as the file
            stores them (uint8 chips take a quarter of their float32 size): each later
            read of a kept chip skips opening and decoding the file, which took about
            2 ms a chip, as long as a narrow network's step takes for its maths on a
            small CPU. The chips read first are kept until the budget is spent (the
            order is random each epoch, so a least-recently-used policy would only
            churn); 0 keeps none. Each loader worker process keeps its own.

    Raises:
        ValueError: If ``split`` is unknown or a normalisation's band count differs
            from its domain's.
    """

    def __init__(self, folder: ChipFolder, split: str, norm_a: BandNormalization,
                 norm_b: BandNormalization, cache_bytes: int = 0) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
        for domain, norm in (("a", norm_a), ("b", norm_b)):
            bands = folder.domains[domain].bands
            if norm.bands != bands:
                raise ValueError(
                    f"the normalisation of domain {domain} has {norm.bands} band(s) but its "
                    f"chips have {bands}"
                )
        self.folder = folder
        self.split = split
        self.chips: dict[str, tuple[Path, ...]] = getattr(folder, split)
        self.norms = {"a": norm_a, "b": norm_b}
        self.cache_bytes = cache_bytes
        self._kept: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        self._kept_bytes = 0

    def __len__(self) -> int:
        return len(self.chips["a"])

    def __getitem__(self, key: Key) -> dict[str, torch.Tensor]:
        index_a, index_b, transform = key
        a, valid_a = self._load("a", index_a)  # (Ca, H, W), (H, W)
        b, valid_b = self._load("b", index_b)  # (Cb, H, W), (H, W)
        if self.folder.paired:
            valid_a = valid_b = valid_a & valid_b
        sample: dict[str, torch.Tensor] = {}
        for name, pixels, valid in (("a", a, valid_a), ("b", b, valid_b)):
            pixels = np.where(valid, pixels, np.float32(0.0))
            sample[name] = torch.from_numpy(dihedral(pixels, transform))
            mask = dihedral(valid[None].astype(np.float32), transform)  # (1, H, W)
            sample[f"mask_{name}"] = torch.from_numpy(mask)
        return sample

    def _load(self, domain: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        data, valid = self._read(domain, index)
        return self.norms[domain].normalize(data), valid

    def _read(self, domain: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        """A chip's pixels and validity, from memory when kept (callers do not write to
        them: normalising makes a new array)."""
        kept = self._kept.get((domain, index))
        if kept is not None:
            return kept
        data, valid = read_chip(self.chips[domain][index])
        size = data.nbytes + valid.nbytes
        if self._kept_bytes + size <= self.cache_bytes:
            self._kept[domain, index] = (data, valid)
            self._kept_bytes += size
        return data, valid


class KeySampler(Sampler[Key]):
    """Yields the given keys in order (for ``DataLoader(..., sampler=KeySampler(keys))``).

    Args:
        keys: Keys from :func:`epoch_keys` or :func:`val_keys`.
    """

    def __init__(self, keys: Sequence[Key]) -> None:
        self.keys = list(keys)

    def __iter__(self) -> Iterator[Key]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)
