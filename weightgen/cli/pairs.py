"""weightgen-pairs: build the paired-data cache of the run's concepts and its preview grid.

Config groups it reads: concepts, data, editor, paths.
"""

from weightgen.cli.app import entry_point

main = entry_point("weightgen.stages.pairs:build_pairs_with_preview", __name__)
