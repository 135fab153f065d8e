"""The ``geogan`` group: shared environment and the error policy of every command.

A :class:`~geogan.errors.GeoganError` ends the command with ``Error: <message>`` on
stderr and its exit code (1); click's usage errors keep exit code 2. A
:class:`~geogan.errors.GeoganWarning` is one ``Warning: <message>`` line; other Python
warnings (rasterio's ``NotGeoreferencedWarning``, torch's notes...) never reach the
terminal as they are: they are logged at the INFO level, which ``-v`` shows. A
:class:`PermissionError` that a library check did not catch first (a file or folder this
user may not read or write) is the user's to fix too: one line and exit code 1.
``--debug`` re-raises instead, so the traceback shows.
"""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Any

import click

from geogan.errors import GeoganError, GeoganWarning
from geogan.version import __version__

from .demo import demo_command
from .evaluate import evaluate_command
from .export_chips import export_chips_command
from .info import info_command
from .progress import MODES
from .sample_data import sample_data_command
from .train import train_command
from .translate import translate_command


class GeoganGroup(click.Group):
    """A group that maps library errors to one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except GeoganError as error:
            if ctx.meta.get("geogan.debug"):
                raise
            click.echo(f"Error: {error}", err=True)
            sys.exit(error.exit_code)
        except PermissionError as error:
            if ctx.meta.get("geogan.debug"):
                raise
            where = f"{error.filename}: " if error.filename else ""
            click.echo(f"Error: {where}permission denied; check the permissions of this file "
                       "or folder (or choose another).", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            if ctx.meta.get("geogan.debug"):
                raise
            click.echo("Interrupted.", err=True)
            sys.exit(130)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """geogan's warnings as one ``Warning:`` line on stderr; the libraries' as a log
    record at the INFO level (shown with ``-v``): geogan already says, in its own words,
    what a user needs to know of them (a scene without a CRS, ...)."""
    if issubclass(category, GeoganWarning):
        click.echo(f"Warning: {message}", err=True)
    else:
        logging.getLogger("geogan.warnings").info(
            "%s (%s:%d): %s", category.__name__, filename, lineno,
            str(message).strip().replace("\n", " "))


@click.group(cls=GeoganGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="geogan")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.option("-v", "--verbose", count=True, help="More log output (repeatable).")
@click.option("-q", "--quiet", count=True, help="Less output: no progress bars.")
@click.option("--progress", "progress", type=click.Choice(MODES), default=MODES[0],
              show_default=True, envvar="GEOGAN_PROGRESS", show_envvar=True,
              help="How progress shows on stderr: a bar (on a terminal), json (one JSON "
                   "object a line, for programs such as the QGIS plugin) or none.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int, quiet: int, progress: str) -> None:
    """Translate georeferenced rasters between domains with Pix2Pix and CycleGAN."""
    ctx.meta["geogan.debug"] = debug
    ctx.meta["geogan.quiet"] = quiet > 0
    ctx.meta["geogan.progress"] = progress
    level = logging.WARNING - 10 * verbose + 10 * quiet
    logging.basicConfig(level=max(logging.DEBUG, level), format="%(levelname)s: %(message)s")


cli.add_command(sample_data_command)
cli.add_command(export_chips_command)
cli.add_command(train_command)
cli.add_command(translate_command)
cli.add_command(info_command)
cli.add_command(demo_command)
cli.add_command(evaluate_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="geogan")
