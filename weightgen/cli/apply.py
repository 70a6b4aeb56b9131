"""weightgen-apply: edit an image or a folder of images with a model folder's concept editor.

    weightgen-apply model=<model folder> input=<image or folder> output=<folder>

Prints a JSON summary (edited count, failed files with reasons, outputs); exits with status 1 if
no image could be edited, leaving no output folder it made behind. Images are read as 8-bit RGB
(16-bit scaled, palette and greyscale converted, transparent pixels composited on
alpha_background or refused); an image of more than auto_tile_above_px pixels is edited in
auto_tile px tiles unless tile= is given (one log line says so).

Config groups: none of those listed below (they are the training stages'); its keys are in
conf/apply.yaml.
"""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig

from weightgen.cli.app import CONFIG_DIR
from weightgen.cli.user_errors import user_errors_reported
from weightgen.errors import ConfigError
from weightgen.utils.paths import folder_holding


@hydra.main(config_path=CONFIG_DIR, config_name="apply", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with user_errors_reported(cfg.debug):
        from weightgen.config_checks import check_config  # torch and the editor: after --help

        check_config(cfg)
        if folder_holding(cfg.output, {"model": cfg.model}) is not None:  # even with overwrite
            raise ConfigError(f"output={cfg.output} is the model folder or inside it: its files "
                              f"are the editor's own; choose another output folder")
        from weightgen.editor import apply_editor, load_editor
        from weightgen.editor.sizing import AutoTile
        from weightgen.utils.threads import use_threads

        use_threads(cfg.num_threads)
        editor = load_editor(cfg.model, device=cfg.device)
        auto_tile = None
        if cfg.auto_tile_above_px is not None:
            auto_tile = AutoTile(tile=cfg.auto_tile, above_px=cfg.auto_tile_above_px)
        report = apply_editor(
            editor,
            cfg.input,
            cfg.output,
            alpha_background=cfg.alpha_background,
            overwrite=cfg.overwrite,
            max_side=cfg.max_side,
            tile=cfg.tile,
            overlap=cfg.tile_overlap,
            auto_tile=auto_tile,
            progress=cfg.progress,
        )
    print(json.dumps(report.summary(), indent=2))
    if not report.edited:
        raise SystemExit(1)
