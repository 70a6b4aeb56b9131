"""weightgen-pipeline: every stage in order (pairs, dataset, generator, bench); each resumes.

`make quickstart` runs it with experiment=quickstart, `make bench` with experiment=bench.
"""

from weightgen.cli.app import entry_point
from weightgen.pipeline import run_pipeline

main = entry_point(run_pipeline)
