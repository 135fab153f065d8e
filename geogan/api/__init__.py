"""Python API layer in the arcgis.learn style (``prepare_data``, ``Pix2Pix``, ``CycleGAN``), its figures, the demo."""
