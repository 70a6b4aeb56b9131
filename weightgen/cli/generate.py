"""weightgen-generate prompt="..." out=adapter.safetensors: one adapter for any text."""

from weightgen.cli.app import entry_point
from weightgen.diffusion.generate import generate_adapter_file

main = entry_point(generate_adapter_file, config_name="generate")
