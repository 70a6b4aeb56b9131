"""The weight store (docs/ARCHITECTURE.md 3.3, a contract): files, checksums, shards, manifest."""

from __future__ import annotations

import json

import pytest
import torch

from weightgen.concepts.spec import Concept
from weightgen.utils.io import CorruptFileError, sha256_file
from weightgen.weights.store import MANIFEST, IncompleteStoreError, Shard, WeightStore

CONTRACT_KEYS = {"concept", "prompt", "split", "step", "psnr", "ssim", "file", "sha256"}
SEPIA = Concept("sepia", "a sepia tone", recipe=[{"op": "sepia"}])
INVERT = Concept("invert", "an inverted photo", recipe=[{"op": "invert"}], split="test")
ALONE = Shard()
INPUTS = {"base_sha256": "b" * 64, "pairs_sha256": "p" * 64, "texts_sha256": "t" * 64,
          "recipe_sha256": "r" * 64}


def adapter(seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"head.lora_A.weight": torch.randn(2, 5, generator=gen),
            "head.lora_B.weight": torch.randn(3, 2, generator=gen)}


def put(store, concept, step, shard=ALONE, seed=0, inputs=INPUTS) -> dict:
    return store.put(shard, concept, step, adapter(seed), {"psnr": 20.0 + step, "ssim": 0.5}, "lora",
                     inputs)


def test_put_load_round_trip_with_checksum(tmp_path):
    store = WeightStore(tmp_path)
    row = put(store, SEPIA, 50, seed=1)
    assert CONTRACT_KEYS <= set(row)
    assert row == {"concept": "sepia", "prompt": "a sepia tone", "split": "train", "step": 50,
                   "psnr": 70.0, "ssim": 0.5, "file": "sepia/step_000050.safetensors",
                   "sha256": row["sha256"], "adapter": "lora",
                   "phrasings": ["a sepia tone"]} | INPUTS
    assert row["sha256"] == sha256_file(tmp_path / row["file"])
    loaded = store.load(row)
    assert loaded.keys() == adapter(1).keys()
    assert all(torch.equal(loaded[k], v) for k, v in adapter(1).items())
    assert store.part_rows(ALONE) == [row]


def test_rows_record_the_phrasings_through_the_merge(tmp_path):
    store = WeightStore(tmp_path)
    worded = Concept("sepia", "a sepia tone", recipe=[{"op": "sepia"}],
                     phrasings=["make it sepia", "a sepia tone style"],
                     heldout_phrasing="an old brown photograph look")
    put(store, worded, 50)
    put(store, INVERT, 50)
    rows = {r["concept"]: r for r in store.merge({"sepia": [50], "invert": [50]})}
    assert rows["sepia"]["phrasings"] == ["a sepia tone", "make it sepia", "a sepia tone style"]
    assert rows["sepia"]["heldout_phrasing"] == "an old brown photograph look"
    assert rows["invert"]["phrasings"] == ["an inverted photo"]
    assert "heldout_phrasing" not in rows["invert"]
    assert store.rows() == list(rows.values())


def test_put_again_replaces_the_row(tmp_path):
    store = WeightStore(tmp_path)
    put(store, SEPIA, 50, seed=1)
    row = put(store, SEPIA, 50, seed=2)
    assert store.part_rows(ALONE) == [row]
    assert torch.equal(store.load(row)["head.lora_A.weight"], adapter(2)["head.lora_A.weight"])


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_damaged_file_is_an_error_naming_it(tmp_path, damage):
    store = WeightStore(tmp_path)
    row = put(store, SEPIA, 50)
    path = tmp_path / row["file"]
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF  # inside the tensor bytes: still a parseable file
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) - 7]))
    else:
        path.unlink()
    with pytest.raises(CorruptFileError, match=str(path)):
        store.load(row)


def test_damaged_file_without_checksum_is_still_never_zeros(tmp_path):
    store = WeightStore(tmp_path)
    row = put(store, SEPIA, 50)
    path = tmp_path / row["file"]
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(CorruptFileError, match="not a readable safetensors file"):
        store.load(row | {"sha256": None})


@pytest.mark.parametrize("text", ["2/2", "1", "a/b", "-1/2", "0/0", "1/2/3", ""])
def test_shard_parse_rejects_bad_text(text):
    with pytest.raises(ValueError, match=r"write it as i/n with 0 <= i < n"):
        Shard.parse(text)


def test_shard_parse_accepts_spaces_and_ints():
    assert Shard.parse(" 1 / 3 ") == Shard(1, 3)
    assert Shard.parse("0/1") == Shard()
    assert Shard(2, 5).part_name == "manifest.shard-2-of-5.jsonl"


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shard_select_is_disjoint_and_complete(count):
    items = [f"c{i:02d}" for i in range(10)]
    parts = [Shard(i, count).select(items) for i in range(count)]
    assert sorted(sum(parts, [])) == items
    assert sum(len(p) for p in parts) == len(items)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_drop_concept_forgets_only_that_concept_in_every_part(tmp_path):
    store = WeightStore(tmp_path)
    put(store, SEPIA, 50)
    put(store, SEPIA, 50, Shard(0, 2))  # a part of an earlier sharding
    kept = put(store, INVERT, 50)
    store.drop_concept("sepia")
    assert store.part_rows(ALONE) == [kept] and store.part_rows(Shard(0, 2)) == []


def test_a_row_records_what_the_adapter_was_trained_from(tmp_path):
    with pytest.raises(ValueError, match="base_sha256"):
        put(WeightStore(tmp_path), SEPIA, 50, inputs={"pairs_sha256": "p" * 64})


# --- what a resumed build trusts (issue 14, items 4 and 9) -------------------------------------


def two_steps_of_sepia_and_invert(store: WeightStore) -> dict[str, list[dict]]:
    return {c.id: [put(store, c, 50), put(store, c, 100)] for c in (SEPIA, INVERT)}


@pytest.mark.parametrize("damage", ["delete", "flip"])
def test_resume_distrusts_a_missing_or_damaged_adapter_file(tmp_path, damage):
    store = WeightStore(tmp_path)
    rows = two_steps_of_sepia_and_invert(store)
    path = tmp_path / rows["sepia"][0]["file"]
    if damage == "delete":
        path.unlink()
    else:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    kept, rejected = store.verified_concepts([50, 100], {"sepia": INPUTS, "invert": INPUTS})
    assert kept == {"invert"}
    assert rejected == {"sepia": f"{path} is missing" if damage == "delete" else
                        f"{path} is damaged (its sha256 differs from the manifest's)"}


def test_resume_distrusts_adapters_trained_on_other_pairs_or_another_base(tmp_path):
    store = WeightStore(tmp_path)
    two_steps_of_sepia_and_invert(store)
    put(store, Concept("blur", "a blurred photo", recipe=[{"op": "blur"}]), 50,
        inputs=INPUTS | {"pairs_sha256": "old" * 20})  # incomplete: not judged
    edited = INPUTS | {"pairs_sha256": "q" * 64}
    new_base = INPUTS | {"base_sha256": "c" * 64}
    kept, rejected = store.verified_concepts([50, 100], {"sepia": edited, "invert": new_base})
    assert kept == set()
    assert rejected == {"sepia": "it was trained on other pairs than this run's",
                        "invert": "it was trained on another base GAN than this run's"}
    assert store.verified_concepts([50, 100], {"sepia": INPUTS, "invert": INPUTS})[0] == {
        "sepia", "invert"}


def test_resume_distrusts_adapters_of_a_concept_whose_texts_changed(tmp_path):
    """Issue 21: a new prompt (or phrasings) under the same id and recipe retrained nothing."""
    store = WeightStore(tmp_path)
    two_steps_of_sepia_and_invert(store)
    reworded = INPUTS | {"texts_sha256": "u" * 64}
    kept, rejected = store.verified_concepts([50, 100], {"sepia": INPUTS, "invert": reworded})
    assert kept == {"sepia"}
    assert rejected == {"invert": "it was trained on other texts (prompt, phrasings) than this "
                                  "run's"}


def test_resume_distrusts_rows_without_fingerprints(tmp_path):
    store = WeightStore(tmp_path)
    rows = [put(store, SEPIA, step) for step in (50, 100)]
    part = tmp_path / ALONE.part_name
    part.write_text("".join(json.dumps({k: v for k, v in r.items() if k not in INPUTS}) + "\n"
                            for r in rows))  # a store written by an older weightgen
    kept, rejected = store.verified_concepts([50, 100], {"sepia": INPUTS})
    assert kept == set() and "records no base GAN fingerprint" in rejected["sepia"]
    part.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "texts_sha256"})
                            + "\n" for r in rows))  # a store from before texts were fingerprinted
    kept, rejected = store.verified_concepts([50, 100], {"sepia": INPUTS})
    assert kept == set() and rejected["sepia"] == ("it records no texts fingerprint (an older "
                                                   "weightgen built it)")


def test_rows_before_any_build_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no weight store .*\(weightgen-dataset\)"):
        WeightStore(tmp_path).rows()


def test_merge_incomplete_store_names_the_concepts(tmp_path):
    store = WeightStore(tmp_path)
    put(store, SEPIA, 50, Shard(0, 2))
    put(store, SEPIA, 100, Shard(0, 2))
    put(store, INVERT, 50, Shard(1, 2))
    expected = {"sepia": [50, 100], "invert": [50, 100], "blur": [50, 100]}
    with pytest.raises(IncompleteStoreError, match="2 concepts") as err:
        store.merge(expected)
    assert "'invert': [100]" in str(err.value) and "'blur': [50, 100]" in str(err.value)
    assert "sepia" not in str(err.value)
    assert not (tmp_path / MANIFEST).exists()


def test_merge_with_a_listed_file_missing(tmp_path):
    store = WeightStore(tmp_path)
    row = put(store, SEPIA, 50)
    (tmp_path / row["file"]).unlink()
    with pytest.raises(IncompleteStoreError, match=r"step_000050.safetensors is listed but missing"):
        store.merge({"sepia": [50]})


def test_merge_complete_store_writes_the_contract_manifest(tmp_path):
    store = WeightStore(tmp_path)
    put(store, SEPIA, 100, Shard(0, 2))
    put(store, SEPIA, 50, Shard(0, 2))
    put(store, INVERT, 100, Shard(1, 2))
    put(store, INVERT, 50, Shard(1, 2))
    (tmp_path / "manifest.shard-x-of-y.jsonl").write_text("not a shard part\n")  # never read
    rows = store.merge({"sepia": [50, 100], "invert": [50, 100]})
    assert [(r["concept"], r["step"]) for r in rows] == [
        ("invert", 50), ("invert", 100), ("sepia", 50), ("sepia", 100)
    ]
    lines = (tmp_path / MANIFEST).read_text().splitlines()
    assert [json.loads(line) for line in lines] == rows == store.rows()
    for row in rows:
        assert CONTRACT_KEYS <= set(row)
        assert row["split"] == ("test" if row["concept"] == "invert" else "train")
        assert row["sha256"] == sha256_file(tmp_path / row["file"])
        assert isinstance(row["step"], int) and isinstance(row["psnr"], float)


def test_merge_never_writes_a_checkpoint_twice(tmp_path):
    store = WeightStore(tmp_path)
    put(store, SEPIA, 50, Shard(0, 1), seed=1)  # an unsharded build, killed ...
    put(store, SEPIA, 50, Shard(1, 2), seed=2)  # ... then redone with two shards
    put(store, INVERT, 50, Shard(0, 2))
    try:
        rows = store.merge({"sepia": [50], "invert": [50]})
    except IncompleteStoreError as err:  # refusing, naming the concept, is fine too
        assert "sepia" in str(err)
    else:
        keys = [(r["concept"], r["step"]) for r in rows]
        assert len(keys) == len(set(keys))
        for row in rows:
            store.load(row)  # whichever row is kept matches the file on disk
