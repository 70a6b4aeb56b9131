"""weightgen-study: one job of an ablation/scaling study; run a study as a Hydra multirun.

    weightgen-study experiment=study_block_size --multirun

Each `conf/experiment/study_*.yaml` preset holds its sweep (`hydra.sweeper.params`) and the
callback that gathers the jobs into `experiments/<study>/results.{json,md,png}`.

Config groups it reads: study, experiment (the study_* presets), and those of
weightgen-train-generator and weightgen-bench.
"""

from weightgen.cli.app import entry_point

main = entry_point("weightgen.stages.study:run_study_job", __name__)
