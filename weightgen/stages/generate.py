"""The generate stage: a prompt in, a full adapter file out, with the seconds it took."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from weightgen.diffusion.condition import Condition
from weightgen.errors import ConfigError, OutputExistsError
from weightgen.stages.artifacts import load_generator
from weightgen.stages.workspace import Workspace
from weightgen.utils.io import atomic_save_safetensors
from weightgen.utils.paths import file_in_the_way, folder_holding


def checked_out_file(out, overwrite: bool, run_folders: Mapping[str, Path]) -> Path:
    """The adapter file to write, checked before any work: not a folder, not under a file, not an
    existing file unless ``overwrite``, and never inside the run's own folders (``run_folders``,
    key -> folder: its base, generator, stores ...), whatever ``overwrite`` says."""
    path = Path(out)
    if path.is_dir():
        raise ConfigError(
            f"out={path} is a folder; give the adapter file's path, e.g. "
            f"out={path / 'adapter.safetensors'}"
        )
    blocking_file = file_in_the_way(path)
    if blocking_file is not None:
        raise ConfigError(
            f"out={path}: {blocking_file} is a file, not a folder; give a path in a folder"
        )
    owner = folder_holding(path, run_folders)
    if owner is not None:
        raise ConfigError(
            f"out={path} is inside the run's {owner} ({run_folders[owner]}): the run's own "
            f"artifacts are never an output, not even with overwrite=true; nothing was written: "
            f"give a path outside the run's folders, e.g. out=my_adapter.safetensors"
        )
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"out={path} exists already; nothing was written: pass overwrite=true to replace it, "
            f"or give another file path"
        )
    return path


def generate_adapter_file(ws: Workspace) -> dict:
    prompt = str(ws.cfg.prompt).strip()
    if not prompt:
        raise ConfigError('prompt is empty: pass prompt="a sepia photo with a blue tint"')
    out = checked_out_file(ws.cfg.out, bool(ws.cfg.overwrite), ws.artifact_folders)
    generator = load_generator(ws)
    sampling = dict(ws.cfg.diffusion.sampling)
    result = generator.generate(Condition.of_text(ws.generator_text.encode([prompt])), **sampling)
    sha = atomic_save_safetensors(result.state, out, {"prompt": prompt})
    print(f"generated an adapter for {prompt!r} in {result.seconds:.3f} s -> {out}")
    return {"prompt": prompt, "out": str(out), "seconds": result.seconds, "sha256": sha,
            "sampling": sampling}
