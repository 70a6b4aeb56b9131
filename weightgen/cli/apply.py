"""weightgen-apply: edit an image or a folder of images with a model folder's concept editor.

    weightgen-apply model=<model folder> input=<image or folder> output=<folder>

Prints a JSON summary (edited count, failed files with reasons, outputs); exits with status 1 if
no image could be edited.

Config groups: none of those listed below (they are the training stages'); its keys are in
conf/apply.yaml.
"""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig

from weightgen.cli.app import CONFIG_DIR
from weightgen.cli.user_errors import user_errors_reported
from weightgen.editor import apply_editor, load_editor
from weightgen.errors import ConfigError
from weightgen.utils.paths import folder_holding


@hydra.main(config_path=CONFIG_DIR, config_name="apply", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with user_errors_reported(cfg.debug):
        if folder_holding(cfg.output, {"model": cfg.model}) is not None:  # even with overwrite
            raise ConfigError(f"output={cfg.output} is the model folder or inside it: its files "
                              f"are the editor's own; choose another output folder")
        editor = load_editor(cfg.model, device=cfg.device)
        report = apply_editor(
            editor,
            cfg.input,
            cfg.output,
            overwrite=cfg.overwrite,
            max_side=cfg.max_side,
            tile=cfg.tile,
            overlap=cfg.tile_overlap,
            progress=cfg.progress,
        )
    print(json.dumps(report.summary(), indent=2))
    if not report.edited:
        raise SystemExit(1)
