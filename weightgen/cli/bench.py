"""weightgen-bench: generated init + short fine-tune vs pix2pix, E2GAN and the cheap inits."""

from weightgen.cli.app import entry_point
from weightgen.finetune.bench import run_benchmark

main = entry_point(run_benchmark)
