"""weightgen-pairs: build the paired-data cache of the run's concepts and its preview grid.

Config groups it reads: concepts, data, editor, paths.
"""

from weightgen.cli.app import entry_point
from weightgen.stages.pairs import build_pairs_with_preview

main = entry_point(build_pairs_with_preview, __name__)
