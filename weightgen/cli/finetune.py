"""weightgen-finetune concept=<id> init=generated: fine-tune one concept, record its curve."""

from weightgen.cli.app import entry_point
from weightgen.finetune.single import finetune_one

main = entry_point(finetune_one, config_name="finetune")
