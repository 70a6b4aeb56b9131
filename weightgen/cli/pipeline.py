"""weightgen-pipeline: every stage in order (pairs, dataset, generator, bench); each resumes.

`make quickstart` runs it with experiment=quickstart, `make bench` with experiment=bench.

Config groups it reads: every group of conf/weightgen.yaml (it runs every stage).
"""

from weightgen.cli.app import entry_point
from weightgen.pipeline import run_pipeline

main = entry_point(run_pipeline, __name__)
