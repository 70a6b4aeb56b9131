"""weightgen-train-generator: train the block diffusion weight generator on the weight store.

Config groups it reads: concepts, text_encoder, gan, adapter, tokenizer, denoiser, diffusion,
trainer, logger, paths.
"""

from weightgen.cli.app import entry_point

main = entry_point("weightgen.stages.train_generator:train_weight_generator", __name__)
