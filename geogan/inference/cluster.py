"""Many scenes on a Dask distributed cluster: one task per scene.

``geogan translate SCENES... --out-dir DIR --cluster ADDRESS`` (or
``translate_batch(..., cluster=...)``) submits one task per scene to the scheduler at
ADDRESS; ``local:N`` starts a ``LocalCluster`` of N worker processes on this machine
instead. Each task runs :func:`geogan.inference.scene.translate_scene`, the same code as a batch
on one machine: the same streaming engine, atomic outputs, skip-existing and failure
report. Each worker process loads the model once and keeps it for the scenes it gets.

The workers open the scenes, the model file and the output folder by the paths given
here, so on a real cluster those paths must mean the same on every machine (a shared or
network file system, as for any Dask job on files).

Dask is optional (``pip install 'geogan[distributed]'``) and imported only here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from geogan.errors import ConfigError, GeoganError, GeoganWarning
from geogan.inference.scene import (
    BatchReport,
    Neighbourhood,
    SceneOutcome,
    TranslateOptions,
    translate_scene,
    translator_for,
)
from geogan.inference.translator import Translator
from geogan.nn.model_file import read_model_file
from geogan.outputs import remove_partials

LOCAL_PREFIX = "local"
CONNECT_TIMEOUT = "20s"

_translators: dict[tuple[Any, ...], Translator] = {}
_lock = threading.Lock()
_loads = 0


def translate_on_cluster(sources: Sequence[str], outputs: Sequence[Path],
                         model: str | os.PathLike[str], settings: TranslateOptions,
                         cluster: Any,
                         scene_progress: Callable[[int, int], None] | None = None,
                         places: Sequence[Neighbourhood | None] | None = None,
                         ) -> BatchReport:
    """Translate ``sources`` into ``outputs`` with one Dask task per scene.

    Args:
        sources: The scenes.
        outputs: Where each scene's output goes (checked by the caller).
        model: The model file; loaded here once to fail early if it is damaged.
        settings: Translation settings, as for one machine.
        cluster: A scheduler address (``tcp://host:8786``), ``local:N`` (a LocalCluster
            of N processes, started and stopped here) or a ``distributed.Client``.
        scene_progress: Called with (scenes finished, scenes in all).
        places: Each scene's place in a mosaic of the batch (``--mosaic``), or None.

    Returns:
        The outcomes in the order of ``sources``.

    Raises:
        ConfigError: Dask distributed is not installed, ``local:N`` is malformed, or
            the scheduler cannot be reached.
        ModelFileError: If the model file is missing or damaged.
    """
    distributed = _import_distributed()
    model_path = os.path.abspath(os.fspath(model))
    read_model_file(model_path)  # one clear error here rather than one per scene
    start = time.perf_counter()
    outcomes: list[SceneOutcome | None] = [None] * len(sources)
    try:
        with _client(cluster, distributed) as (client, threads):
            _run(client, distributed, threads, sources, outputs, model_path, settings,
                 start, outcomes, scene_progress, places or [None] * len(sources))
    except BaseException:
        if _is_local(cluster):  # its workers were stopped mid-scene: clean up after them
            for output, outcome in zip(outputs, outcomes, strict=True):
                if outcome is None:
                    remove_partials(output)
        raise
    done = [outcome for outcome in outcomes if outcome is not None]
    return BatchReport(tuple(done), time.perf_counter() - start)


def _run(client: Any, distributed: Any, threads: int | None, sources: Sequence[str],
         outputs: Sequence[Path], model_path: str, settings: TranslateOptions, start: float,
         outcomes: list[SceneOutcome | None],
         scene_progress: Callable[[int, int], None] | None,
         places: Sequence[Neighbourhood | None]) -> None:
    """Submit one task per scene and fill ``outcomes`` as they finish."""
    futures = [client.submit(_translate_task, source, output, model_path, settings, threads,
                             place, pure=False, key=f"geogan-scene-{i}-{os.getpid()}-{start}")
               for i, (source, output, place) in enumerate(zip(sources, outputs, places,
                                                               strict=True))]
    position = {future.key: i for i, future in enumerate(futures)}
    try:
        for finished, future in enumerate(distributed.as_completed(futures), 1):
            i = position[future.key]
            outcomes[i] = outcome = _outcome(future, sources[i], outputs[i])
            for message in outcome.warnings:
                warnings.warn(message, GeoganWarning, stacklevel=2)
            if scene_progress is not None:
                scene_progress(finished, len(futures))
    except BaseException:  # Ctrl-C: take the remaining scenes off the cluster
        client.cancel(futures)
        raise


def model_loads() -> int:
    """How many times this process loaded a model for cluster tasks (once per model and
    settings; tests and benchmarks ask the workers)."""
    return _loads


def _translate_task(source: str, output: Path, model_path: str, settings: TranslateOptions,
                    threads: int | None, place: Neighbourhood | None = None) -> SceneOutcome:
    """What a worker runs for one scene."""
    from distributed import get_worker

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    # The worker's own stderr is the terminal of a local cluster: its warnings go back
    # with the outcome instead (geogan's), or nowhere (the libraries', as at home).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            translator = _worker_translator(model_path, settings)
        except GeoganError as error:  # e.g. the model's path does not exist on this worker
            outcome = SceneOutcome(source, output, "failed", str(error))
        else:
            outcome = translate_scene(source, output, translator, settings, within=place)
    said = tuple(dict.fromkeys(str(w.message) for w in caught
                               if issubclass(w.category, GeoganWarning)))
    return replace(outcome, worker=get_worker().address, warnings=said)


def _worker_translator(model_path: str, settings: TranslateOptions) -> Translator:
    """This worker's translator for the model and settings, loaded on first use."""
    global _loads
    stat = os.stat(model_path)
    key = (model_path, stat.st_mtime_ns, stat.st_size, settings.direction, settings.device,
           settings.precision)
    with _lock:
        if key not in _translators:
            _translators.clear()  # one model at a time: a new file replaces the old
            _translators[key] = translator_for(model_path, settings)
            _loads += 1
        return _translators[key]


def _outcome(future: Any, source: str, output: Path) -> SceneOutcome:
    try:
        outcome: SceneOutcome = future.result()
    except Exception as error:  # a worker died, or raised: report it and go on
        message = str(error).strip().splitlines()
        text = message[0] if message else ""
        return SceneOutcome(source, output, "failed",
                            f"{type(error).__name__} on the cluster{': ' + text if text else ''}")
    return outcome


@contextlib.contextmanager
def _client(cluster: Any, distributed: Any) -> Iterator[tuple[Any, int | None]]:
    """A client of ``cluster`` and the torch threads each task should use (``None``:
    the worker's default), closed afterwards unless the caller gave it."""
    if isinstance(cluster, distributed.Client):
        yield cluster, None
        return
    address = str(cluster)
    if _is_local(address):
        workers = _local_workers(address)
        # Each worker takes its share of this machine's cores for the generator.
        threads = max(1, (os.cpu_count() or 1) // workers)
        with _scheduler_logs_as_quiet_as_ours(), _worker_environment(threads):
            with _children_ignore_ctrl_c():
                local = distributed.LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True,
                    # ":0": any free port, never the 8787 of a cluster already running.
                    dashboard_address=":0", silence_logs=logging.ERROR)
            with local, distributed.Client(local) as client:
                yield client, threads
        return
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as error:
        raise ConfigError(f"cannot reach the Dask scheduler at {address} ({error}); give "
                          "its address as tcp://HOST:PORT, or local:N for workers on this "
                          "machine") from None
    with client:
        yield client, None


@contextlib.contextmanager
def _scheduler_logs_as_quiet_as_ours() -> Iterator[None]:
    """A local scheduler and its nannies run in this process, and Dask sets its loggers to
    INFO: show only their errors (its warnings about stopping the workers of an
    interrupted batch are no news to the user), unless the application asked for more
    (``-v``)."""
    logger = logging.getLogger("distributed")
    previous = logger.level
    logger.setLevel(_dask_log_level(quiet=logging.ERROR))
    try:
        yield
    finally:
        logger.setLevel(previous)


def _worker_log_level() -> int:
    """What the local workers may print: nothing unless the application asked for more
    (``-v``). A task's error comes back with its scene's outcome; what a worker logs on
    its own is about its link to the scheduler, which on this machine breaks only while
    the cluster stops, as when a heartbeat meets the scheduler closing after Ctrl-C."""
    return _dask_log_level(quiet=logging.CRITICAL)


def _dask_log_level(quiet: int) -> int:
    """The level the application asked for when it is more than warnings (``-v``),
    else ``quiet``."""
    chosen = logging.getLogger().getEffectiveLevel()
    return chosen if chosen < logging.WARNING else quiet


@contextlib.contextmanager
def _children_ignore_ctrl_c() -> Iterator[None]:
    """Ctrl-C goes to every process of the terminal's group, the local workers too, which
    would each print a traceback. Processes started while SIGINT is ignored keep ignoring
    it (Python installs its KeyboardInterrupt handler only where SIGINT is not ignored),
    so the workers are started that way; this process stops them when it is interrupted.
    A Ctrl-C during the few seconds of the start is lost."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _worker_environment(threads: int) -> Iterator[None]:
    """What Dask's nanny sets in its worker processes, fitted to translation.

    Its default ``MALLOC_TRIM_THRESHOLD_=65536`` turns off glibc's adaptive mmap
    threshold, so every large array is mapped and faulted in afresh: translation ran at
    half speed in such a worker (1.5 s against 0.75 s per 2048² scene, tiny U-Net). It
    is left unset, the thread variables follow the worker's share of the cores, and the
    workers' own log lines are left to ``-v`` (:func:`_worker_log_level`). The nanny
    also writes these variables into this process's environment; they are put back
    afterwards.
    """
    import dask

    saved = dict(os.environ)
    threads_environ = {name: str(threads) for name in
                       ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    # The nanny prefers this process's variables to its configuration, and the workers
    # inherit them: an earlier Dask cluster may have left its values here.
    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    os.environ.update(threads_environ)
    try:
        # The nanny sets these before it starts (or restarts) a worker, which reads its
        # log level from DASK_LOGGING__DISTRIBUTED as it imports Dask.
        spawn = "distributed.nanny.pre-spawn-environ."
        with dask.config.set({spawn + "MALLOC_TRIM_THRESHOLD_": None,
                              spawn + "DASK_LOGGING__DISTRIBUTED":
                                  logging.getLevelName(_worker_log_level()).lower()}):
            yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _is_local(cluster: Any) -> bool:
    """Whether ``cluster`` asks for workers started (and stopped) here: ``local[:N]``."""
    if not isinstance(cluster, str):
        return False
    return cluster == LOCAL_PREFIX or cluster.startswith(LOCAL_PREFIX + ":")


def _local_workers(address: str) -> int:
    count = address.partition(":")[2]
    if not count:
        return max(1, os.cpu_count() or 1)
    if not count.isdigit() or int(count) < 1:
        raise ConfigError(f"--cluster {address}: give local:N with N a number of worker "
                          "processes of at least 1 (e.g. local:4)")
    return int(count)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError("--cluster needs Dask distributed, which is not installed; "
                          "install it with: pip install 'geogan[distributed]'") from None
    return distributed


__all__ = ["model_loads", "translate_on_cluster"]
