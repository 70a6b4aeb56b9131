"""Edit image files on disk with a ``ConceptEditor``: one image or every file of a folder.

Policy (what ``weightgen-apply`` documents):

* Input: one image file, or the files directly inside a folder (not sub-folders; names starting
  with ``.`` are ignored). Any format Pillow reads, read as ``weightgen.utils.images`` documents:
  EXIF rotation applied, 16-bit scaled to 8 bits, palette and greyscale converted to RGB, and
  transparent pixels composited on ``alpha_background`` (white or black; one log line says so)
  or, with ``refuse``, the image skipped and reported.
* Output: ``<output>/<input stem>.png`` (lossless), at the input's size, or at most ``max_side``
  px on the long side when ``max_side`` is set (downscaled before editing).
* Size: an image of more than ``auto_tile.above_px`` pixels edited without ``tile`` is edited in
  ``auto_tile.tile`` px tiles, with one log line naming ``tile=`` (``weightgen.editor.sizing``:
  whole, its attention would run for minutes).
* Safety, all checked before anything is written: the output folder may not be the input folder
  or lie inside it, no output may be an input file, two inputs may not map to one output, an
  existing output file is an error unless ``overwrite``, and the output folder (or the folder
  it would be made in) must let this user create files. The output folders this command makes
  are removed again if it ends with nothing written in them.
* A file that is not a readable image, or an image too small to edit (at most 4 px on both
  sides), is reported with its path and reason; the rest are still edited.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from weightgen.editor.concept_editor import ConceptEditor
from weightgen.editor.sizing import AutoTile, attention_cost, auto_tile_for
from weightgen.errors import (
    ConfigError,
    ImageTooSmallError,
    MissingInputError,
    OutputExistsError,
    OutputNotWritableError,
    TransparentImageError,
)
from weightgen.utils.images import UNREADABLE, ImageReader
from weightgen.utils.io import atomic_write_bytes
from weightgen.utils.paths import (
    file_in_the_way,
    made_folders_removed_if_empty,
    unwritable_reason,
)

log = logging.getLogger(__name__)

OUTPUT_SUFFIX = ".png"


@dataclass
class ApplyReport:
    """What happened to each input: edited (input -> output) or failed (input, reason)."""

    edited: dict[Path, Path] = field(default_factory=dict)
    failed: dict[Path, str] = field(default_factory=dict)

    def skip(self, path: Path, reason: str) -> None:
        log.warning("skipped %s: %s", path, reason)
        self.failed[path] = reason

    def summary(self) -> dict:
        return {
            "edited": len(self.edited),
            "failed": {str(path): reason for path, reason in self.failed.items()},
            "outputs": [str(path) for path in self.edited.values()],
        }


def list_inputs(source: str | Path) -> list[Path]:
    """The image file itself, or the non-hidden files directly inside a folder, sorted."""
    source = Path(source)
    if not source.exists():
        raise MissingInputError(f"input {source} does not exist; give an image file or a folder")
    if source.is_file():
        return [source]
    files = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ConfigError(f"input folder {source} holds no files; put the images to edit there")
    return files


def plan_outputs(
    inputs: list[Path], source: str | Path, output: str | Path, overwrite: bool
) -> dict[Path, Path]:
    """Map each input to its output path, refusing any plan that could overwrite an input."""
    source, output = Path(source).resolve(), Path(output).resolve()
    if output.is_file():
        raise ConfigError(f"output {output} is a file; give a folder for the edited images")
    if file_in_the_way(output) is not None:
        raise ConfigError(
            f"output {output}: {file_in_the_way(output)} is a file, not a folder; give a folder "
            f"for the edited images"
        )
    if source.is_dir() and output.is_relative_to(source):
        raise ConfigError(
            f"output folder {output} is the input folder or inside it; edited images could "
            f"overwrite or mix with the inputs: choose a folder outside {source}"
        )
    plan: dict[Path, Path] = {}
    claimed: dict[Path, Path] = {}
    resolved_inputs = {p.resolve() for p in inputs}
    for path in inputs:
        target = output / (path.stem + OUTPUT_SUFFIX)
        if target in resolved_inputs:
            raise ConfigError(
                f"output {target} would overwrite the input {path}; choose another output folder"
            )
        if target in claimed:
            raise ConfigError(
                f"inputs {claimed[target]} and {path} would both be written to {target}; "
                f"rename one of them"
            )
        claimed[target] = path
        plan[path] = target
    existing = [t for t in plan.values() if t.exists()]
    if existing and not overwrite:
        shown = ", ".join(str(t) for t in existing[:3])
        raise OutputExistsError(
            f"{len(existing)} output file(s) exist already ({shown}); pass overwrite=true to "
            f"replace them or choose an empty output folder"
        )
    return plan


def encode_png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def check_writable(output: Path) -> None:
    """The output folder (or the folder it would be made in) must take new files."""
    reason = unwritable_reason(output)
    if reason is not None:
        raise OutputNotWritableError(
            f"output folder {output} is not writable: {reason}; make it writable (e.g. chmod "
            f"u+w on it) or choose an output folder you can write to"
        )


def check_auto_tile(auto_tile: AutoTile, stride: int, overlap: int) -> None:
    if auto_tile.tile <= max(stride, overlap) or auto_tile.tile % stride:
        raise ConfigError(
            f"auto_tile={auto_tile.tile} must be a multiple of the generator stride {stride} "
            f"larger than {stride} and than tile_overlap={overlap}, e.g. auto_tile=256"
        )
    if auto_tile.above_px < 1:
        raise ConfigError(
            f"auto_tile_above_px={auto_tile.above_px} must be a positive number of pixels, e.g. "
            f"auto_tile_above_px=1048576 (1024x1024), or null to edit every image whole"
        )


def say_auto_tiled(path: Path, array: np.ndarray, stride: int, auto_tile: AutoTile) -> None:
    height, width = array.shape[:2]
    log.warning(
        "%s is %dx%d px: edited whole, its attention would cost about %.3gx that of a 256x256 "
        "image, so it and every other image of this command over %d px are edited in %d px "
        "tiles; pass tile=<px> to choose the tile, or auto_tile_above_px=null to edit whole",
        path, width, height, attention_cost(height, width, stride), auto_tile.above_px,
        auto_tile.tile,
    )


def apply_editor(
    editor: ConceptEditor,
    source: str | Path,
    output: str | Path,
    *,
    alpha_background: str,
    overwrite: bool = False,
    max_side: int | None = None,
    tile: int | None = None,
    overlap: int = 32,
    auto_tile: AutoTile | None = None,
    progress: bool = True,
) -> ApplyReport:
    """Edit ``source`` (an image or a folder's files) into ``output``; see the module policy."""
    if max_side is not None and max_side < 1:
        raise ConfigError(f"max_side={max_side} must be a positive number of pixels (or null)")
    stride = editor.network.stride
    if auto_tile is not None:
        check_auto_tile(auto_tile, stride, overlap)
    reader = ImageReader(alpha_background, max_side)
    inputs = list_inputs(source)
    plan = plan_outputs(inputs, source, output, overwrite)
    check_writable(Path(output))
    report = ApplyReport()
    said_tiled = False
    with made_folders_removed_if_empty(output):
        for path in tqdm(inputs, desc=f"editing: {editor.prompt}", unit="image",
                         disable=not progress):
            try:
                array = reader.read(path)
            except TransparentImageError as err:
                report.skip(path, str(err))
                continue
            except (*UNREADABLE, ValueError) as err:
                report.skip(path, f"not a readable image ({type(err).__name__}: {err})")
                continue
            tile_now = auto_tile_for(*array.shape[:2], tile, auto_tile)
            if tile_now != tile and not said_tiled:
                said_tiled = True
                say_auto_tiled(path, array, stride, auto_tile)
            try:
                edited = editor.edit(array, tile=tile_now, overlap=overlap)
            except ImageTooSmallError as err:
                report.skip(path, str(err))
                continue
            atomic_write_bytes(plan[path], encode_png(edited))
            report.edited[path] = plan[path]
    return report
