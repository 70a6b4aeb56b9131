"""weightgen-new-concept end to end on a toy run: recipe, diffusion-editor and folder pairs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from helpers import (
    TINY,
    StopAtStep,
    compose_config,
    photos_loaded_once,
    shared_minilm,
    tiny_metrics,
)
from offline_wandb import offline_runs
from PIL import Image

import weightgen.cli.new_concept as new_concept_cli
from weightgen.bench.methods import method_of_init
from weightgen.concepts.spec import Concept
from weightgen.data.pair_folder import read_pair_folder, write_folder_pair_store
from weightgen.data.pairs import PairSettings, PairStore
from weightgen.diffusion.condition import Condition
from weightgen.editor import load_editor
from weightgen.editor.model_folder import REQUIRED_CARD_FIELDS
from weightgen.errors import ConfigError, InterruptedRunError
from weightgen.stages.artifacts import adapter_evaluator, default_inits, load_base, load_generator
from weightgen.stages.dataset import build_weight_dataset
from weightgen.stages.new_concept import (
    check_out_folder,
    concept_slug,
    make_concept_editor,
    new_concept,
)
from weightgen.stages.new_concept_init import (
    CHOICES,
    choose_init,
    compared_inits,
    comparison_lines,
)
from weightgen.stages.train_generator import train_weight_generator
from weightgen.stages.workspace import Workspace
from weightgen.text.tiny_clip import save_tiny_clip_model
from weightgen.training import make_trainer
from weightgen.utils.io import load_safetensors, sha256_file

# A weight generator trained for two steps: the flow, not the quality, is under test.
GENERATOR = [
    "denoiser=mlp",
    "denoiser.hidden_dim=32",
    "denoiser.depth=1",
    "diffusion.steps=2",
    "diffusion.val_every=2",
    "diffusion.val_concepts=1",
    "diffusion.lr_scheduler.num_warmup_steps=1",
    "diffusion.batch_size=4",
]
FLOW = ["steps=2", "eval_every=2", "export=false"]
RECIPE = "recipe=[{op: sepia}, {op: blur, sigma: 1.0}]"
PROMPT = "A sepia photo, gently blurred!"


def flow_workspace(artifacts, *overrides: str) -> Workspace:
    """The tiny run's config composed as ``weightgen-new-concept`` composes it."""
    cfg = compose_config([*TINY, *GENERATOR, *FLOW, f"paths.artifacts={artifacts}", *overrides],
                         "new_concept")
    return Workspace(cfg, text_encoder=shared_minilm())


pytestmark = pytest.mark.usefixtures("photos_once")


@pytest.fixture(scope="module")
def flow_run(tiny_store, tmp_path_factory):
    """A built toy run (a copy of the session's ``tiny_store``: base, adapters) with a trained
    weight generator."""
    artifacts = tmp_path_factory.mktemp("run")
    shutil.copytree(tiny_store["artifacts"], artifacts, dirs_exist_ok=True)
    ws = flow_workspace(artifacts, "prompt=unused", "out=unused")
    with photos_loaded_once():
        assert build_weight_dataset(ws)["adapters"] == []  # the copy is this config's store
        train_weight_generator(ws)
    return artifacts


@pytest.fixture(scope="module")
def recipe_made(flow_run, tmp_path_factory):
    """The recipe flow with ONNX export, traced and timed at the run's 16 px."""
    out = tmp_path_factory.mktemp("models") / "sepia-blur"
    ws = flow_workspace(flow_run, f"prompt='{PROMPT}'", RECIPE, f"out={out}", "export=true",
                        "export_options.formats=[onnx]", "export_options.sizes=[16]",
                        "export_options.repeats=1")
    with photos_loaded_once():
        return ws, make_concept_editor(ws)


def test_recipe_flow_writes_a_complete_model_folder(recipe_made):
    ws, made = recipe_made
    folder = made.folder
    for name in ("generator.safetensors", "adapter.safetensors", "text.safetensors",
                 "before_after.png", "model_card.json", "model.onnx"):
        assert (folder / name).is_file(), name
    card = json.loads((folder / "model_card.json").read_text())
    assert card == made.card and set(REQUIRED_CARD_FIELDS) <= set(card)
    assert card["prompt"] == PROMPT and card["concept_id"] == "a-sepia-photo-gently-blurred"
    assert card["image_size"] == 16 and card["seed"] == ws.cfg.seed
    assert card["data"]["source"] == "recipe"
    assert [step["op"] for step in card["data"]["recipe"]] == ["sepia", "blur"]
    metrics = card["metrics"]
    assert metrics["before"]["step"] == 0 and metrics["after"]["step"] == 2
    for key in ("base", "before", "after"):
        assert np.isfinite(metrics[key]["psnr"]) and 0 <= metrics[key]["ssim"] <= 1
    seconds = card["seconds"]
    assert seconds["generation"] > 0 and seconds["fine_tune"] > 0
    assert seconds["generation_plus_fine_tune"] == pytest.approx(
        seconds["generation"] + seconds["fine_tune"])
    assert card["exports"]["onnx"]["traced_at"] == 16
    assert card["latency"]["seconds_per_image"]["onnxruntime"]["16x16"] > 0
    with Image.open(folder / "before_after.png") as grid:
        assert grid.width > 16 * 4 and grid.height >= 16 * 4 * 2  # 4 rows of 2x-scaled crops


def test_card_names_the_generator_and_base_with_their_checksums(recipe_made):
    ws, made = recipe_made
    source = made.card["provenance"]
    generator_json = json.loads((ws.run_dir / "generator" / "generator.json").read_text())
    base_json = json.loads((ws.run_dir / "base" / "base.json").read_text())
    assert source["weight_generator"]["generator_json_sha256"] == sha256_file(
        ws.run_dir / "generator" / "generator.json")
    assert source["weight_generator"]["denoiser_sha256"] == generator_json["denoiser_sha256"]
    assert source["base"]["base_json_sha256"] == sha256_file(ws.run_dir / "base" / "base.json")
    assert source["base"]["generator_sha256"] == base_json["generator_sha256"]
    assert source["weight_generator"]["path"] == str((ws.run_dir / "generator").resolve())


def test_loaded_editor_reproduces_the_fine_tuned_generator(recipe_made):
    ws, made = recipe_made
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    text = ws.embed([PROMPT])
    generator = made.module.generator.eval()
    with torch.no_grad():
        expected = generator(images, text.tokens.expand(2, -1, -1), text.mask.expand(2, -1))
    torch.testing.assert_close(load_editor(made.folder).edit_tensor(images), expected,
                               atol=1e-5, rtol=1e-4)


def test_the_saved_adapter_is_the_generated_one_fine_tuned(recipe_made):
    ws, made = recipe_made
    generated = load_generator(ws).generate(Condition.of_text(ws.embed([PROMPT])),
                                            **dict(ws.cfg.diffusion.sampling)).state
    saved = load_safetensors(made.folder / "adapter.safetensors")
    assert saved.keys() == generated.keys()
    assert any(not torch.allclose(saved[k], generated[k]) for k in saved)
    entry = ws.pair_store.manifest()["concepts"]["a-sepia-photo-gently-blurred"]
    assert entry["split"] == "test" and entry["prompt"] == PROMPT


class InvertingEditor:
    """Stands in for InstructPix2Pix: records the instructions it was given."""

    instructions: list[str] = []

    def edit(self, images, concept):
        InvertingEditor.instructions.append(concept.instruction)
        return 255 - images


def test_editor_flow_uses_the_prompt_as_instruction(flow_run, tmp_path):
    ws = flow_workspace(flow_run, "prompt=inverted colours", f"out={tmp_path / 'm'}",
                        f"editor._target_={__name__}.InvertingEditor")
    summary = new_concept(ws)
    assert InvertingEditor.instructions[-1] == "inverted colours"
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert card["data"]["source"] == "editor" and card["data"]["instruction"] == "inverted colours"
    assert summary["concept_id"] == "inverted-colours" and summary["steps"] == 2
    assert "model.onnx" not in summary["files"]  # export=false


def test_image_metrics_and_wandb_run_of_a_new_concept(flow_run, tmp_path):
    """KID (4 crops < 64 features) and CLIP score with local stand-ins, in the card and in W&B."""
    clip_dir = save_tiny_clip_model(tmp_path / "clip", image_size=32, seed=2)
    ws = flow_workspace(flow_run, "prompt=sepia", "recipe=[{op: sepia}]", f"out={tmp_path / 'm'}",
                        "logger=wandb_csv", f"paths.logs_dir={tmp_path / 'logs'}",
                        *tiny_metrics(clip_dir, "WideTinyFeatures"))
    summary = new_concept(ws)
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    metrics = card["metrics"]["image_metrics"]
    clip_name = "clip_score_" + clip_dir.name
    assert metrics["images"] == ws.cfg.data.n_val and metrics["skipped"] == {}
    assert set(metrics["fine_tuned"]) == {"kernel_distance_widetinyfeatures",
                                          "kernel_distance_widetinyfeatures_std", clip_name}
    assert all(np.isfinite(v) for v in metrics["fine_tuned"].values())
    assert np.isfinite(metrics["targets"][clip_name])
    assert summary["image_metrics"] == metrics["fine_tuned"]

    (wandb_run,) = offline_runs(tmp_path / "logs")
    assert wandb_run.name == "quickstart/new_concept/sepia" and wandb_run.job_type == "new_concept"
    assert wandb_run.media("new_concept/before_after/sepia")[0].stat().st_size > 100
    assert wandb_run.summary["new_concept/psnr/after"] == card["metrics"]["after"]["psnr"]
    assert wandb_run.summary[f"new_concept/image_metrics/fine_tuned/{clip_name}"] == (
        metrics["fine_tuned"][clip_name])


def test_empty_prompt_is_an_error_and_writes_nothing(flow_run, tmp_path):
    ws = flow_workspace(flow_run, "prompt='  '", RECIPE, f"out={tmp_path / 'm'}")
    with pytest.raises(ValueError, match="prompt is empty"):
        make_concept_editor(ws)
    assert not (tmp_path / "m").exists()


def test_existing_out_folder_is_refused_before_any_work(flow_run, tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    ws = flow_workspace(flow_run, "prompt=a brand new look", RECIPE, f"out={out}")
    with pytest.raises(FileExistsError, match="not empty; nothing was written"):
        make_concept_editor(ws)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "mine"
    assert "a-brand-new-look" not in ws.pair_store.manifest()["concepts"]


def test_sigterm_during_the_fine_tune_exits_non_zero_and_writes_nothing(flow_run, tmp_path,
                                                                       monkeypatch):
    """Issue 14, item 12: SIGTERM in the fine-tune exited 0, with nothing written and no word."""
    import weightgen.finetune.concept_fit as concept_fit

    def make_trainer_stopped_by_sigterm(*args, callbacks=(), **kwargs):
        return make_trainer(*args, callbacks=[*callbacks, StopAtStep("sigterm", at=1)], **kwargs)

    monkeypatch.setattr(concept_fit, "make_trainer", make_trainer_stopped_by_sigterm)
    out = tmp_path / "m"
    ws = flow_workspace(flow_run, "prompt=a stopped look", RECIPE, f"out={out}", "steps=4")
    with pytest.raises(InterruptedRunError, match=r"fine-tuning on concept 'a-stopped-look' was "
                                                  r"interrupted \(SIGTERM\) at step 1 of 4"):
        make_concept_editor(ws)
    assert not out.exists()


def test_an_out_folder_below_a_file_is_refused_before_any_work(tmp_path):
    """Issue 14, item 7: the model folder was made only after the fine-tune, and failed there."""
    (tmp_path / "taken").write_text("mine")
    with pytest.raises(ConfigError, match="taken is a file, not a folder"):
        check_out_folder(tmp_path / "taken" / "model", {})


def test_an_out_folder_inside_the_runs_own_folders_is_refused(tmp_path):
    """Issue 21: a run's artifacts are never an output (a new or empty folder in them neither)."""
    run = {"paths.run_dir": tmp_path / "run", "paths.base_dir": tmp_path / "run" / "base"}
    (tmp_path / "run" / "base" / "empty").mkdir(parents=True)
    for out, key in ((tmp_path / "run" / "base" / "empty", "paths.base_dir"),
                     (tmp_path / "run" / "models" / "sepia", "paths.run_dir")):
        with pytest.raises(ConfigError, match=rf"^out={out} is inside the run's {key} \("):
            check_out_folder(out, run)
    assert check_out_folder(tmp_path / "models" / "sepia", run) == tmp_path / "models" / "sepia"


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ([], ValueError, r"recipe=.*editor=instruct_pix2pix.*pairs="),
        ([RECIPE, "pairs=somewhere"], ValueError, "not both"),
        ([RECIPE, "concept_id=bad id"], ValueError, "concept id 'bad id' is invalid"),
    ],
    ids=["no_data_source", "two_data_sources", "bad_id"],
)
def test_bad_requests_name_the_fix(flow_run, tmp_path, overrides, error, message):
    ws = flow_workspace(flow_run, "prompt=some look", f"out={tmp_path / 'm'}", *overrides)
    with pytest.raises(error, match=message):
        make_concept_editor(ws)


def test_a_run_concept_id_is_refused(flow_run, tmp_path):
    ws = flow_workspace(flow_run, "prompt=some look", f"out={tmp_path / 'm'}", RECIPE)
    ws.cfg.concept_id = ws.concepts[0].id
    with pytest.raises(ValueError, match="one of this run's concepts"):
        make_concept_editor(ws)


@pytest.mark.parametrize(
    ("prompt", "slug"),
    [("Watercolor painting!", "watercolor-painting"), ("café  au lait", "cafe-au-lait"),
     ("x" * 80, "x" * 48)],
)
def test_concept_slug(prompt, slug):
    assert concept_slug(prompt) == slug


def test_concept_slug_of_a_prompt_without_ascii_letters():
    assert concept_slug("水彩画").startswith("concept-")
    assert concept_slug("水彩画") != concept_slug("油画")


# --- a folder of pairs ------------------------------------------------------------------------
def _pairs_folder(root, sizes, invert=True):
    """source/<i>.png random photos; target/<i>.png their inverse (or given sizes per side)."""
    rng = np.random.default_rng(0)
    (root / "source").mkdir(parents=True)
    (root / "target").mkdir()
    for i, (source_size, target_size) in enumerate(sizes):
        source = rng.integers(0, 256, (*source_size, 3), dtype=np.uint8)
        target = 255 - source if invert and source_size == target_size else rng.integers(
            0, 256, (*target_size, 3), dtype=np.uint8)
        Image.fromarray(source).save(root / "source" / f"p{i}.png")
        Image.fromarray(target).save(root / "target" / f"p{i}.png")
    return root


def test_folder_pairs_become_aligned_crops_with_whole_pairs_held_out(tmp_path):
    folder = _pairs_folder(tmp_path / "pairs", [((40, 48), (40, 48))] * 5)
    pairs = read_pair_folder(folder, min_side=16, alpha_background="white")
    assert pairs.names == [f"p{i}" for i in range(5)]
    ws_concept = type("C", (), {"id": "mine", "prompt": "inverted", "split": "test",
                                "recipe": None, "instruction": "inverted"})()
    settings = PairSettings(size=16, n_train=6, n_val=3, seed=0, max_zoom=2.0, photos=str(folder))
    store, data = write_folder_pair_store(tmp_path / "store", ws_concept, pairs, settings, 0.2)
    assert len(data["val_pairs"]) == 1 and not set(data["val_pairs"]) & set(data["train_pairs"])
    loaded = PairStore(tmp_path / "store").load("mine")
    assert loaded.train_source.shape == (6, 16, 16, 3) and loaded.val_target.shape == (3, 16, 16, 3)
    for source, target in ((loaded.train_source, loaded.train_target),
                           (loaded.val_source, loaded.val_target)):
        # Inverting commutes with the crop's resize up to rounding: the windows are the same.
        assert np.abs(target.astype(int) - (255 - source.astype(int))).max() <= 1


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda root: root / "absent", FileNotFoundError, "pairs folder .* does not exist"),
        (lambda root: (root / "source").mkdir() or root, FileNotFoundError,
         "target does not exist"),
        (lambda root: _pairs_folder(root, [((20, 20), (20, 20))] * 2).joinpath(
            "target", "p1.png").unlink() or root, ValueError, r"p1 \(source only\)"),
        (lambda root: _pairs_folder(root, [((20, 20), (20, 24)), ((20, 20), (20, 20))]),
         ValueError, "pair 'p0': source 20x20 but target 24x20"),
        (lambda root: _pairs_folder(root, [((20, 20), (20, 20))]), ValueError, "need at least 2"),
        (lambda root: _pairs_folder(root, [((12, 20), (12, 20))] * 2), ValueError,
         "smaller than the crop size 16"),
    ],
    ids=["missing_folder", "missing_target", "unmatched", "sizes_differ", "one_pair", "too_small"],
)
def test_bad_pairs_folders_are_clear_errors(tmp_path, build, error, message):
    root = tmp_path / "pairs"
    root.mkdir()
    with pytest.raises(error, match=message):
        read_pair_folder(build(root), min_side=16, alpha_background="white")


def test_folder_flow_fine_tunes_on_its_own_pair_store(flow_run, tmp_path):
    folder = _pairs_folder(tmp_path / "pairs", [((32, 32), (32, 32))] * 3)
    ws = flow_workspace(flow_run, "prompt=my inverted look", f"out={tmp_path / 'm'}", f"pairs={folder}")
    made = make_concept_editor(ws)
    data = made.card["data"]
    assert data["source"] == "folder" and data["folder"] == str(folder.resolve())
    assert len(data["val_pairs"]) == 1 and len(data["train_pairs"]) == 2
    assert PairStore(data["pairs_dir"]).load("my-inverted-look").train_source.shape[0] == 16
    assert "my-inverted-look" not in ws.pair_store.manifest()["concepts"]  # the run's cache
    assert made.card["metrics"]["after"]["step"] == 2


# --- where the adapter starts: init= (issue 25) -----------------------------------------------
# A weight generator trained with example pairs, beside the flow run's text-only one.
EXAMPLES = ["diffusion.examples.k=2", "diffusion.examples.bank=4"]


@pytest.fixture(scope="module")
def examples_generator(flow_run, tmp_path_factory):
    """Overrides that load a generator trained with 2 example pairs on the flow run."""
    folder = tmp_path_factory.mktemp("examples_generator")
    overrides = [*EXAMPLES, f"paths.generator_dir={folder}"]
    train_weight_generator(flow_workspace(flow_run, "prompt=unused", "out=unused", *overrides))
    return overrides


def test_init_auto_takes_the_examples_when_the_generator_reads_them_and_the_text_otherwise():
    with_pairs = choose_init("auto", 8, "gen")
    assert (with_pairs.kind, with_pairs.requested) == ("generated_examples", "auto")
    assert "diffusion.examples.k=8" in with_pairs.reason and "8 of the concept's own pairs" in (
        with_pairs.reason)
    assert with_pairs.method == method_of_init("generated_examples")
    text_only = choose_init("auto", 0, "gen")
    assert (text_only.kind, text_only.requested) == ("generated", "auto")
    assert "reads text only" in text_only.describe()


@pytest.mark.parametrize("kind", CHOICES)
def test_an_explicit_init_is_taken_as_asked(kind):
    assert choose_init(kind, 2, "gen").kind == kind
    if not method_of_init(kind).needs_examples:
        assert choose_init(kind, 0, "gen").kind == kind
        assert choose_init(kind, 0, "gen").reason == f"init={kind} asked for it"


@pytest.mark.parametrize(("requested", "message"), [
    ("generated_examples", r"init=generated_examples needs a weight generator trained with "
                           r"example pairs, but the one at gen reads text only; use init=auto"),
    ("pairs_choice", r"init=pairs_choice needs a weight generator trained with example pairs"),
    ("trained", r"init='trained' is not a start a new concept can have: use init=auto .* "
                r"generated_examples, generated, pairs_choice, ensemble, examples_nearest, "
                r"examples_ridge, text_examples_ridge, text_ridge, controls_ensemble, nearest, "
                r"mean, standard"),
    ("examples_nearest", r"init=examples_nearest needs a weight generator trained with example"),
    ("nearst", r"init='nearst' is not a start"),
])
def test_an_init_the_generator_cannot_make_is_refused(requested, message):
    with pytest.raises(ConfigError, match=message):
        choose_init(requested, 0, "gen")


def test_the_cheap_starts_are_compared_and_text_only_too_when_examples_were_used():
    assert compared_inits("generated_examples") == ("generated", "nearest", "mean", "standard")
    assert compared_inits("pairs_choice") == ("generated_examples", "generated", "nearest",
                                              "mean", "standard")
    assert compared_inits("generated") == ("nearest", "mean", "standard")
    assert compared_inits("nearest") == ("mean", "standard")
    assert compared_inits("examples_nearest") == ("generated_examples", "generated", "nearest",
                                                  "mean", "standard")
    assert compared_inits("text_ridge") == ("generated", "nearest", "mean", "standard")


def test_the_closing_table_lists_the_starts_best_first_and_marks_the_one_used(capsys):
    summary = {"init": "generated", "zero_shot_psnr_by_init": {
        "mean": 21.5, "generated": 21.5, "nearest": 23.25, "standard": 17.125}}
    new_concept_cli.present(None, summary)
    printed = capsys.readouterr().out
    table = comparison_lines("generated", summary["zero_shot_psnr_by_init"])
    assert printed.endswith("\n".join(table) + "\n")
    assert json.loads(printed[: -len("\n".join(table)) - 1]) == summary
    rows = table[1:]
    assert [row.split()[0] for row in rows] == ["nearest", "generated", "mean", "standard"]
    assert rows[1].endswith("<- this editor's start") and "23.25 dB" in rows[0]
    assert sum("<-" in row for row in rows) == 1
    assert method_of_init("nearest").label in rows[0]


def _init_of(ws, card: dict, kind: str):
    """(state, adapter scorer, concept): the ``kind`` init of a made concept (its model card),
    rebuilt on its own pairs, and the scorer on them."""
    store = PairStore(card["data"]["pairs_dir"])
    concept = Concept(card["concept_id"], card["prompt"], instruction="unused", split="test")
    base = load_base(ws)
    inits = default_inits(ws, base, load_generator(ws), pair_store=store)
    return inits.get(kind, concept).state, adapter_evaluator(ws, base, store), concept


def test_a_text_only_generator_starts_from_the_prompt_and_the_card_compares_the_cheap_starts(
        recipe_made):
    ws, made = recipe_made
    card = made.card
    assert card["init"]["kind"] == "generated" and card["init"]["requested"] == "auto"
    assert card["method"] == method_of_init("generated").name
    zero_shot = card["metrics"]["zero_shot_by_init"]
    assert set(zero_shot) == {"generated", "nearest", "mean", "standard"}
    assert zero_shot["generated"] == {k: card["metrics"]["before"][k] for k in ("psnr", "ssim")}
    for kind in ("nearest", "mean", "standard", "generated"):
        state, evaluator, concept = _init_of(ws, card, kind)
        # each figure is the adapter scorer's for that init; the one used agrees with step 0
        assert evaluator.quality(concept, state).psnr == pytest.approx(zero_shot[kind]["psnr"],
                                                                        abs=1e-4)


def test_a_generator_with_example_pairs_starts_from_them_and_says_so(
        flow_run, examples_generator, tmp_path, caplog):
    caplog.set_level("INFO", logger="weightgen.stages.new_concept")
    ws = flow_workspace(flow_run, "prompt=a look with examples", "recipe=[{op: sepia}]",
                        f"out={tmp_path / 'm'}", "steps=0", *examples_generator)
    summary = new_concept(ws)
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert summary["init"] == card["init"]["kind"] == "generated_examples"
    assert card["init"]["requested"] == "auto" and "diffusion.examples.k=2" in card["init"]["why"]
    assert len(card["init"]["details"]["example_pairs"]) == 2
    assert card["method"] == method_of_init("generated_examples").name
    (line,) = [r.getMessage() for r in caplog.records if "starts from" in r.getMessage()]
    assert line.startswith("new concept a-look-with-examples starts from generated_examples")
    zero_shot = card["metrics"]["zero_shot_by_init"]
    assert set(zero_shot) == {"generated_examples", "generated", "nearest", "mean", "standard"}
    assert summary["zero_shot_psnr_by_init"] == {k: v["psnr"] for k, v in zero_shot.items()}
    # steps=0: the saved adapter is the start, the prompt and the concept's pairs, not the text alone
    saved = load_safetensors(tmp_path / "m" / "adapter.safetensors")
    with_examples, _, _ = _init_of(ws, card, "generated_examples")
    text_only, _, _ = _init_of(ws, card, "generated")
    assert all(torch.allclose(saved[k], with_examples[k]) for k in saved)
    assert not all(torch.allclose(saved[k], text_only[k]) for k in saved)


def test_the_example_pairs_of_a_pairs_folder_are_its_own(flow_run, examples_generator, tmp_path):
    folder = _pairs_folder(tmp_path / "pairs", [((32, 32), (32, 32))] * 3)
    ws = flow_workspace(flow_run, "prompt=my look with examples", f"out={tmp_path / 'm'}",
                        f"pairs={folder}", "steps=0", *examples_generator)
    made = make_concept_editor(ws)
    assert made.card["init"]["kind"] == "generated_examples"
    assert "my-look-with-examples" not in ws.pair_store.manifest()["concepts"]  # not the run's


def test_a_start_chosen_on_a_pairs_folders_pairs_reads_the_controls_data_from_the_run(
        flow_run, examples_generator, tmp_path, caplog):
    """init=pairs_choice scores its candidates on the folder's pairs; the controls among them
    read the training concepts' pairs, which are in the run's pair cache, not the folder's."""
    folder = _pairs_folder(tmp_path / "pairs", [((32, 32), (32, 32))] * 3)
    ws = flow_workspace(flow_run, "prompt=my chosen look", f"out={tmp_path / 'm'}",
                        f"pairs={folder}", "steps=0", "init=pairs_choice",
                        "bench.controls.k_blend=2", *examples_generator)
    caplog.set_level("INFO", logger="weightgen.stages.new_concept")
    made = make_concept_editor(ws)
    init = made.card["init"]
    assert (init["kind"], init["requested"]) == ("pairs_choice", "pairs_choice")
    assert made.card["method"] == method_of_init("pairs_choice").name
    details = init["details"]
    assert set(details["scores"]) == set(ws.cfg.bench.controls.choice.candidates)
    assert details["chosen"] == min(details["scores"], key=lambda c: details["scores"][c]["l1"])
    (line,) = [r.getMessage() for r in caplog.records if "chosen on its" in r.getMessage()]
    assert line.startswith(f"chosen on its 2 example pairs: {details['chosen']} (L1 ")
    assert set(made.card["metrics"]["zero_shot_by_init"]) == {"pairs_choice",
                                                              *compared_inits("pairs_choice")}
    # steps=0: the saved adapter is the winning candidate, made from the folder's pairs
    store = PairStore(f"{ws.cfg.user_pairs_dir}/{made.card['concept_id']}")
    concept = Concept(made.card["concept_id"], made.card["prompt"], instruction="unused",
                      split="test")
    inits = default_inits(ws, load_base(ws), load_generator(ws), pair_store=store)
    winner = inits.get(details["chosen"], concept).state
    saved = load_safetensors(made.folder / "adapter.safetensors")
    assert all(torch.allclose(saved[k], winner[k]) for k in saved)


@pytest.mark.parametrize(("init", "generator"), [("nearest", "text only"),
                                                 ("generated", "examples"),
                                                 ("examples_nearest", "examples")])
def test_an_explicit_init_is_the_start_and_the_card_says_so(flow_run, examples_generator,
                                                            tmp_path, init, generator):
    overrides = examples_generator if generator == "examples" else []
    ws = flow_workspace(flow_run, f"prompt=an explicit {init} look", "recipe=[{op: sepia}]",
                        f"out={tmp_path / 'm'}", "steps=0", f"init={init}", *overrides)
    made = make_concept_editor(ws)
    assert made.card["init"]["kind"] == init and made.card["init"]["requested"] == init
    assert set(made.card["metrics"]["zero_shot_by_init"]) == {init, *compared_inits(init)}
    start, _, _ = _init_of(ws, made.card, init)
    saved = load_safetensors(made.folder / "adapter.safetensors")
    assert all(torch.allclose(saved[k], start[k]) for k in saved)


def test_examples_asked_of_a_text_only_generator_are_refused_before_any_work(flow_run, tmp_path):
    ws = flow_workspace(flow_run, "prompt=a refused look", "recipe=[{op: sepia}]",
                        f"out={tmp_path / 'm'}", "init=generated_examples")
    with pytest.raises(ConfigError, match="init=generated_examples needs a weight generator "
                                          "trained with example pairs"):
        make_concept_editor(ws)
    assert not (tmp_path / "m").exists()
    assert "a-refused-look" not in ws.pair_store.manifest()["concepts"]
