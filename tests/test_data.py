"""Data layer: photo sources, crops, the resumable pair cache, the datasets over it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import photos_loaded_once, tiny_workspace
from PIL import Image

from weightgen.concepts.procedural_editor import ProceduralEditor
from weightgen.concepts.spec import Concept
from weightgen.data.datamodule import ConceptPairsDataset, PairsDataModule, images_to_tensor
from weightgen.data.pairs import PairSettings, PairStore
from weightgen.data.sources import Photo, folder_photos, random_crops, split_photos
from weightgen.stages.pairs import build_pairs, build_pairs_with_preview
from weightgen.utils.io import CorruptFileError, sha256_file

INVERT = Concept("invert", "an inverted photo", recipe=[{"op": "invert"}])
SEPIA = Concept("sepia", "a sepia tone", recipe=[{"op": "sepia"}], split="test")
SETTINGS = PairSettings(size=8, n_train=6, n_val=3, seed=1, max_zoom=2.0, photos="test")


def coordinate_photo(name: str, height: int, width: int, blue: int = 0) -> Photo:
    """Pixel (y, x) holds (y, x, blue): a crop tells where it came from."""
    ys, xs = np.mgrid[:height, :width]
    pixels = np.stack([ys, xs, np.full_like(ys, blue)], axis=-1).astype(np.uint8)
    return Photo(name, pixels)


def random_photo(name: str, seed: int, side: int = 24) -> Photo:
    rng = np.random.default_rng(seed)
    return Photo(name, rng.integers(0, 256, (side, side + 5, 3), dtype=np.uint8))


TRAIN_PHOTOS = [random_photo("a", 0), random_photo("b", 1)]
VAL_PHOTOS = [random_photo("c", 2)]


class CountingEditor(ProceduralEditor):
    """The procedural editor, counting the concepts it was asked to edit."""

    def __init__(self):
        self.edited: list[str] = []

    def edit(self, images, concept):
        self.edited.append(concept.id)
        return super().edit(images, concept)


def build(store: PairStore, concepts, editor=None, settings=SETTINGS) -> dict:
    return store.build(concepts, editor or ProceduralEditor(), settings, TRAIN_PHOTOS, VAL_PHOTOS,
                       progress=False)


def write_png(path, pixels) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


# --- sources -------------------------------------------------------------------------------


def test_split_photos_holds_whole_photos_out():
    train, val = split_photos(TRAIN_PHOTOS + VAL_PHOTOS, ["c"])
    assert [p.name for p in train] == ["a", "b"] and [p.name for p in val] == ["c"]


def test_split_photos_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match=r"\['nope'\] not among the sources \['a', 'b', 'c'\]"):
        split_photos(TRAIN_PHOTOS + VAL_PHOTOS, ["nope"])


@pytest.mark.parametrize("val", [[], ["a", "b", "c"]])
def test_split_photos_needs_both_sides(val):
    with pytest.raises(ValueError, match="at least one training and one validation photo"):
        split_photos(TRAIN_PHOTOS + VAL_PHOTOS, val)


def test_folder_photos_reads_nested_images_as_rgb(tmp_path):
    write_png(tmp_path / "x.png", np.zeros((20, 30, 3), np.uint8))
    write_png(tmp_path / "sub" / "grey.png", np.full((16, 16), 7, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    photos = folder_photos(tmp_path, min_side=16, alpha_background="white")
    assert [p.name for p in photos] == ["sub/grey.png", "x.png"]
    assert photos[0].pixels.shape == (16, 16, 3) and photos[0].pixels[0, 0, 2] == 7
    assert photos[1].pixels.shape == (20, 30, 3)


def test_folder_photos_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere does not exist; pass data.folder"):
        folder_photos(tmp_path / "nowhere", min_side=16, alpha_background="white")


def test_folder_photos_empty_folder(tmp_path):
    (tmp_path / "readme.txt").write_text("no photos here")
    with pytest.raises(ValueError, match="holds no .png/.jpg/.jpeg/.webp files"):
        folder_photos(tmp_path, min_side=16, alpha_background="white")


def test_folder_photos_unreadable_file_is_named(tmp_path):
    write_png(tmp_path / "good.png", np.zeros((20, 20, 3), np.uint8))
    (tmp_path / "broken.png").write_bytes(b"this is not a png")
    with pytest.raises(ValueError, match=r"broken\.png: not a readable image"):
        folder_photos(tmp_path, min_side=16, alpha_background="white")


def test_folder_photos_too_small_image_is_named(tmp_path):
    write_png(tmp_path / "tiny.png", np.zeros((10, 40, 3), np.uint8))
    with pytest.raises(ValueError, match=r"tiny\.png: 40x10 is smaller than the crop size 16"):
        folder_photos(tmp_path, min_side=16, alpha_background="white")


def test_random_crops_are_deterministic_for_a_seed():
    photos = [random_photo("a", 0, side=40), random_photo("b", 1, side=40)]

    def crops(seed):
        return random_crops(photos, 5, 8, np.random.default_rng(seed), max_zoom=3.0)

    first = crops(3)
    assert first.shape == (5, 8, 8, 3) and first.dtype == np.uint8
    assert np.array_equal(first, crops(3))
    assert not np.array_equal(first, crops(4))


def test_random_crops_without_zoom_are_windows_of_the_photos_in_turn():
    photos = [coordinate_photo("p", 40, 50, blue=0), coordinate_photo("q", 30, 60, blue=255)]
    crops = random_crops(photos, 6, 8, np.random.default_rng(0), max_zoom=1.0)
    for i, crop in enumerate(crops):
        photo = photos[i % 2].pixels
        top, left = int(crop[0, 0, 0]), int(crop[0, 0, 1])
        assert np.array_equal(crop, photo[top : top + 8, left : left + 8])


# --- pair cache ----------------------------------------------------------------------------


def test_pair_store_round_trip(tmp_path):
    store = PairStore(tmp_path)
    manifest = build(store, [INVERT, SEPIA])
    rng = np.random.default_rng(SETTINGS.seed)
    train = random_crops(TRAIN_PHOTOS, SETTINGS.n_train, SETTINGS.size, rng, SETTINGS.max_zoom)
    val = random_crops(VAL_PHOTOS, SETTINGS.n_val, SETTINGS.size, rng, SETTINGS.max_zoom)
    for concept in (INVERT, SEPIA):
        pairs = store.load(concept.id)
        assert np.array_equal(pairs.train_source, train) and np.array_equal(pairs.val_source, val)
        assert np.array_equal(pairs.train_target, ProceduralEditor().edit(train, concept))
        assert np.array_equal(pairs.val_target, ProceduralEditor().edit(val, concept))
        entry = manifest["concepts"][concept.id]
        assert entry["prompt"] == concept.prompt and entry["split"] == concept.split
        assert entry["sha256"] == sha256_file(tmp_path / entry["file"])
    assert np.array_equal(store.load("invert").val_target, 255 - val)
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest


def test_pair_store_resumes_without_editing_again(tmp_path):
    store = PairStore(tmp_path)
    editor = CountingEditor()
    build(store, [INVERT], editor)
    assert editor.edited == ["invert", "invert"]  # train and val crops
    build(store, [INVERT, SEPIA], editor)
    assert editor.edited[2:] == ["sepia", "sepia"]
    build(store, [INVERT, SEPIA], editor)
    assert len(editor.edited) == 4
    (tmp_path / "targets" / "sepia.safetensors").unlink()  # a lost file is made again
    build(store, [INVERT, SEPIA], editor)
    assert editor.edited[4:] == ["sepia", "sepia"]


def test_pair_store_redoes_a_concept_whose_recipe_changed(tmp_path):
    store = PairStore(tmp_path)
    build(store, [INVERT])
    changed = Concept("invert", "now sepia", recipe=[{"op": "sepia"}])
    build(store, [changed])
    assert np.array_equal(store.load("invert").val_target,
                          ProceduralEditor().edit(store.load("invert").val_source, changed))
    assert store.manifest()["concepts"]["invert"]["prompt"] == "now sepia"


def test_pair_store_refuses_other_settings(tmp_path):
    store = PairStore(tmp_path)
    build(store, [INVERT])
    other = PairSettings(**{**SETTINGS.__dict__, "n_train": 7})
    with pytest.raises(ValueError) as err:
        build(store, [INVERT], settings=other)
    # Issue 21: only what differs, not both records with their photo lists.
    assert str(err.value) == (f"the pair cache at {tmp_path} was built with settings n_train = 6, "
                              f"not n_train = 7; use another paths.pairs_dir or delete it")
    many = [coordinate_photo(f"photo_{i:03d}.png", 16, 16) for i in range(40)]
    with pytest.raises(ValueError) as err:
        store.build([INVERT], ProceduralEditor(), other, many, VAL_PHOTOS, progress=False)
    message = str(err.value)
    assert "n_train = 6, train_photos = [" in message and "not n_train = 7" in message
    assert len(message) < 400, message


def test_pair_store_corrupted_target_is_an_error_naming_the_file(tmp_path):
    store = PairStore(tmp_path)
    build(store, [INVERT])
    path = tmp_path / "targets" / "invert.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=str(path)):
        store.load("invert")
    path.unlink()
    with pytest.raises(CorruptFileError, match=rf"{path}: file is missing"):
        store.load("invert")


def test_pair_store_unknown_concept_and_missing_cache(tmp_path):
    with pytest.raises(FileNotFoundError, match="no pair cache"):
        PairStore(tmp_path).load("invert")
    build(PairStore(tmp_path), [INVERT])
    with pytest.raises(KeyError, match="'sepia' has no pairs"):
        PairStore(tmp_path).load("sepia")


def test_pair_store_rejects_an_editor_that_changes_the_shape(tmp_path):
    class Cropping(ProceduralEditor):
        def edit(self, images, concept):
            return super().edit(images, concept)[:, :4]

    with pytest.raises(ValueError, match=r"editor returned .* for concept invert; expected uint8"):
        build(PairStore(tmp_path), [INVERT], Cropping())


def test_preview_png_shows_sources_then_targets(tmp_path):
    store = PairStore(tmp_path / "pairs")
    build(store, [INVERT, SEPIA])
    path = store.preview(tmp_path / "preview.png", ["invert", "sepia"], per_row=2)
    with Image.open(path) as image:
        width, height = image.size
    # 4 cells of 8 px scaled 2x per row, 2 rows, plus labels.
    assert width > 4 * 16 and height >= 2 * 16


# --- datasets ------------------------------------------------------------------------------


def test_flip_keeps_source_and_target_aligned():
    sources = torch.randn(3, 3, 8, 8)
    targets = torch.stack([-sources, 2 * sources])  # two concepts, pixel-wise edits
    dataset = ConceptPairsDataset(sources, targets, flip=True, seed=0)
    assert len(dataset) == 6
    flipped = 0
    for _ in range(5):
        for index in range(len(dataset)):
            item = dataset[index]
            concept, crop = divmod(index, 3)
            assert int(item["concept"]) == concept
            factor = -1 if concept == 0 else 2
            assert torch.equal(item["target"], factor * item["source"])
            if torch.equal(item["source"], sources[crop].flip(-1)):
                flipped += 1
            else:
                assert torch.equal(item["source"], sources[crop])
    assert 0 < flipped < 30


def test_images_to_tensor_range_and_layout():
    images = np.array([[[[0, 255, 127]]]], dtype=np.uint8)
    tensor = images_to_tensor(images)
    assert tensor.shape == (1, 3, 1, 1)
    assert tensor.flatten().tolist() == pytest.approx([-1.0, 1.0, 127 / 127.5 - 1])


def test_datamodule_indexes_concepts_in_the_given_order(tmp_path):
    build(PairStore(tmp_path), [INVERT, SEPIA])
    data = PairsDataModule(str(tmp_path), ["sepia", "invert"], batch_size=4, val_batch_size=16)
    data.setup()
    batch = next(iter(data.val_dataloader()))
    assert batch["source"].shape == (2 * SETTINGS.n_val, 3, 8, 8)
    for source, target, concept in zip(batch["source"], batch["target"], batch["concept"],
                                       strict=True):
        if int(concept) == 1:  # invert
            assert torch.allclose(target, -source, atol=1e-6)
        else:
            assert not torch.allclose(target, -source, atol=1e-6)
    train = next(iter(data.train_dataloader()))
    assert train["source"].shape == (4, 3, 8, 8)
    with pytest.raises(ValueError, match="at least one concept"):
        PairsDataModule(str(tmp_path), [])


# --- the pairs stage through the Workspace -------------------------------------------------


def test_build_pairs_stage_writes_cache_and_preview(tmp_path):
    ws = tiny_workspace(tmp_path)
    with photos_loaded_once():
        summary = build_pairs_with_preview(ws)
    assert summary["concepts"] == 3 and summary["train_concepts"] == 2
    assert summary["crops"] == {"train": 16, "val": 4}
    with Image.open(summary["preview"]) as image:
        assert image.format == "PNG" and image.size[1] >= 3 * 32
    assert (ws.run_dir / "configs" / "pairs.yaml").is_file()
    pairs = ws.pair_store.load(ws.test_concepts[0].id)
    assert pairs.train_source.shape == (16, 16, 16, 3) and pairs.val_target.shape == (4, 16, 16, 3)


def test_build_pairs_from_a_folder(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("one", "two", "three"):
        write_png(tmp_path / "photos" / f"{name}.png",
                  rng.integers(0, 256, (24, 30, 3), dtype=np.uint8))
    ws = tiny_workspace(tmp_path, "data=folder", f"data.folder={tmp_path / 'photos'}",
                        "data.val_photos=[three.png]")
    manifest = build_pairs(ws)
    assert manifest["settings"]["val_photos"] == ["three.png"]
    assert manifest["settings"]["photos"] == str(tmp_path / "photos")
    assert len(manifest["concepts"]) == 3


def test_data_size_not_multiple_of_four_is_a_clear_error(tmp_path):
    ws = tiny_workspace(tmp_path, "data.size=18")
    with pytest.raises(ValueError, match=r"data.size=18 is not a multiple of .* 4; use e.g. 16"):
        build_pairs(ws)


def test_folder_source_without_a_folder_names_the_setting(tmp_path):
    ws = tiny_workspace(tmp_path, "data=folder")
    with pytest.raises((ValueError, FileNotFoundError), match="data.folder"):
        build_pairs(ws)


# --- issue 14: a damaged sources file is made again; one builder per cache ---------------------


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_pair_store_makes_a_missing_or_damaged_sources_file_again(tmp_path, damage):
    store = PairStore(tmp_path)
    editor = CountingEditor()
    manifest = build(store, [INVERT, SEPIA], editor)
    path = tmp_path / "sources.safetensors"
    original = path.read_bytes()
    if damage == "delete":
        path.unlink()
    else:
        path.write_bytes(original[:-7])
    with pytest.raises(CorruptFileError, match=str(path)):
        store.load("invert")  # "... rebuild it (the build resumes)" / "... rerun the build"
    assert build(store, [INVERT, SEPIA], editor) == manifest
    assert path.read_bytes() == original  # the same seeded crops ...
    assert len(editor.edited) == 4  # ... so no concept is edited again
    assert np.array_equal(store.load("invert").val_target, 255 - store.load("invert").val_source)


def test_pair_store_edits_every_concept_again_when_new_sources_differ(tmp_path):
    store = PairStore(tmp_path)
    editor = CountingEditor()
    build(store, [INVERT, SEPIA], editor)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    real = manifest["sources_sha256"]
    manifest["sources_sha256"] = "0" * 64  # targets edited from crops other than the new ones
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "sources.safetensors").unlink()
    rebuilt = build(store, [INVERT, SEPIA], editor)
    assert rebuilt["sources_sha256"] == real and sorted(rebuilt["concepts"]) == ["invert", "sepia"]
    assert len(editor.edited) == 8


def test_pair_fingerprints_change_with_a_concept_edited_under_the_same_id(tmp_path):
    store = PairStore(tmp_path)
    build(store, [INVERT, SEPIA])
    before = store.fingerprints(["invert", "sepia", "blur"])
    assert before["blur"] is None and before["invert"] != before["sepia"]
    build(store, [Concept("invert", "now sepia", recipe=[{"op": "sepia"}])])
    after = store.fingerprints(["invert", "sepia"])
    assert after["invert"] != before["invert"] and after["sepia"] == before["sepia"]


def test_a_second_builder_of_the_same_pair_cache_fails_with_run_busy(tmp_path):
    from filelock import FileLock

    from weightgen.errors import RunBusyError
    from weightgen.utils.locks import lock_beside

    root = tmp_path / "pairs"
    with FileLock(lock_beside(root)):  # another process is building the cache
        with pytest.raises(RunBusyError, match=r"another process is building the pair cache .*"
                                               r"let it finish and rerun .*lock_timeout_s=null"):
            build(PairStore(root, lock_timeout_s=0), [INVERT])
    assert not root.exists() or not any(root.iterdir())  # nothing written
    build(PairStore(root, lock_timeout_s=0), [INVERT])  # free again: builds
    assert PairStore(root).manifest()["concepts"].keys() == {"invert"}


def test_other_ranks_of_a_ddp_job_do_not_wait_for_rank_zeros_lock(tmp_path, monkeypatch):
    from filelock import FileLock

    from weightgen.utils.locks import store_lock

    monkeypatch.setenv("LOCAL_RANK", "1")
    with FileLock(tmp_path / ".lock"), store_lock(tmp_path / ".lock", "the store", timeout_s=0):
        pass  # rank 1 reruns the entry point while rank 0 holds the lock: no wait, no error
