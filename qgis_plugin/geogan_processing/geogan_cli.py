"""Running the ``geogan`` command line from QGIS: where it is, whether it is recent
enough, its help, and one run with progress, log lines, errors and cancel.

This module imports nothing from QGIS (nor from geogan): the plugin's algorithms call it,
and geogan's own test suite tests it with the geogan of its virtual environment. geogan
runs in its own process, with its own Python, torch and GDAL, as the Processing providers
of other external tools do (SAGA, Orfeo Toolbox, WhiteboxTools): QGIS's Python never
imports torch.
"""

from __future__ import annotations

import html
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: The oldest geogan with ``--progress json``, the progress mode the plugin reads.
MIN_VERSION = (0, 1, 0)
#: Choices the plugin offers, as the CLI spells them (tests check them against the CLI).
PRESETS = ("faithful", "paper", "tiny")
DEVICES = ("auto", "cpu", "cuda")
OUTPUT_KINDS = ("auto", "image", "shaded", "palette", "classes")
#: Seconds to wait after SIGINT before killing a geogan that does not stop.
INTERRUPT_GRACE_S = 60.0

_help_cache: dict[tuple[str, str], str] = {}
_check_cache: dict[str, str | None] = {}


class GeoganNotUsable(Exception):
    """geogan is missing, does not run or is too old: the message says what to do."""


def find_executable(configured: str | None) -> str:
    """The geogan executable: ``configured`` (the provider setting) when set, else the
    ``geogan`` on PATH. Raises :class:`GeoganNotUsable` when there is none."""
    if configured:
        if os.path.isfile(configured) and os.access(configured, os.X_OK):
            return configured
        raise GeoganNotUsable(
            f"the geogan executable set in Processing › Options › Providers › geogan "
            f"({configured}) does not exist or cannot be run; correct it, or leave it empty "
            "to use the geogan on PATH.")
    found = shutil.which("geogan")
    if found is None:
        raise GeoganNotUsable(
            "no geogan executable on PATH. Install geogan (pip install geogan, in its own "
            "virtual environment) and set the path of its geogan executable (e.g. "
            ".venv/bin/geogan) in Processing › Options › Providers › geogan.")
    return found


def _environment() -> dict[str, str]:
    """QGIS's environment for geogan, without what points a Python at QGIS's own."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["GEOGAN_PROGRESS"] = "json"
    return env


def check(executable: str) -> None:
    """Raise :class:`GeoganNotUsable` unless ``executable`` runs and is recent enough
    (it knows ``--progress json``). The answer is kept per executable."""
    if executable not in _check_cache:
        _check_cache[executable] = _problem(executable)
    problem = _check_cache[executable]
    if problem is not None:
        raise GeoganNotUsable(problem)


def _problem(executable: str) -> str | None:
    try:
        done = subprocess.run([executable, "--help"], capture_output=True, text=True,
                              env=_environment(), timeout=120, check=False)
        version = subprocess.run([executable, "--version"], capture_output=True, text=True,
                                 env=_environment(), timeout=120, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        return f"{executable} does not run ({error}); check the geogan executable setting."
    match = re.search(r"version (\d+)\.(\d+)\.(\d+)", version.stdout)
    if done.returncode != 0 or match is None:
        tail = (done.stderr or version.stderr).strip().splitlines()[-1:] or ["no output"]
        return f"{executable} is not a working geogan ({tail[0]})."
    found = tuple(int(part) for part in match.groups())
    if found < MIN_VERSION or "--progress" not in done.stdout:
        wanted = ".".join(map(str, MIN_VERSION))
        return (f"{executable} is geogan {'.'.join(map(str, found))}, too old for this "
                f"plugin: it needs geogan {wanted} or newer with --progress json; upgrade it "
                "(pip install -U geogan).")
    return None


def help_text(executable: str, command: str) -> str:
    """``geogan COMMAND --help``, the text every algorithm's help comes from."""
    key = (executable, command)
    if key not in _help_cache:
        done = subprocess.run([executable, command, "--help"], capture_output=True,
                              text=True, env=_environment(), timeout=120, check=False)
        if done.returncode != 0:
            raise GeoganNotUsable(f"geogan {command} --help failed: {done.stderr.strip()}")
        _help_cache[key] = done.stdout.replace("\b\n", "")
    return _help_cache[key]


def help_html(text: str) -> str:
    """Click's help as HTML for QGIS's help panel: the usage line, the description's
    paragraphs rejoined (the panel wraps them), examples as code, one paragraph an option."""
    parts: list[str] = []
    options = False
    for block in re.split(r"\n\s*\n", text.strip("\n")):
        lines = block.splitlines()
        if lines[0].startswith("Usage:"):
            parts.append(f"<p><code>{html.escape(' '.join(lines))}</code></p>")
        elif lines[0].startswith("Options:"):
            options, lines = True, lines[1:]
            parts.append("<h3>Options</h3>")
        elif lines[0].rstrip().endswith(":") and len(lines) > 1:
            parts.append(f"<p>{html.escape(lines[0].strip())}</p>"
                         "<pre style=\"white-space: pre-wrap\">"
                         + html.escape("\n".join(line[4:] for line in lines[1:])) + "</pre>")
        else:
            parts.append(f"<p>{html.escape(' '.join(line.strip() for line in lines))}</p>")
        if options:
            parts.extend(_options_html(lines))
    return "".join(parts)


def _options_html(lines: list[str]) -> list[str]:
    """One ``<p>`` an option: its names in code, then its help joined into one line."""
    entries: list[list[str]] = []
    for line in lines:
        match = re.match(r"  (-\S.*?)(?:\s{2,}(.*))?$", line)
        if match is not None:
            entries.append([match.group(1), match.group(2) or ""])
        elif entries:
            entries[-1][1] += " " + line.strip()
    return [f"<p><code>{html.escape(names)}</code> {html.escape(help_.strip())}</p>"
            for names, help_ in entries]


@dataclass
class Progress:
    """Overall progress from the JSON lines of one run, in percent; a batch of scenes
    counts each scene's windows as a share of it."""

    bars: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, line: dict[str, Any]) -> float | None:
        """Take one JSON line; the run's percent done, or None when unknown."""
        self.bars[str(line.get("progress"))] = line
        fraction = line.get("fraction")
        scenes = self.bars.get("scenes")
        if scenes is not None and scenes.get("total"):
            windows = self.bars.get("translate", {}).get("fraction") or 0.0
            if line is scenes:
                windows = 0.0
            fraction = (scenes["done"] + windows) / scenes["total"]
        if fraction is None:
            return None
        return max(0.0, min(100.0, 100.0 * float(fraction)))


@dataclass
class Handlers:
    """What a run tells its caller, as it happens."""

    progress: Callable[[float, dict[str, Any]], None] = lambda percent, line: None
    info: Callable[[str], None] = lambda text: None
    warning: Callable[[str], None] = lambda text: None
    canceled: Callable[[], bool] = lambda: False


@dataclass
class RunResult:
    """How a run ended."""

    returncode: int
    canceled: bool
    errors: list[str]
    stdout: list[str]

    def error_message(self) -> str:
        """geogan's own one-line message (``Error: `` taken off), or the exit code."""
        if self.errors:
            return self.errors[-1]
        return f"geogan stopped with exit code {self.returncode} and no message."


def run(executable: str, arguments: Sequence[str], handlers: Handlers) -> RunResult:
    """Run ``geogan --progress json ARGUMENTS``, reporting as it goes; when
    ``handlers.canceled()`` turns true, send SIGINT (geogan then stops as for Ctrl-C,
    leaving no output behind) and wait for it to end."""
    command = [executable, "--progress", "json", *arguments]
    handlers.info("geogan " + " ".join(_quoted(a) for a in arguments))
    windows = sys.platform == "win32"
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, encoding="utf-8", errors="replace", env=_environment(),
        start_new_session=not windows,
        creationflags=subprocess.CREATE_NEW_PROCESS_GROUP if windows else 0)  # type: ignore[attr-defined]
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    for name, stream in (("out", proc.stdout), ("err", proc.stderr)):
        threading.Thread(target=_pump, args=(name, stream, lines), daemon=True).start()
    result = RunResult(returncode=0, canceled=False, errors=[], stdout=[])
    tracker, open_streams, interrupted_at = Progress(), 2, None
    while open_streams:
        if interrupted_at is None and handlers.canceled():
            result.canceled, interrupted_at = True, time.monotonic()
            _interrupt(proc, windows)
        elif interrupted_at is not None and time.monotonic() - interrupted_at > INTERRUPT_GRACE_S:
            proc.kill()
        try:
            name, text = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        if text is None:
            open_streams -= 1
        elif name == "out":
            result.stdout.append(text)
            handlers.info(text)
        else:
            _stderr_line(text, tracker, handlers, result)
    result.returncode = proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return result


def _stderr_line(text: str, tracker: Progress, handlers: Handlers, result: RunResult) -> None:
    """One stderr line: a progress update, an ``Error:``, a ``Warning:`` or a log line."""
    if text.startswith("{"):
        try:
            line = json.loads(text)
        except ValueError:
            line = None
        if isinstance(line, dict) and "progress" in line:
            percent = tracker.add(line)
            if percent is not None:
                handlers.progress(percent, line)
            return
    if text.startswith("Error: "):
        result.errors.append(text[len("Error: "):])
        handlers.info(text)
    elif text.startswith("Warning: "):
        handlers.warning(text[len("Warning: "):])
    elif text:
        handlers.info(text)


def _pump(name: str, stream: Any, lines: queue.Queue[tuple[str, str | None]]) -> None:
    """Copy ``stream``'s lines into ``lines``, then None."""
    for text in stream:
        lines.put((name, text.rstrip("\r\n")))
    lines.put((name, None))


def _interrupt(proc: subprocess.Popen[str], windows: bool) -> None:
    """Ctrl-C for geogan: SIGINT (on Windows, CTRL_BREAK to its process group)."""
    if proc.poll() is not None:
        return
    if windows:
        proc.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
    else:
        proc.send_signal(signal.SIGINT)


def _quoted(argument: str) -> str:
    return f'"{argument}"' if (" " in argument or not argument) else argument
