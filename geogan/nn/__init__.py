"""Network layer: configs and presets, networks, losses, devices, value mapping, model file.

Tensors, never raster files: never imports :mod:`geogan.raster`."""
