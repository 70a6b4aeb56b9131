"""weightgen-bench: generated init + short fine-tune vs pix2pix, E2GAN and the cheap inits.

Config groups it reads: bench, concepts, data, text_encoder, gan, adapter, tokenizer, denoiser,
diffusion, trainer, paths.
"""

from weightgen.cli.app import entry_point

main = entry_point("weightgen.stages.bench:run_benchmark", __name__)
