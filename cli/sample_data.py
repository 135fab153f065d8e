"""``geogan sample-data``: write a procedurally generated co-registered pair."""

from __future__ import annotations

import click


@click.command("sample-data")
def sample_data_command() -> None:
    """Write a generated co-registered raster pair (placeholder)."""
