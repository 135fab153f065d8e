"""Chip-folder layer: the folder format (shared by exporter and reader), export, registration.

Imports raster and grids; never torch, so that geogan export-chips starts fast."""
