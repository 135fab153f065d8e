"""TensorBoard event files of a training run (``geogan train --tensorboard DIR``).

At every validation (the lines of ``log.jsonl``) rank 0 writes, with the step: the mean
losses since the previous validation as ``loss/<name>``, the validation metrics as
``val/<name>``, the learning rate as ``lr`` and the preview grid (input | output | target)
as the image ``preview``. ``tensorboard --logdir DIR`` shows them.

A new run purges what an earlier run left in the same folder from step 0 on; a resumed one
purges only what came after its checkpoint, so its curves continue without repeats.

TensorBoard is an optional extra (``pip install 'geogan[tensorboard]'``), imported only
when a run asks for it: :func:`require_tensorboard` checks for it before training starts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from geogan.errors import ConfigError, OutputError

INSTALL_HINT = "pip install 'geogan[tensorboard]'"


def require_tensorboard() -> Any:
    """torch's ``SummaryWriter`` class.

    Raises:
        ConfigError: If the ``tensorboard`` package is not installed.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(f"--tensorboard needs the tensorboard package: {INSTALL_HINT}"
                          ) from None
    return SummaryWriter


class TensorBoardLog:
    """One run's event files: :meth:`write` at each validation, :meth:`close` at the end."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def write(self, step: int, lr: float, losses: Mapping[str, float],
              metrics: Mapping[str, float], preview: NDArray[np.uint8] | None) -> None:
        """Scalars of one validation and its (3, H, W) uint8 preview grid, at ``step``."""
        for name, value in losses.items():
            self._writer.add_scalar(f"loss/{name}", value, step)
        for name, value in metrics.items():
            self._writer.add_scalar(f"val/{name}", value, step)
        self._writer.add_scalar("lr", lr, step)
        if preview is not None:
            self._writer.add_image("preview", np.moveaxis(preview, 0, -1), step,
                                   dataformats="HWC")
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


@contextlib.contextmanager
def tensorboard_log(folder: str | os.PathLike[str] | None, step: int, resumed: bool
                    ) -> Iterator[TensorBoardLog | None]:
    """The event files in ``folder`` (``None``: no TensorBoard, yields ``None``), closed on
    leaving, also after an error or Ctrl-C.

    Args:
        folder: Where to write the event files (made if missing).
        step: The step the run starts from.
        resumed: The run continues a checkpoint at ``step``: keep the events up to it.

    Raises:
        ConfigError: If the ``tensorboard`` package is not installed.
        OutputError: If the folder cannot be written.
    """
    if folder is None:
        yield None
        return
    summary_writer = require_tensorboard()
    try:
        writer = summary_writer(log_dir=os.fspath(folder),
                                purge_step=step + 1 if resumed else 0)
    except OSError as error:
        raise OutputError(f"cannot write TensorBoard events to {folder}: "
                          f"{error.strerror or error}") from None
    log = TensorBoardLog(writer)
    try:
        yield log
    finally:
        log.close()
