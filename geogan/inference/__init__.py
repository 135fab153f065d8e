"""Inference layer: translator, streaming pipeline, one scene, batches, Dask.

Never imports :mod:`geogan.training`."""
