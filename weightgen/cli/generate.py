"""weightgen-generate prompt="..." out=adapter.safetensors: one adapter for any text.

Config groups it reads: text_encoder, gan, adapter, tokenizer, denoiser, diffusion (sampling),
paths.
"""

from weightgen.cli.app import entry_point
from weightgen.stages.generate import generate_adapter_file

main = entry_point(generate_adapter_file, __name__, config_name="generate")
