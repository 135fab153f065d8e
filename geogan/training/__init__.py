"""Training layer: dataset over chip folders, Pix2Pix/CycleGAN steps, loop, checkpoints, DDP."""
