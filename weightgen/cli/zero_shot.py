"""weightgen-zero-shot: generated adapters vs base, mean, nearest and trained ones, no fine-tune.

Config groups it reads: concepts, data, text_encoder, gan, adapter, tokenizer, denoiser,
diffusion, paths.
"""

from weightgen.cli.app import entry_point

main = entry_point("weightgen.stages.zero_shot:zero_shot_report", __name__)
