"""weightgen-dataset: base GAN + per-concept adapters into the weight store (builder.stage, shard,
processes).

Config groups it reads: concepts, data, editor, text_encoder, gan, adapter, builder, trainer,
logger, paths.
"""

from weightgen.cli.app import entry_point

main = entry_point("weightgen.stages.dataset:build_weight_dataset", __name__)
