"""The GAN dataset builder end to end at toy size: full, interrupted + resumed, sharded builds,
and builds in worker processes (builder.processes)."""

from __future__ import annotations

import json
import logging
import re
import shutil
import signal

import pytest
import torch
from helpers import tiny_workspace
from hydra.utils import instantiate
from omegaconf import OmegaConf

import weightgen.stages.dataset_adapters as adapters_stage
from weightgen.concepts.spec import Concept, save_concepts
from weightgen.concepts.text_fingerprints import texts_fingerprint
from weightgen.data.datamodule import images_to_tensor
from weightgen.errors import ConfigError, InterruptedRunError, StaleArtifactError
from weightgen.gan.evaluate import evaluate
from weightgen.stages.artifacts import current_rows, load_base
from weightgen.stages.dataset import build_weight_dataset
from weightgen.stages.dataset_adapters import sub_shards, train_adapter, worker_threads
from weightgen.stages.pairs import build_pairs
from weightgen.utils.workers import available_cores
from weightgen.weights.store import MANIFEST, IncompleteStoreError, Shard, WeightStore

CONTRACT_KEYS = {"concept", "prompt", "split", "step", "psnr", "ssim", "file", "sha256"}
STEPS = [2, 4]  # builder.checkpoint_steps of the tiny config

pytestmark = pytest.mark.usefixtures("photos_once")


@pytest.fixture(scope="module")
def reference(tiny_store):
    """One uninterrupted, unsharded build (builder.stage=all, the session's ``tiny_store``) that
    other tests compare with."""
    ws = tiny_workspace(tiny_store["artifacts"])
    return tiny_store["artifacts"], ws, tiny_store["dataset"], ws.weight_store.rows()


def run_stage(artifacts, stage: str, shard: str = "0/1", *overrides: str) -> dict:
    ws = tiny_workspace(artifacts, f"builder.stage={stage}", f"builder.shard={shard}", *overrides)
    return build_weight_dataset(ws)


def test_full_build_writes_store_and_manifest(reference):
    _, ws, summary, rows = reference
    assert summary["stage"] == "all" and summary["manifest_rows"] == 6
    assert summary["pairs"]["concepts"] == 3 and summary["base"]["steps"] == 4
    assert [(r["concept"], r["step"]) for r in rows] == [
        (c.id, s) for c in sorted(ws.concepts, key=lambda c: c.id) for s in STEPS
    ]
    concepts = {c.id: c for c in ws.concepts}
    assert sorted(c.split for c in concepts.values()) == ["test", "train", "train"]
    store = ws.weight_store
    adapter = instantiate(ws.cfg.adapter)
    adapter.attach(instantiate(ws.cfg.gan.generator, text_dim=384))
    for row in rows:
        assert CONTRACT_KEYS <= set(row) and row["adapter"] == "lora"
        assert (row["prompt"], row["split"]) == (concepts[row["concept"]].prompt,
                                                 concepts[row["concept"]].split)
        adapter.check_keys(store.load(row))  # sha256 verified; fits the configured adapter
    first, last = store.load(rows[0]), store.load(rows[1])
    assert any(not torch.equal(first[k], last[k]) for k in first)  # training moved the adapter
    by_concept = {s["concept"]: s for s in summary["adapters"]}
    for row in rows:
        assert by_concept[row["concept"]]["checkpoints"][row["step"]]["psnr"] == row["psnr"]
    run = ws.run_dir
    for concept_id in concepts:
        assert (run / "reports" / "adapters" / f"{concept_id}.json").is_file()
        assert (run / "grids" / "dataset" / f"{concept_id}.png").is_file()
    for path in ("base/base.json", "grids/pairs.png", "configs/dataset-all.yaml",
                 "weights/" + MANIFEST):
        assert (run / path).is_file(), path


def test_stored_adapter_reproduces_its_recorded_quality(reference):
    """The manifest's psnr is the quality of base + that file's adapter on the validation pairs."""
    _, ws, _, rows = reference
    row = rows[-1]
    base = load_base(ws)
    adapter = instantiate(ws.cfg.adapter)
    generator = adapter.attach(base.generator)
    adapter.load_state(generator, ws.weight_store.load(row))
    pairs = ws.pair_store.load(row["concept"])
    text = ws.embed([row["prompt"]])
    quality = evaluate(generator, images_to_tensor(pairs.val_source),
                       images_to_tensor(pairs.val_target), text.tokens[0], text.mask[0])
    assert quality.psnr == pytest.approx(row["psnr"], abs=1e-4)
    assert quality.ssim == pytest.approx(row["ssim"], abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("die_at", [3, 4], ids=["between_concepts", "mid_concept"])
def test_interrupted_build_resumes_to_the_same_manifest(reference, tmp_path, monkeypatch, die_at):
    _, _, _, expected = reference
    real_put = WeightStore.put
    calls = []

    def put_then_die(self, *args, **kwargs):
        calls.append(args[1].id)
        if len(calls) == die_at:  # 3: before the second concept's first checkpoint; 4: after it
            raise KeyboardInterrupt
        return real_put(self, *args, **kwargs)

    monkeypatch.setattr(WeightStore, "put", put_then_die)
    sigint = signal.getsignal(signal.SIGINT)
    try:
        # Ctrl-C during fit is an InterruptedRunError (Lightning's sys.exit(1), named).
        with pytest.raises((KeyboardInterrupt, InterruptedRunError)):
            run_stage(tmp_path, "all")
    finally:
        signal.signal(signal.SIGINT, sigint)  # Lightning ignores SIGINT after the interrupt
    monkeypatch.setattr(WeightStore, "put", real_put)
    store = tiny_workspace(tmp_path).weight_store
    first, second = calls[0], calls[2]
    assert [(r["concept"], r["step"]) for r in store.part_rows(Shard())] == [
        (first, 2), (first, 4), (second, 2)
    ][: die_at - 1]
    assert not (store.root / MANIFEST).exists()

    summary = run_stage(tmp_path, "all")
    assert [s["concept"] for s in summary["adapters"]] == [second, expected[-1]["concept"]]
    rows = store.rows()
    assert [(r["concept"], r["step"]) for r in rows] == [(r["concept"], r["step"]) for r in expected]
    # CPU training is deterministic, so the resumed store is bit-identical to an uninterrupted one.
    assert rows == expected

    again = run_stage(tmp_path, "all")
    assert again["adapters"] == [] and store.rows() == expected


@pytest.mark.slow
def test_sharded_build_matches_the_unsharded_one(reference, tmp_path):
    _, _, _, expected = reference
    base = run_stage(tmp_path, "base")
    assert "adapters" not in base and base["base"]["steps"] == 4
    ids = sorted({r["concept"] for r in expected})
    first = run_stage(tmp_path, "adapters", "0/2")
    assert [s["concept"] for s in first["adapters"]] == Shard(0, 2).select(ids)
    with pytest.raises(IncompleteStoreError, match=Shard(1, 2).select(ids)[0].replace("+", r"\+")):
        run_stage(tmp_path, "merge")
    second = run_stage(tmp_path, "adapters", "1/2")
    assert [s["concept"] for s in second["adapters"]] == Shard(1, 2).select(ids)
    merged = run_stage(tmp_path, "merge")
    assert merged["manifest_rows"] == len(expected)
    rows = tiny_workspace(tmp_path).weight_store.rows()
    assert {(r["concept"], r["step"]) for r in rows} == {(r["concept"], r["step"]) for r in expected}
    assert rows == expected  # same base, same seeds: the same weights, bit for bit
    # An unsharded run afterwards (the pipeline, a study) reuses the sharded build's adapters.
    again = run_stage(tmp_path, "all")
    assert again["adapters"] == [] and tiny_workspace(tmp_path).weight_store.rows() == expected


def test_stage_all_with_several_shards_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"builder.stage=base once, then builder.stage=adapters"):
        run_stage(tmp_path, "all", "1/2")
    with pytest.raises(ValueError, match=r"builder.stage='train': use one of"):
        run_stage(tmp_path, "train")
    with pytest.raises(ValueError, match=r"shard='2/2': write it as i/n"):
        run_stage(tmp_path, "adapters", "2/2")


def test_adapters_stage_without_a_base_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no base GAN at .* builder.stage=base"):
        run_stage(tmp_path, "adapters")


@pytest.mark.parametrize(
    ("override", "theirs", "ours"),
    [("gan.generator.ngf=8", "architecture.generator.ngf = 4", "architecture.generator.ngf = 8"),
     ("data.size=32", "architecture.image_size = 16", "architecture.image_size = 32")],
)
def test_base_of_another_architecture_is_refused(reference, override, theirs, ours):
    artifacts = reference[0]
    ws = tiny_workspace(artifacts, override)
    with pytest.raises(ValueError, match="was trained for") as err:
        load_base(ws)
    message = str(err.value)
    trained, configured = message.split("but this run configures")
    assert theirs in trained and ours in configured
    assert len(message) < 400, message  # issue 21: the differing key, not both whole records


def test_checkpoint_steps_must_end_at_adapter_steps(reference, tmp_path):
    ws = tiny_workspace(reference[0], "builder.checkpoint_steps=[2,3]")
    with pytest.raises(ValueError, match=r"checkpoint_steps \[2, 3\] must end at .*adapter_steps 4"):
        train_adapter(ws, load_base(ws), ws.concepts[0], WeightStore(tmp_path), Shard())


# --- issue 14: the resume verifies what it keeps; pairs edited under the same id ----------------


def copy_of(reference, tmp_path):
    """A private copy of the reference build (tests must not write into the shared one)."""
    shutil.copytree(reference[0], tmp_path, dirs_exist_ok=True)
    return tmp_path


def test_a_deleted_adapter_file_is_trained_again_on_resume(reference, tmp_path):
    """'the file is corrupted: delete it and rerun the build' now leads somewhere."""
    artifacts = copy_of(reference, tmp_path)
    expected = reference[3]
    row = expected[0]
    store = tiny_workspace(artifacts).weight_store
    (store.root / row["file"]).unlink()
    summary = run_stage(artifacts, "all")
    assert [s["concept"] for s in summary["adapters"]] == [row["concept"]]
    assert store.rows() == expected  # retrained bit for bit, merged again


def test_a_damaged_adapter_file_is_trained_again_on_resume(reference, tmp_path):
    artifacts = copy_of(reference, tmp_path)
    expected = reference[3]
    path = tiny_workspace(artifacts).weight_store.root / expected[-1]["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    summary = run_stage(artifacts, "all")
    assert [s["concept"] for s in summary["adapters"]] == [expected[-1]["concept"]]
    assert tiny_workspace(artifacts).weight_store.rows() == expected


def test_a_deleted_base_file_is_trained_again_and_keeps_the_adapters(reference, tmp_path):
    artifacts = copy_of(reference, tmp_path)
    base_file = tiny_workspace(artifacts).run_dir / "base" / "generator.safetensors"
    original = base_file.read_bytes()
    base_file.unlink()
    summary = run_stage(artifacts, "all")
    assert base_file.read_bytes() == original  # deterministic: the same base again ...
    assert summary["adapters"] == []  # ... so every adapter still matches it


def concepts_file(artifacts, reference, edited: str | None = None, recipe: bool = True,
                  **texts) -> list[str]:
    """Overrides that read the run's concepts from a file; ``edited`` gets another prompt (and
    ``recipe``: another recipe) under the same id, or the given ``texts`` (a user editing their
    concept file)."""
    rows = [c.to_dict() for c in reference[1].concepts]
    for row in rows:
        if row["id"] == edited:
            ops = {step["op"] for step in row["recipe"]}
            row |= texts or {"prompt": "an edited prompt"}
            if recipe:
                row["recipe"] = [{"op": "sepia" if "invert" in ops else "invert"}]
    path = artifacts / "concepts.yaml"
    save_concepts([Concept.from_dict(row) for row in rows], path)
    return ["concepts=file", f"concepts.path={path}"]


def test_a_held_out_concept_edited_under_the_same_id_gets_its_adapter_trained_again(
    reference, tmp_path
):
    artifacts = copy_of(reference, tmp_path)
    edited = reference[1].test_concepts[0].id
    same = concepts_file(artifacts, reference)
    assert run_stage(artifacts, "all", "0/1", *same)["adapters"] == []  # the file is the run
    overrides = concepts_file(artifacts, reference, edited)
    ws = tiny_workspace(artifacts, *overrides)
    build_pairs(ws)  # weightgen-pairs with the edited file
    # Until the dataset stage runs, stages reading the store refuse the old adapter.
    with pytest.raises(StaleArtifactError, match=rf"{re.escape(edited)}.*rerun weightgen-dataset"):
        current_rows(ws, ws.weight_store.final_rows())
    summary = run_stage(artifacts, "all", "0/1", *overrides)
    assert [s["concept"] for s in summary["adapters"]] == [edited]
    rows = ws.weight_store.rows()
    fingerprint = ws.pair_store.fingerprints([edited])[edited]
    assert {r["pairs_sha256"] for r in rows if r["concept"] == edited} == {fingerprint}
    assert {r["prompt"] for r in rows if r["concept"] == edited} == {"an edited prompt"}
    assert [r for r in rows if r["concept"] != edited] == [
        r for r in reference[3] if r["concept"] != edited]
    current_rows(ws, rows)


def test_a_train_concept_edited_under_the_same_id_refuses_the_base_until_it_is_rebuilt(
    reference, tmp_path
):
    artifacts = copy_of(reference, tmp_path)
    edited = reference[1].train_concepts[0].id
    overrides = concepts_file(artifacts, reference, edited)
    ws = tiny_workspace(artifacts, *overrides)
    manifest = ws.weight_store.root / MANIFEST
    before = manifest.read_bytes()
    with pytest.raises(StaleArtifactError, match=rf"trained on other pairs of \['{re.escape(edited)}'\] .* "
                                                 rf"delete .*base and rerun weightgen-dataset"):
        run_stage(artifacts, "all", "0/1", *overrides)
    assert manifest.read_bytes() == before  # nothing replaced
    shutil.rmtree(ws.run_dir / "base")  # the fix the message names
    summary = run_stage(artifacts, "all", "0/1", *overrides)
    assert sorted(s["concept"] for s in summary["adapters"]) == sorted(c.id for c in ws.concepts)
    rows = ws.weight_store.rows()
    assert {r["base_sha256"] for r in rows} == {load_base(ws).meta["generator_sha256"]}


def target_file_identity(ws, concept_id: str) -> tuple[int, int]:
    """(inode, mtime) of a concept's pair targets: they change when the pairs are rendered."""
    stat = (ws.pair_store.root / "targets" / f"{concept_id}.safetensors").stat()
    return stat.st_ino, stat.st_mtime_ns


def test_a_held_out_concept_reworded_under_the_same_id_gets_its_adapter_trained_again(
    reference, tmp_path
):
    """Issue 21: a new prompt with the same recipe retrained nothing (the pairs' fingerprint
    covers the recipe only); now the adapter follows its texts, the pairs are not rendered
    again."""
    artifacts = copy_of(reference, tmp_path)
    edited = reference[1].test_concepts[0].id
    overrides = concepts_file(artifacts, reference, edited, recipe=False)
    ws = tiny_workspace(artifacts, *overrides)
    targets = target_file_identity(ws, edited)
    with pytest.raises(StaleArtifactError, match=rf"{re.escape(edited)}.*other texts.*"
                                                 rf"rerun weightgen-dataset"):
        current_rows(ws, ws.weight_store.final_rows())
    summary = run_stage(artifacts, "all", "0/1", *overrides)
    assert [s["concept"] for s in summary["adapters"]] == [edited]
    assert target_file_identity(ws, edited) == targets  # the same pairs, not rendered again
    rows = ws.weight_store.rows()
    assert {(r["prompt"], r["texts_sha256"]) for r in rows if r["concept"] == edited} == {
        ("an edited prompt", texts_fingerprint(ws.concept(edited)))}
    assert [r for r in rows if r["concept"] != edited] == [
        r for r in reference[3] if r["concept"] != edited]
    current_rows(ws, rows)


def test_a_train_concept_reworded_under_the_same_id_refuses_the_base(reference, tmp_path):
    artifacts = copy_of(reference, tmp_path)
    edited = reference[1].train_concepts[0].id
    overrides = concepts_file(artifacts, reference, edited, recipe=False)
    manifest = tiny_workspace(artifacts).weight_store.root / MANIFEST
    before = manifest.read_bytes()
    with pytest.raises(StaleArtifactError, match=rf"trained on other prompts of "
                                                 rf"\['{re.escape(edited)}'\] .* delete .*base and "
                                                 rf"rerun weightgen-dataset"):
        run_stage(artifacts, "all", "0/1", *overrides)
    assert manifest.read_bytes() == before  # nothing replaced


def test_a_train_concepts_new_phrasing_keeps_the_base_and_retrains_its_adapter(reference,
                                                                            tmp_path):
    """The base learns from prompts only; the store row hands the phrasings to the generator."""
    artifacts = copy_of(reference, tmp_path)
    concept = reference[1].train_concepts[0]
    phrasings = [*concept.phrasings, "a newly added wording"]
    overrides = concepts_file(artifacts, reference, concept.id, recipe=False, phrasings=phrasings)
    ws = tiny_workspace(artifacts, *overrides)
    base = (ws.run_dir / "base" / "base.json").read_bytes()
    summary = run_stage(artifacts, "all", "0/1", *overrides)
    assert (ws.run_dir / "base" / "base.json").read_bytes() == base
    assert [s["concept"] for s in summary["adapters"]] == [concept.id]
    rows = [r for r in ws.weight_store.rows() if r["concept"] == concept.id]
    assert all(r["phrasings"] == phrasings for r in rows)
    before = [r for r in reference[3] if r["concept"] == concept.id]
    assert [r["sha256"] for r in rows] == [r["sha256"] for r in before]  # same prompt: same adapter


@pytest.mark.parametrize("fingerprint", ["pairs_sha256", "texts_sha256"])
def test_a_base_without_a_pair_fingerprint_is_refused_with_the_fix(reference, tmp_path,
                                                                   fingerprint):
    artifacts = copy_of(reference, tmp_path)
    meta_path = tiny_workspace(artifacts).run_dir / "base" / "base.json"
    meta = json.loads(meta_path.read_text())
    del meta[fingerprint]  # a base built by an older weightgen
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(StaleArtifactError, match=r"records no fingerprint .* older weightgen.*"
                                                 r"delete .*base and rerun weightgen-dataset"):
        load_base(tiny_workspace(artifacts))


def test_a_second_builder_of_the_same_shard_fails_with_run_busy(reference, tmp_path):
    from filelock import FileLock

    from weightgen.errors import RunBusyError

    artifacts = copy_of(reference, tmp_path)
    store = tiny_workspace(artifacts).weight_store
    parts = sorted(p.read_bytes() for p in store.root.glob("manifest*.jsonl"))
    with FileLock(store.lock_path(Shard())), pytest.raises(
        RunBusyError, match=r"another process is building shard 0/1 of the weight store"
    ):
        run_stage(artifacts, "adapters", "0/1", "lock_timeout_s=0")
    assert sorted(p.read_bytes() for p in store.root.glob("manifest*.jsonl")) == parts


# --- builder.processes: one command's adapters in several worker processes ----------------------


def assert_same_adapters(artifacts, reference) -> None:
    """The store under ``artifacts`` holds the reference build's concepts and checkpoints, with
    the same tensors bit for bit (and so the same files, sha256s and recorded quality)."""
    ref_artifacts, _, _, expected = reference
    store, reference_store = (tiny_workspace(a).weight_store for a in (artifacts, ref_artifacts))
    rows = store.rows()
    keys = [(r["concept"], r["step"]) for r in rows]
    assert keys == [(r["concept"], r["step"]) for r in expected]
    for row, want in zip(rows, expected, strict=True):
        ours, theirs = store.load(row), reference_store.load(want)
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), row["file"]
    assert rows == expected


@pytest.fixture
def two_cores(monkeypatch):
    """Two cores, and every worker on one torch thread whatever the machine: the thread count
    of the reference build (conftest.py). CPU training is deterministic only at a fixed thread
    count (oneDNN splits the sums of a convolution's weight and bias gradients by thread: 1 vs 2
    threads differ by ~6e-8), so the stores are then equal bit for bit. A command that starts
    one worker would give it both cores (``worker_threads``, tested on its own): a rerun after a
    failed worker starts one when the stopped worker had finished its sub-shard, which made the
    failing-worker test fail now and then. (num_threads=2 would not pin it, and would also set the
    threads of this test process.)"""
    monkeypatch.setattr(adapters_stage, "available_cores", lambda: 2)
    monkeypatch.setattr(adapters_stage, "worker_threads", lambda cfg, workers: 1)


@pytest.mark.slow
def test_two_worker_processes_build_the_same_store_as_one(reference, tmp_path, two_cores):
    """builder.processes=2, stage all: workers build shards 0/2 and 1/2, the command merges."""
    summary = run_stage(tmp_path, "all", "0/1", "builder.processes=2")
    assert [s["concept"] for s in summary["adapters"]] == [
        s["concept"] for s in reference[2]["adapters"]]
    assert summary["manifest_rows"] == len(reference[3])
    store = tiny_workspace(tmp_path).weight_store
    assert sorted(p.name for p in store.root.glob("manifest.shard-*")) == [
        Shard(0, 2).part_name, Shard(1, 2).part_name]
    assert_same_adapters(tmp_path, reference)
    reports = store.root.parent / "reports" / "adapters"
    assert all((reports / f"{s['concept']}.json").is_file() for s in summary["adapters"])
    again = run_stage(tmp_path, "all", "0/1", "builder.processes=2")
    assert again["adapters"] == []  # nothing to train: no worker is started


@pytest.mark.slow
def test_a_rerun_that_starts_one_worker_trains_it_like_the_reference(
        reference, tmp_path, two_cores, caplog):
    """One concept missing, builder.processes=2: one worker starts, and it trains at the
    reference's thread count, so the store is the reference's bit for bit (the case behind the
    failing-worker test's rare failure, made every time)."""
    artifacts = copy_of(reference, tmp_path)
    row = reference[3][0]
    (tiny_workspace(artifacts).weight_store.root / row["file"]).unlink()
    with caplog.at_level(logging.INFO, logger=adapters_stage.__name__):
        summary = run_stage(artifacts, "all", "0/1", "builder.processes=2")
    assert [s["concept"] for s in summary["adapters"]] == [row["concept"]]
    assert "1 to train in 1 worker processes" in caplog.text
    assert "1 concepts to train, 1 torch threads" in caplog.text
    assert_same_adapters(artifacts, reference)


@pytest.mark.slow
def test_worker_processes_split_a_shard_of_a_sharded_build(reference, tmp_path, two_cores):
    """Shard 0/2 in 2 processes builds shards 0/4 and 2/4 (concepts 0 and 2 of 3); with shard 1/2
    built by one process, merge joins parts of both shardings into the reference store."""
    run_stage(tmp_path, "base")
    ids = sorted({r["concept"] for r in reference[3]})
    first = run_stage(tmp_path, "adapters", "0/2", "builder.processes=2")
    assert [s["concept"] for s in first["adapters"]] == Shard(0, 2).select(ids)
    store = tiny_workspace(tmp_path).weight_store
    assert sorted(p.name for p in store.root.glob("manifest.shard-*")) == [
        Shard(0, 4).part_name, Shard(2, 4).part_name]
    assert [r["concept"] for r in store.part_rows(Shard(2, 4))] == [ids[2]] * len(STEPS)
    assert not (store.root / MANIFEST).exists()  # stage adapters leaves the merge to merge
    run_stage(tmp_path, "adapters", "1/2")
    run_stage(tmp_path, "merge")
    assert_same_adapters(tmp_path, reference)


@pytest.mark.slow
def test_a_failing_worker_fails_the_command_and_the_rerun_finishes_the_store(
    reference, tmp_path, two_cores
):
    """A user error in one worker (its shard is locked) ends the command with that error; the
    other worker is stopped, and the same command run again completes the store."""
    from filelock import FileLock

    from weightgen.errors import RunBusyError

    artifacts = copy_of(reference, tmp_path)
    store = tiny_workspace(artifacts).weight_store
    shutil.rmtree(store.root)
    with FileLock(store.lock_path(Shard(1, 2))), pytest.raises(
        RunBusyError, match=r"another process is building shard 1/2 of the weight store"
    ):
        run_stage(artifacts, "all", "0/1", "builder.processes=2", "lock_timeout_s=0")
    assert not (store.root / MANIFEST).exists()
    summary = run_stage(artifacts, "all", "0/1", "builder.processes=2")
    assert summary["adapters"]  # what the stopped worker had not finished
    assert_same_adapters(artifacts, reference)


def test_the_shards_of_worker_processes_cover_the_command_shard_exactly():
    items = list(range(23))
    for shard in (Shard(0, 1), Shard(1, 3), Shard(2, 4)):
        for processes in (1, 2, 3, 5):
            parts = [part.select(items) for part in sub_shards(shard, processes)]
            assert sorted(x for part in parts for x in part) == shard.select(items)
            assert max(map(len, parts)) - min(map(len, parts)) <= 1  # balanced


def test_worker_threads_share_the_cores():
    assert worker_threads(OmegaConf.create({"num_threads": 8}), 3) == 2
    assert worker_threads(OmegaConf.create({"num_threads": 2}), 3) == 1
    assert worker_threads(OmegaConf.create({"num_threads": None}), 1) == available_cores()


def test_worker_processes_with_a_distributed_trainer_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"builder.processes=2 .* trainer.devices=2"):
        run_stage(tmp_path, "adapters", "0/1", "builder.processes=2", "trainer.devices=2")


def test_the_merged_store_comes_with_its_convergence_report(tiny_store):
    """Every adapter's curve along its checkpoints, and whether it was still gaining."""
    reports = tiny_workspace(tiny_store["artifacts"]).run_dir / "reports"
    report = json.loads((reports / "adapter_convergence.json").read_text())
    concepts = {p.stem for p in (reports / "adapters").glob("*.json")}
    assert concepts and {row["concept"] for row in report["adapters"]} == concepts
    assert report["summary"]["adapters"] == len(concepts)
    assert tiny_store["dataset"]["convergence"]["adapters"] == len(concepts)
    first = report["adapters"][0]
    assert first["plateau"] == (first["last_third_gain_db"] < report["summary"]["plateau_db"])
    assert "# Adapter convergence" in (reports / "adapter_convergence.md").read_text()


def test_a_build_resumed_with_another_adapter_recipe_trains_its_adapters_again(reference, tmp_path):
    artifacts = copy_of(reference, tmp_path)
    recipe = "+builder.adapter_recipe.optimizer.lr=0.01"
    summary = run_stage(artifacts, "all", "0/1", recipe)
    ws = tiny_workspace(artifacts, recipe)
    assert sorted(s["concept"] for s in summary["adapters"]) == sorted(c.id for c in ws.concepts)
    rows, before = ws.weight_store.rows(), reference[3]
    assert len({r["recipe_sha256"] for r in rows}) == 1
    assert {r["recipe_sha256"] for r in rows} != {r["recipe_sha256"] for r in before}
    assert all(r["sha256"] != b["sha256"] for r, b in zip(rows, before, strict=True))
    assert run_stage(artifacts, "all", "0/1", recipe)["adapters"] == []  # now it resumes


def test_an_adapter_recipe_that_is_no_gan_override_is_refused(reference, tmp_path):
    artifacts = copy_of(reference, tmp_path)
    with pytest.raises(ConfigError, match=r"builder.adapter_recipe does not fit the gan group "
                                          r"\(unknown keys: optimiser\)"):
        run_stage(artifacts, "all", "0/1", "+builder.adapter_recipe.optimiser.lr=0.01")


def test_a_shard_trains_held_out_concepts_first_then_train_ones_in_pick_order():
    """So a build stopped part-way holds about the train set of a smaller concepts.n_train."""
    ws = tiny_workspace("unused", "concepts.n_train=6", "concepts.n_test=2", "concepts.n_val=1")
    order = adapters_stage.build_order(ws, sorted(ws.concepts, key=lambda c: c.id))
    held_out = sorted(c.id for c in ws.held_out_concepts)
    assert [c.id for c in order] == held_out + ws.train_pick_order
    assert ws.train_pick_order[:3] != sorted(ws.train_pick_order)[:3]  # not by id
