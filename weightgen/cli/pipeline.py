"""weightgen-pipeline: every stage in order (pairs, dataset, generator, bench); each resumes.

`make quickstart` runs it with experiment=quickstart, `make bench` with experiment=bench. It ends
with a short summary on the console; the full summary goes to `<run>/reports/pipeline.json`.

Config groups it reads: every group of conf/weightgen.yaml (it runs every stage).
"""

from weightgen.cli.app import entry_point
from weightgen.stages.pipeline import run_pipeline
from weightgen.stages.pipeline_report import write_pipeline_report

main = entry_point(run_pipeline, __name__,
                   present=lambda ws, summary: write_pipeline_report(ws.run_dir, summary))
