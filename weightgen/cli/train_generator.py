"""weightgen-train-generator: train the block diffusion weight generator on the weight store."""

from weightgen.cli.app import entry_point
from weightgen.diffusion.train import train_weight_generator

main = entry_point(train_weight_generator)
