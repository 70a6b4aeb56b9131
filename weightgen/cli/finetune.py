"""weightgen-finetune concept=<id> init=generated: fine-tune one concept, record its curve.

Config groups it reads: concepts, data, text_encoder, gan, adapter, tokenizer, denoiser,
diffusion (sampling), trainer, paths.
"""

from weightgen.cli.app import entry_point

main = entry_point("weightgen.stages.finetune:finetune_one", __name__, config_name="finetune")
