"""Evaluation layer: image and class metrics, the seam score, raster-vs-raster evaluation.

The one scoring path: the API, the demo and training validation use these functions."""
