"""weightgen: train image-editing GANs fast by generating their weights."""

__version__ = "0.1.0"
