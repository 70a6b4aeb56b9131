"""weightgen-pipeline: every stage in order (pairs, dataset, generator, bench); each resumes.

`make quickstart` runs it with experiment=quickstart, `make bench` with experiment=bench. It ends
with a short summary on the console; the full summary goes to `<run>/reports/pipeline.json`.

Config groups it reads: every group of conf/weightgen.yaml (it runs every stage).
"""

from weightgen.cli.app import entry_point


def present(ws, summary: dict) -> None:
    """The short console summary; the full one into ``<run>/reports/pipeline.json``."""
    from weightgen.stages.pipeline_report import write_pipeline_report

    write_pipeline_report(ws.run_dir, summary)


main = entry_point("weightgen.stages.pipeline:run_pipeline", __name__, present=present)
