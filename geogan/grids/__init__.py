"""Grid layer: the chip grid, translate windows and blend weights, the spatial split.

Plain numpy (and rasterio's window type); never torch."""
