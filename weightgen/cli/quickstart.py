"""weightgen-quickstart: the whole pipeline at the quickstart scale (experiment=quickstart)."""

from weightgen.cli.app import entry_point
from weightgen.quickstart import run_pipeline

main = entry_point(run_pipeline)
