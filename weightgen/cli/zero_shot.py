"""weightgen-zero-shot: generated adapters vs base, mean, nearest and trained ones, no fine-tune."""

from weightgen.cli.app import entry_point
from weightgen.diffusion.zero_shot import zero_shot_report

main = entry_point(zero_shot_report)
