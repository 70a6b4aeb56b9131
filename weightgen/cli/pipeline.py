"""weightgen-pipeline: every stage in order (pairs, dataset, generator, bench); each resumes.

`make quickstart` runs it with experiment=quickstart, `make bench` with experiment=bench. It ends
with a short summary on the console; the full summary goes to `<run>/reports/pipeline.json`.
"""

from weightgen.cli.app import entry_point
from weightgen.pipeline import run_pipeline
from weightgen.pipeline_report import write_pipeline_report

main = entry_point(run_pipeline, present=write_pipeline_report)
