"""The GAN dataset builder end to end at toy size: full, interrupted + resumed, sharded builds."""

from __future__ import annotations

import signal

import pytest
import torch
from helpers import photos_loaded_once, tiny_workspace
from hydra.utils import instantiate

from weightgen.data.datamodule import images_to_tensor
from weightgen.errors import InterruptedRunError
from weightgen.gan.dataset_builder import build_weight_dataset, load_base, train_adapter
from weightgen.gan.evaluate import evaluate
from weightgen.weights.store import MANIFEST, IncompleteStoreError, Shard, WeightStore

CONTRACT_KEYS = {"concept", "prompt", "split", "step", "psnr", "ssim", "file", "sha256"}
STEPS = [2, 4]  # builder.checkpoint_steps of the tiny config


@pytest.fixture(autouse=True)
def _photos_once():
    with photos_loaded_once():
        yield


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted, unsharded build (builder.stage=all) that other tests compare with."""
    artifacts = tmp_path_factory.mktemp("reference")
    ws = tiny_workspace(artifacts)
    with photos_loaded_once():
        summary = build_weight_dataset(ws)
    return artifacts, ws, summary, ws.weight_store.rows()


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
    [("gan.generator.ngf=8", "'ngf': 4", "'ngf': 8"),
     ("data.size=32", "'image_size': 16", "'image_size': 32")],
)
def test_base_of_another_architecture_is_refused(reference, override, theirs, ours):
    artifacts = reference[0]
    ws = tiny_workspace(artifacts, override)
    with pytest.raises(ValueError, match="was trained for") as err:
        load_base(ws)
    message = str(err.value)
    trained, configured = message.split("but this run configures")
    assert theirs in trained and ours in configured


def test_checkpoint_steps_must_end_at_adapter_steps(reference, tmp_path):
    ws = tiny_workspace(reference[0], "builder.checkpoint_steps=[2,3]")
    with pytest.raises(ValueError, match=r"checkpoint_steps \[2, 3\] must end at .*adapter_steps 4"):
        train_adapter(ws, load_base(ws), ws.concepts[0], WeightStore(tmp_path), Shard())
