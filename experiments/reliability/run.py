"""The reliability exercise (issues 14, 21): faults a user can cause, tried with the real commands.

Each case runs weightgen's console scripts on a tiny run in a scratch folder, the way a user
would, and judges the outcome:
- an *error* case is handled well when the command exits non-zero, prints no traceback, names
  what is wrong (``expect`` is found in its output) and leaves the files it must not touch as
  they were;
- a *recover* case (a damaged or missing file, a resumed build) is handled well when the command
  exits 0 and the run is whole again.

    .venv/bin/python experiments/reliability/run.py [--only NAME ...] [--keep DIR]

writes ``results.md`` and ``results.json`` beside this file. A few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from weightgen.bench.methods import BASELINE, REFERENCE
from weightgen.gan.base import base_files_intact

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

# The smallest run every stage accepts: 2 train + 1 held-out concepts, 16 px crops.
TINY = [
    "experiment=quickstart", "logger=none", "progress=false", "run_name=tiny",
    "concepts.n_train=2", "concepts.n_test=1",
    "data.size=16", "data.n_train=16", "data.n_val=4", "data.batch_size=4",
    "gan.generator.ngf=4", "gan.discriminator.ndf=4",
    "builder.base_steps=4", "builder.adapter_steps=4", "builder.checkpoint_steps=[2,4]",
    "builder.grid_images=2",
    "diffusion.steps=20", "diffusion.val_every=20", "diffusion.batch_size=4",
    "diffusion.val_concepts=1",
    "bench.n_unseen=1", "bench.pix2pix_steps=4", "bench.finetune_steps=4", "bench.eval_every=2",
]


@dataclass
class Case:
    name: str
    fault: str
    run: Callable[[Path], subprocess.CompletedProcess]
    expect: str = ""                      # text the output must contain (error cases)
    kind: str = "error"                   # error | recover
    check: Callable[[Path], bool] = field(default=lambda root: True)


def command(root: Path, script: str, *args: str, env: dict | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess:
    full_env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    full_env |= {"WEIGHTGEN_ARTIFACTS": str(root / "artifacts"), "WANDB_MODE": "offline",
                 **(env or {})}
    return subprocess.run([str(BIN / script), *args], cwd=root, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def tiny(root: Path, script: str, *args: str, **kw) -> subprocess.CompletedProcess:
    return command(root, script, *TINY, *args, **kw)


def run_dir(root: Path, name: str = "tiny") -> Path:
    return root / "artifacts" / name


def snapshot(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def unchanged(folder: Path, before: dict[str, float]) -> bool:
    return snapshot(folder) == before


# --- the cases ------------------------------------------------------------------------------


def folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def first_adapter(root: Path) -> Path:
    """The final checkpoint of the first train concept: a file the generator's training reads."""
    store = run_dir(root) / "weights"
    rows = [json.loads(line) for line in (store / "manifest.jsonl").read_text().splitlines()]
    train = sorted((r for r in rows if r["split"] == "train"), key=lambda r: (r["concept"], r["step"]))
    last = [r for r in train if r["concept"] == train[0]["concept"]][-1]
    return store / last["file"]


def copy_run(root: Path, name: str) -> Path:
    target = run_dir(root, name)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(run_dir(root), target)
    return target


def tiny_png(path: Path, side: int) -> None:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.random.default_rng(0).random((side, side, 3)) * 255).astype("uint8")).save(path)


def photos(root: Path) -> Path:
    """A folder with one 32 px photo to edit."""
    tiny_png(root / "photos" / "one.png", 32)
    return root / "photos"


def model_folder(root: Path) -> Path:
    return root / "models" / "sepia"


def cases() -> list[Case]:
    c: list[Case] = []

    def add(*args, **kw):
        c.append(Case(*args, **kw))

    # -- config values ----------------------------------------------------------------------
    add("unknown_key", "a key that does not exist (`nosuchkey=1`)",
        lambda r: tiny(r, "weightgen-pairs", "nosuchkey=1"), "nosuchkey")
    add("unknown_option", "a config group option that does not exist (`adapter=nope`)",
        lambda r: tiny(r, "weightgen-pairs", "adapter=nope"), "nope")
    add("negative_n_train", "`concepts.n_train=-1`",
        lambda r: tiny(r, "weightgen-pairs", "concepts.n_train=-1"), "concepts.n_train")
    add("negative_n_unseen", "`bench.n_unseen=-1` (sliced [:-1] before)",
        lambda r: tiny(r, "weightgen-bench", "bench.n_unseen=-1"), "bench.n_unseen")
    add("too_many_unseen", "`bench.n_unseen=5` with 1 held-out concept",
        lambda r: tiny(r, "weightgen-bench", "bench.n_unseen=5"), "bench.n_unseen")
    add("diffusion_steps_zero", "`diffusion.steps=0` (replaced a trained denoiser before)",
        lambda r: tiny(r, "weightgen-train-generator", "diffusion.steps=0"), "diffusion.steps")
    add("adapter_steps_zero", "`builder.adapter_steps=0`",
        lambda r: tiny(r, "weightgen-dataset", "builder.adapter_steps=0"), "adapter_steps")
    add("size_not_multiple", "`data.size=30` (not a multiple of the stride 4)",
        lambda r: tiny(r, "weightgen-pairs", "data.size=30"), "data.size")
    add("bad_shard", "`builder.shard=3/2`",
        lambda r: tiny(r, "weightgen-dataset", "builder.shard=3/2"), "shard")
    add("block_size_zero", "`tokenizer.block_size=0`",
        lambda r: tiny(r, "weightgen-train-generator", "tokenizer.block_size=0"), "block_size")
    add("bench_methods_order", f"`bench.methods` not starting with {REFERENCE}",
        lambda r: tiny(r, "weightgen-bench", f"bench.methods=[{BASELINE},{REFERENCE}]"),
        REFERENCE)
    add("gpu_trainer_on_cpu", "`trainer=gpu` on a machine without a GPU",
        lambda r: tiny(r, "weightgen-dataset", "run_name=gpu_run", "trainer=gpu"), "GPU")
    add("clip_text_encoder_offline", "`text_encoder=clip` with no local CLIP weights (hub unreachable)",
        lambda r: tiny(r, "weightgen-dataset", "run_name=clip_run", "text_encoder=clip",
                       env={"HF_HUB_OFFLINE": "1"}), "clip")
    # -- inputs ------------------------------------------------------------------------------
    add("concept_file_missing", "`concepts=file` pointing at no file",
        lambda r: tiny(r, "weightgen-pairs", "concepts=file", f"concepts.path={r}/none.yaml"),
        "none.yaml")
    add("concept_file_bad_op", "a concept file with an unknown op",
        lambda r: tiny(r, "weightgen-pairs", "concepts=file", "concepts.n_train=1",
                       "concepts.n_test=0",
                       "concepts.path=" + str(write(r / "c_bad_op.yaml",
                                                    "- {id: a, prompt: a, recipe: [{op: nope}]}\n"))),
        "nope")
    add("concept_file_duplicate_id", "a concept file with a duplicate id",
        lambda r: tiny(r, "weightgen-pairs", "concepts=file",
                       "concepts.path=" + str(write(r / "c_dup.yaml",
                                                    "- {id: a, prompt: sepia, recipe: [{op: sepia}]}\n"
                                                    "- {id: a, prompt: blur, recipe: [{op: blur}]}\n"))),
        "duplicate")
    add("photo_folder_empty", "`data=folder` on an empty folder",
        lambda r: tiny(r, "weightgen-pairs", "data=folder",
                       f"data.folder={folder(r / 'empty')}"), "empty")
    add("photo_folder_missing", "`data=folder` on a folder that does not exist",
        lambda r: tiny(r, "weightgen-pairs", "data=folder", f"data.folder={r}/nowhere"), "nowhere")
    add("artifacts_not_writable", "`WEIGHTGEN_ARTIFACTS=/proc/x`",
        lambda r: tiny(r, "weightgen-pairs", env={"WEIGHTGEN_ARTIFACTS": "/proc/x"}),
        "WEIGHTGEN_ARTIFACTS")
    add("artifacts_is_a_file", "`WEIGHTGEN_ARTIFACTS` pointing at a file",
        lambda r: tiny(r, "weightgen-pairs",
                       env={"WEIGHTGEN_ARTIFACTS": str(write(r / "afile", "x"))}),
        "WEIGHTGEN_ARTIFACTS")
    # -- stages out of order -----------------------------------------------------------------
    add("bench_before_dataset", "`weightgen-bench` on a run with no base GAN",
        lambda r: tiny(r, "weightgen-bench", "run_name=empty_run"), "weightgen-dataset")
    add("generate_before_generator", "`weightgen-generate` on a run with no generator",
        lambda r: tiny(r, "weightgen-generate", "run_name=empty_run", "prompt=sepia",
                       f"out={r}/a.safetensors"), "generator")
    # -- the trained tiny run (built by the first recover case) ------------------------------
    add("build_tiny_run", "the whole tiny pipeline (set-up for what follows)",
        lambda r: tiny(r, "weightgen-pipeline"), kind="recover",
        check=lambda r: (run_dir(r) / "bench" / "results.json").is_file())
    add("fid_on_no_weights", "`metrics.fid=on` with no Inception weights",
        lambda r: tiny(r, "weightgen-bench", "metrics.fid=on"), "fid")
    add("generate_empty_prompt", "`weightgen-generate prompt=''`",
        lambda r: tiny(r, "weightgen-generate", "prompt=''", f"out={r}/a.safetensors"), "prompt")
    add("generate_out_is_dir", "`weightgen-generate out=<existing folder>`",
        lambda r: tiny(r, "weightgen-generate", "prompt=sepia", f"out={r}"), "out=")
    add("finetune_unknown_concept", "`weightgen-finetune concept=<not in the run>`",
        lambda r: tiny(r, "weightgen-finetune", "concept=nope"), "nope")
    add("generator_from_other_run", "a `generator/` copied into a run with another base",
        generator_from_other_run, "generator")
    add("corrupt_adapter", "an adapter file with a flipped byte, then `weightgen-train-generator`",
        corrupt_adapter, "sha256")
    add("deleted_adapter_resume", "that adapter deleted as told, then `weightgen-dataset`",
        deleted_adapter_resume, kind="recover",
        check=lambda r: first_adapter(r).is_file())
    add("truncated_sources", "`pairs/sources.safetensors` truncated, then `weightgen-pairs`",
        truncated_sources, kind="recover",
        check=lambda r: (run_dir(r) / "pairs" / "sources.safetensors").stat().st_size > 1000)
    add("concept_edited_same_id", "a concept file's concept edited under the same id",
        concept_edited_same_id, kind="recover", check=lambda r: True)
    add("two_pairs_builds", "two `weightgen-pairs` on one run at once", two_pairs_builds,
        kind="recover", check=lambda r: True)
    add("sigterm_dataset", "SIGTERM during `weightgen-dataset`", sigterm_dataset,
        "interrupted")
    # -- the deployable editor ---------------------------------------------------------------
    add("new_concept", "`weightgen-new-concept` (set-up for what follows)",
        lambda r: tiny(r, "weightgen-new-concept", "prompt=sepia photo",
                       "recipe=[{op: sepia}]", "steps=4", "export=false",
                       f"out={model_folder(r)}"),
        kind="recover", check=lambda r: (model_folder(r) / "generator.safetensors").is_file())
    add("new_concept_out_exists", "`weightgen-new-concept` into an existing non-empty folder",
        lambda r: tiny(r, "weightgen-new-concept", "prompt=sepia photo", "recipe=[{op: sepia}]",
                       "steps=4", "export=false", f"out={model_folder(r)}"), "out")
    add("new_concept_empty_prompt", "`weightgen-new-concept prompt=''`",
        lambda r: tiny(r, "weightgen-new-concept", "prompt=''", "recipe=[{op: sepia}]",
                       f"out={r}/m2"), "prompt")
    add("new_concept_bad_op", "`weightgen-new-concept` with an unknown recipe op",
        lambda r: tiny(r, "weightgen-new-concept", "prompt=x", "recipe=[{op: nope}]",
                       f"out={r}/m3"), "nope")
    add("apply_tiny_image", "`weightgen-apply` on a folder with a 4x4 image",
        apply_tiny_image, kind="recover",
        check=lambda r: len(list((r / "edited").glob("*.png"))) == 1)
    add("apply_missing_model", "`weightgen-apply model=<no such folder>`",
        lambda r: command(r, "weightgen-apply", f"model={r}/nomodel", f"input={r}/in",
                          f"output={r}/out"), "nomodel")
    add("apply_empty_input", "`weightgen-apply` on an empty input folder",
        lambda r: command(r, "weightgen-apply", f"model={model_folder(r)}",
                          f"input={folder(r / 'in_empty')}",
                          f"output={r}/out_empty"), "in_empty")
    add("apply_corrupt_model", "`weightgen-apply` with a damaged generator.safetensors",
        apply_corrupt_model, "generator.safetensors")
    add("export_missing_model", "`weightgen-export model=<no such folder>`",
        lambda r: command(r, "weightgen-export", f"model={r}/nomodel"), "nomodel")
    # -- issue 21: artifacts are data, nothing owned overwritten, inputs read right ---------
    add("generator_json_pickle", "`generator.json`'s denoiser edited to `numpy.load` of a pickle",
        generator_json_pickle, "generator.json",
        check=lambda r: not (r / "pickle_ran").exists())
    add("generator_json_open", "`generator.json`'s denoiser edited to `builtins.open(..., 'w')`",
        generator_json_open, "generator.json",
        check=lambda r: (r / "victim.txt").read_text() == "keep me\n")
    add("heldout_prompt_changed", "a held-out concept's prompt edited (same id and recipe)",
        heldout_prompt_changed, kind="recover")
    add("train_prompt_changed", "a train concept's prompt edited (same id and recipe)",
        train_prompt_changed, "weightgen-dataset")
    add("apply_16_bit_png", "`weightgen-apply` on a 16-bit PNG (was clipped: 99.8% white)",
        apply_16_bit_png, kind="recover")
    add("apply_rgba_png", "`weightgen-apply` on an RGBA PNG (alpha was dropped silently)",
        apply_rgba_png, kind="recover")
    add("apply_rgba_refused", "`weightgen-apply alpha_background=refuse` on an RGBA PNG",
        lambda r: command(r, "weightgen-apply", f"model={model_folder(r)}",
                          f"input={r}/in_clear/clear.png", f"output={r}/out_refused",
                          "alpha_background=refuse"),
        "alpha_background", check=lambda r: not (r / "out_refused").exists())
    add("apply_large_no_tile", "`weightgen-apply` on an image above `auto_tile_above_px`, no `tile=`",
        apply_large_no_tile, kind="recover")
    add("generate_out_exists", "`weightgen-generate out=<existing file>`",
        lambda r: tiny(r, "weightgen-generate", "prompt=sepia",
                       f"out={write(r / 'mine.safetensors', 'mine')}"),
        "overwrite=true", check=lambda r: (r / "mine.safetensors").read_text() == "mine")
    add("generate_out_is_run_base", "`weightgen-generate out=<the run's base> overwrite=true`",
        lambda r: tiny(r, "weightgen-generate", "prompt=sepia", "overwrite=true",
                       f"out={run_dir(r) / 'base' / 'generator.safetensors'}"),
        "never an output", check=lambda r: base_files_intact(run_dir(r) / "base"))
    add("concept_id_store_file", "a concept id `manifest.jsonl`",
        lambda r: tiny(r, "weightgen-pairs", "concepts=file", "concepts.n_train=1",
                       "concepts.n_test=0", "run_name=reserved",
                       "concepts.path=" + str(write(r / "c_reserved.yaml",
                                                    "- {id: manifest.jsonl, prompt: sepia, "
                                                    "recipe: [{op: sepia}]}\n"))),
        "manifest.jsonl", check=lambda r: not (run_dir(r, "reserved") / "pairs").exists())
    add("recipe_lr_negative", f"`bench.recipes.{BASELINE}.optimizer.lr=-1`",
        recipe_lr_negative, f"bench.recipes.{BASELINE}.optimizer.lr",
        check=lambda r: nothing_newer(run_dir(r) / "bench", r / "stamp_recipe"))
    add("size_too_small", "`data.size=4` (below the smallest side the GAN trains on)",
        lambda r: tiny(r, "weightgen-dataset", "run_name=size4", "data.size=4"), "data.size",
        check=lambda r: not (run_dir(r, "size4") / "pairs").exists())
    add("generator_json_truncated", "a truncated `generator/generator.json`",
        lambda r: truncated_meta(r, run_dir(r) / "generator" / "generator.json"),
        "generator.json")
    add("base_json_truncated", "a truncated `base/base.json`",
        lambda r: truncated_meta(r, run_dir(r) / "base" / "base.json"), "base.json")
    add("model_card_misfit", "a `model_card.json` whose generator settings do not fit its weights",
        model_card_misfit, "model_card.json")
    add("apply_output_unwritable", "`weightgen-apply output=/proc/x/out` (not even root can write)",
        lambda r: command(r, "weightgen-apply", f"model={model_folder(r)}",
                          f"input={photos(r)}", "output=/proc/x/out"), "/proc/x")
    add("export_model_read_only", "`weightgen-export` of a model folder on a read-only file system",
        export_model_read_only, "not writable")
    add("apply_num_threads", "`weightgen-apply num_threads=1`",
        lambda r: command(r, "weightgen-apply", f"model={model_folder(r)}",
                          f"input={photos(r)}", f"output={r}/edited_1thread", "num_threads=1", "progress=false"),
        kind="recover", check=lambda r: len(list((r / "edited_1thread").glob("*.png"))) == 1)
    add("export_num_threads", "`weightgen-export num_threads=1`",
        lambda r: command(r, "weightgen-export", f"model={model_folder(r)}", "num_threads=1",
                          "formats=[torchscript]", "sizes=[16]", "repeats=1"),
        kind="recover", check=lambda r: (model_folder(r) / "model.torchscript.pt").is_file())
    add("apply_failed_no_folder", "a failed `weightgen-apply` (nothing editable)",
        lambda r: command(r, "weightgen-apply", f"model={model_folder(r)}",
                          f"input={write(r / 'in_text' / 'notes.png', 'not an image')}",
                          f"output={r}/out_failed"),
        "notes.png", check=lambda r: not (r / "out_failed").exists())
    return c


def generator_from_other_run(root: Path) -> subprocess.CompletedProcess:
    other = copy_run(root, "other")
    shutil.rmtree(other / "base")
    tiny(root, "weightgen-dataset", "run_name=other", "seed=1", "builder.stage=base")
    return tiny(root, "weightgen-generate", "run_name=other", "prompt=sepia",
                f"out={root}/other.safetensors")


def corrupt_adapter(root: Path) -> subprocess.CompletedProcess:
    shutil.rmtree(run_dir(root) / "generator", ignore_errors=True)
    flip_bytes(first_adapter(root))
    return tiny(root, "weightgen-train-generator")


def deleted_adapter_resume(root: Path) -> subprocess.CompletedProcess:
    first_adapter(root).unlink()
    return tiny(root, "weightgen-dataset")


def truncated_sources(root: Path) -> subprocess.CompletedProcess:
    path = run_dir(root) / "pairs" / "sources.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    done = tiny(root, "weightgen-pairs")
    if done.returncode != 0:  # the message may ask for the file to be deleted first
        path.unlink()
        done = tiny(root, "weightgen-pairs")
    return done


def concept_edited_same_id(root: Path) -> subprocess.CompletedProcess:
    """A concept file run, then the same id with another recipe: the adapter must follow."""
    first = write(root / "c_edit.yaml", "- {id: a, prompt: sepia, recipe: [{op: sepia}]}\n"
                                        "- {id: b, prompt: blur, recipe: [{op: blur}]}\n"
                                        "- {id: c, prompt: invert, recipe: [{op: invert}], split: test}\n")
    args = ["run_name=edit", "concepts=file", f"concepts.path={first}"]
    built = tiny(root, "weightgen-dataset", *args)
    if built.returncode != 0:
        return built
    write(first, "- {id: a, prompt: sepia, recipe: [{op: sepia}]}\n"
                 "- {id: b, prompt: blur, recipe: [{op: blur}]}\n"
                 "- {id: c, prompt: grayscale, recipe: [{op: grayscale}], split: test}\n")
    rows = [json.loads(line) for line in (run_dir(root, "edit") / "weights" / "manifest.jsonl")
            .read_text().splitlines()]
    before = {r["concept"]: r["sha256"] for r in rows}
    again = tiny(root, "weightgen-dataset", *args)
    rows = [json.loads(line) for line in (run_dir(root, "edit") / "weights" / "manifest.jsonl")
            .read_text().splitlines()]
    after = {r["concept"]: r["sha256"] for r in rows}
    if again.returncode == 0 and before["c"] == after["c"]:
        again.returncode = 99  # exit 0 but the old adapter kept: silent and wrong
        again.stderr += "\nthe edited concept kept its old adapter"
    return again


def two_pairs_builds(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WEIGHTGEN_ARTIFACTS": str(root / "artifacts")}
    args = [str(BIN / "weightgen-pairs"), *TINY, "run_name=twice"]
    first = subprocess.Popen(args, cwd=root, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(args, cwd=root, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    out1, err1 = first.communicate(timeout=900)
    out2, err2 = second.communicate(timeout=900)
    code = max(first.returncode, second.returncode)
    return subprocess.CompletedProcess(args, code, out1 + out2, err1 + err2)


def sigterm_dataset(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WEIGHTGEN_ARTIFACTS": str(root / "artifacts")}
    args = [str(BIN / "weightgen-dataset"), *TINY, "run_name=term", "builder.base_steps=2000"]
    process = subprocess.Popen(args, cwd=root, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    log = run_dir(root, "term") / "base"
    while time.time() < deadline and process.poll() is None:
        time.sleep(1)
        if (run_dir(root, "term") / "pairs").is_dir() and not log.exists():
            time.sleep(15)  # into the base GAN's training
            process.send_signal(signal.SIGTERM)
            break
    out, err = process.communicate(timeout=600)
    return subprocess.CompletedProcess(args, process.returncode, out, err)


def apply_tiny_image(root: Path) -> subprocess.CompletedProcess:
    tiny_png(root / "in" / "big.png", 32)
    tiny_png(root / "in" / "small.png", 4)
    return command(root, "weightgen-apply", f"model={model_folder(root)}", f"input={root}/in",
                   f"output={root}/edited")


def apply_corrupt_model(root: Path) -> subprocess.CompletedProcess:
    broken = root / "models" / "broken"
    shutil.copytree(model_folder(root), broken, dirs_exist_ok=True)
    flip_bytes(broken / "generator.safetensors")
    return command(root, "weightgen-apply", f"model={broken}", f"input={root}/in",
                   f"output={root}/edited_broken")


# --- issue 21's cases -----------------------------------------------------------------------


class ShellPayload:
    """Pickles to a call that makes ``path``: it exists only if something unpickled it."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


def with_denoiser_entry(root: Path, entry: dict) -> subprocess.CompletedProcess:
    """``weightgen-generate`` on the tiny run with ``generator.json``'s denoiser replaced."""
    path = run_dir(root) / "generator" / "generator.json"
    original = path.read_text()
    path.write_text(json.dumps({**json.loads(original), "denoiser": entry}))
    try:
        return tiny(root, "weightgen-generate", "prompt=sepia", f"out={root}/payload.safetensors")
    finally:
        path.write_text(original)


def generator_json_pickle(root: Path) -> subprocess.CompletedProcess:
    import numpy as np

    payload = root / "payload.npy"
    np.save(payload, np.array([ShellPayload(root / "pickle_ran")], dtype=object),
            allow_pickle=True)
    return with_denoiser_entry(root, {"_target_": "numpy.load", "file": str(payload),
                                      "allow_pickle": True})


def generator_json_open(root: Path) -> subprocess.CompletedProcess:
    victim = write(root / "victim.txt", "keep me\n")
    return with_denoiser_entry(root, {"_target_": "builtins.open", "file": str(victim),
                                      "mode": "w"})


WORDS = {"a": "sepia", "b": "blur", "c": "invert"}  # the "words" run: a, b train; c held out


def words_file(root: Path, prompts: dict[str, str]) -> Path:
    lines = [f"- {{id: {cid}, prompt: {prompts[cid]}, recipe: [{{op: {op}}}]"
             f"{', split: test' if cid == 'c' else ''}}}" for cid, op in WORDS.items()]
    return write(root / "c_words.yaml", "\n".join(lines) + "\n")


def words_dataset(root: Path, prompts: dict[str, str]) -> subprocess.CompletedProcess:
    return tiny(root, "weightgen-dataset", "run_name=words", "concepts=file",
                f"concepts.path={words_file(root, prompts)}")


def words_rows(root: Path) -> dict[str, dict]:
    text = (run_dir(root, "words") / "weights" / "manifest.jsonl").read_text()
    return {row["concept"]: row for row in map(json.loads, text.splitlines())}


def heldout_prompt_changed(root: Path) -> subprocess.CompletedProcess:
    """A concept-file run, then the held-out concept reworded: its adapter must be trained again."""
    prompts = {cid: f"{op} photo" for cid, op in WORDS.items()}
    built = words_dataset(root, prompts)
    if built.returncode != 0:
        return built
    before = words_rows(root)
    again = words_dataset(root, {**prompts, "c": "a photo in negative colours"})
    after = words_rows(root)
    if again.returncode == 0 and before["c"]["texts_sha256"] == after["c"]["texts_sha256"]:
        again.returncode = 99  # exit 0 but the old adapter kept: silent and wrong
        again.stderr += "\nthe reworded concept kept its old adapter"
    return again


def train_prompt_changed(root: Path) -> subprocess.CompletedProcess:
    """After ``heldout_prompt_changed``: a train concept reworded must refuse the base."""
    return words_dataset(root, {**{cid: f"{op} photo" for cid, op in WORDS.items()},
                                "c": "a photo in negative colours", "a": "an old brown photo"})


def pngs_edited_alike(folder: Path, first: str, second: str) -> bool:
    """Whether the edits of two inputs that should read as one image differ by at most 2/255."""
    import numpy as np
    from PIL import Image

    a, b = (np.asarray(Image.open(folder / f"{name}.png"), dtype=int) for name in (first, second))
    return a.shape == b.shape and int(np.abs(a - b).max()) <= 2


def apply_alike(root: Path, name: str, first, second) -> subprocess.CompletedProcess:
    """``weightgen-apply`` on two images that must read as one (``first``, ``second``: the
    Pillow images); it fails (exit 99) unless their edits agree."""
    inputs, outputs = folder(root / f"in_{name}"), root / f"out_{name}"
    first.save(inputs / "first.png")
    second.save(inputs / "second.png")
    done = command(root, "weightgen-apply", f"model={model_folder(root)}", f"input={inputs}",
                   f"output={outputs}", "progress=false")
    if done.returncode == 0 and not pngs_edited_alike(outputs, "first", "second"):
        done.returncode = 99
        done.stderr += f"\nthe {name} image was not edited as its 8-bit RGB equivalent"
    return done


def apply_16_bit_png(root: Path) -> subprocess.CompletedProcess:
    """A 16-bit greyscale PNG of mid greys and its 8-bit copy must be edited alike (clipped to 8
    bits it was a white image)."""
    import numpy as np
    from PIL import Image

    deep = (np.random.default_rng(1).random((32, 32)) * 30000 + 20000).astype(np.uint16)
    eight = np.round(deep / 257).astype(np.uint8)
    return apply_alike(root, "16bit", Image.fromarray(deep), Image.fromarray(eight).convert("RGB"))


def apply_rgba_png(root: Path) -> subprocess.CompletedProcess:
    """An RGBA PNG with a transparent half must be edited as that half on white (the default)."""
    import numpy as np
    from PIL import Image

    rgb = (np.random.default_rng(2).random((32, 32, 3)) * 255).astype(np.uint8)
    alpha = np.full((32, 32, 1), 255, np.uint8)
    alpha[:, 16:] = 0
    flat = rgb.copy()
    flat[:, 16:] = 255
    rgba = Image.fromarray(np.concatenate([rgb, alpha], axis=2))
    rgba.save(folder(root / "in_clear") / "clear.png")
    return apply_alike(root, "rgba", rgba, Image.fromarray(flat))


def apply_large_no_tile(root: Path) -> subprocess.CompletedProcess:
    """Two 96x96 images above a 64x64 ``auto_tile_above_px``: tiled, said once, naming tile=."""
    tiny_png(root / "in_large" / "one.png", 96)
    tiny_png(root / "in_large" / "two.png", 96)
    done = command(root, "weightgen-apply", f"model={model_folder(root)}",
                   f"input={root}/in_large", f"output={root}/out_large", "progress=false",
                   "auto_tile_above_px=4096", "auto_tile=48", "tile_overlap=8")
    said = [line for line in (done.stdout + done.stderr).splitlines() if "tile=" in line]
    edited = len(list((root / "out_large").glob("*.png")))
    if done.returncode == 0 and (len(said) != 1 or edited != 2):
        done.returncode = 99
        done.stderr += f"\n{len(said)} lines name tile=, {edited} of 2 images edited"
    return done


def stamped(root: Path, name: str) -> Path:
    """A file written now: what a command writes after it is newer."""
    return write(root / f"stamp_{name}", "")


def nothing_newer(folder: Path, stamp: Path) -> bool:
    since = stamp.stat().st_mtime_ns
    return all(p.stat().st_mtime_ns <= since for p in folder.rglob("*"))


def recipe_lr_negative(root: Path) -> subprocess.CompletedProcess:
    stamped(root, "recipe")
    return tiny(root, "weightgen-bench", f"bench.recipes.{BASELINE}.optimizer.lr=-1")


def truncated_meta(root: Path, path: Path) -> subprocess.CompletedProcess:
    """``weightgen-generate`` with ``path`` cut to 20 characters (restored afterwards)."""
    original = path.read_text()
    path.write_text(original[:20])
    try:
        return tiny(root, "weightgen-generate", "prompt=sepia", f"out={root}/meta.safetensors")
    finally:
        path.write_text(original)


def model_card_misfit(root: Path) -> subprocess.CompletedProcess:
    misfit = root / "models" / "misfit"
    shutil.copytree(model_folder(root), misfit, dirs_exist_ok=True)
    card = json.loads((misfit / "model_card.json").read_text())
    card["generator_kwargs"]["ngf"] = 2 * card["generator_kwargs"]["ngf"]
    (misfit / "model_card.json").write_text(json.dumps(card, indent=2))
    return command(root, "weightgen-apply", f"model={misfit}", f"input={photos(root)}",
                   f"output={root}/edited_misfit")


def export_model_read_only(root: Path) -> subprocess.CompletedProcess:
    """The model folder on a read-only tmpfs in a private mount namespace (root), or chmod 555."""
    if os.geteuid() != 0:
        model_folder(root).chmod(0o555)
        try:
            return command(root, "weightgen-export", f"model={model_folder(root)}")
        finally:
            model_folder(root).chmod(0o755)
    mount = folder(root / "ro_mount")
    script = (f"mount -t tmpfs none {mount} && cp -r {model_folder(root)} {mount}/m && "
              f"mount -o remount,ro {mount} && exec {BIN / 'weightgen-export'} model={mount}/m")
    return command(root, shutil.which("unshare") or "unshare", "-m", "sh", "-c", script)


# --- judging and the table ------------------------------------------------------------------


def judge(case: Case, done: subprocess.CompletedProcess, root: Path) -> tuple[bool, str]:
    output = done.stdout + done.stderr
    if case.kind == "recover":
        ok = done.returncode == 0 and case.check(root)
        return ok, "recovered" if ok else f"exit {done.returncode}"
    if done.returncode == 0:
        return False, "exit 0"
    if "Traceback" in output:
        return False, "traceback"
    if case.expect.lower() not in output.lower():
        return False, f"message does not name `{case.expect}`"
    if not case.check(root):
        return False, "touched what it must not"
    return True, "clear error"


def message(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()] or \
            [line for line in done.stdout.splitlines() if line.strip()] or [""]
    errors = [line for line in lines if line.startswith("error:")] or \
             [line for line in done.stdout.splitlines() if line.startswith("skipped ")]  # apply's
    return (errors or lines)[-1][:220].replace("|", "\\|")


def run_label() -> str:
    """Today's date and the commit the cases ran at, recorded in each row."""
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    return f"{time.strftime('%Y-%m-%d')} {commit or 'unknown commit'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*",
                        help="case names to run (default: all); their rows replace the last run's")
    parser.add_argument("--keep", help="a scratch folder to keep (default: a temporary one)")
    args = parser.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="weightgen-faults-"))
    root.mkdir(parents=True, exist_ok=True)
    rows, run = [], run_label()
    for case in cases():
        if args.only and case.name not in args.only:
            continue
        start = time.perf_counter()
        done = case.run(root)
        ok, verdict = judge(case, done, root)
        rows.append({"case": case.name, "fault": case.fault, "kind": case.kind,
                     "exit": done.returncode, "handled_well": ok, "verdict": verdict,
                     "message": message(done), "seconds": round(time.perf_counter() - start, 1),
                     "run": run})
        print(f"{'ok ' if ok else 'BAD'} {case.name}: {verdict} ({rows[-1]['message'][:100]})",
              flush=True)
    if args.only and (HERE / "results.json").is_file():  # rerun cases replace their rows
        fresh = {r["case"]: r for r in rows}
        earlier = json.loads((HERE / "results.json").read_text())["cases"]
        rows = [fresh.pop(r["case"], r) for r in earlier] + list(fresh.values())
    good = sum(r["handled_well"] for r in rows)
    (HERE / "results.json").write_text(json.dumps({"tried": len(rows), "handled_well": good,
                                                   "cases": rows}, indent=2) + "\n")
    lines = [f"# Reliability exercise: {good} of {len(rows)} faults handled well", "",
             "`.venv/bin/python experiments/reliability/run.py`; see README.md for the rules.", "",
             "| case | fault | exit | verdict | what the user sees | run |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['fault']} | {r['exit']} | "
              f"{'ok' if r['handled_well'] else '**' + r['verdict'] + '**'} | {r['message']} | "
              f"{r['run']} |" for r in rows]
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print(f"{good} of {len(rows)} handled well; {HERE / 'results.md'}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
