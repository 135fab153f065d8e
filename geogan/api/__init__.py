"""Python API layer: the arcgis.learn style (``prepare_data``, ``Pix2Pix``, ``CycleGAN``),
its figures and scores, and the demo."""
