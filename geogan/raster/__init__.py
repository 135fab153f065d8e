"""Raster layer: open and validate rasters, footprints, band statistics, palettes, previews.

Imports only the core modules (errors, progress, outputs); never torch."""
