"""weightgen-generate prompt="..." out=adapter.safetensors: one adapter for any text.

Config groups it reads: text_encoder, gan, adapter, tokenizer, denoiser, diffusion (sampling),
paths.
"""

from weightgen.cli.app import entry_point

main = entry_point("weightgen.stages.generate:generate_adapter_file", __name__,
                   config_name="generate")
