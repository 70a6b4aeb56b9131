"""weightgen-export: ONNX / TorchScript copies of a model folder's editor, with latency.

    weightgen-export model=<model folder> formats=[onnx,torchscript]

Writes ``model.onnx`` / ``model.torchscript.pt`` into the folder (each checked against torch
first) and prints the updated model card's ``exports`` and ``latency``.

Config groups: none of those listed below (they are the training stages'); its keys are in
conf/export.yaml.
"""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig

from weightgen.cli.app import CONFIG_DIR
from weightgen.cli.user_errors import user_errors_reported


@hydra.main(config_path=CONFIG_DIR, config_name="export", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with user_errors_reported(cfg.debug):
        from weightgen.config_checks import check_config  # torch and the editor: after --help

        check_config(cfg)
        from weightgen.editor import export_model_folder
        from weightgen.utils.threads import use_threads

        use_threads(cfg.num_threads)
        card = export_model_folder(
            cfg.model,
            formats=list(cfg.formats),
            sizes=list(cfg.sizes),
            tolerance=cfg.tolerance,
            repeats=cfg.repeats,
            threads=cfg.threads,
        )
    print(json.dumps({"exports": card["exports"], "latency": card["latency"]}, indent=2))
