"""Procedural ops, concept files, the built-in catalog and its split, the procedural editor."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from weightgen.concepts.catalog import (
    HELDOUT_COMBINATIONS,
    PARAPHRASED,
    VALIDATION_COMBINATIONS,
    builtin_concepts,
    select_concepts,
    split_concepts,
    train_pick_order,
)
from weightgen.concepts.ops import (
    NAMED_COLOURS,
    OPS,
    apply_recipe,
    describe_recipe,
    make_op,
    normalize_recipe,
)
from weightgen.concepts.phrasings import heldout_phrasing, training_families
from weightgen.concepts.procedural_editor import ProceduralEditor
from weightgen.concepts.spec import Concept, load_concepts, save_concepts
from weightgen.concepts.text_fingerprints import (
    PROMPT,
    changed_texts,
    texts_fingerprint,
    texts_fingerprints,
)
from weightgen.errors import ConfigError


def constant(rgb, size=16):
    return np.broadcast_to(np.asarray(rgb, np.float32), (size, size, 3)).copy()


def ramp(size=32):
    """Horizontal grey ramp 0 -> 1: linear, so symmetric filters leave its interior alone."""
    row = np.linspace(0.0, 1.0, size, dtype=np.float32)
    return np.repeat(np.repeat(row[None, :, None], size, axis=0), 3, axis=2)


def step_edge(size=32):
    image = np.zeros((size, size, 3), np.float32)
    image[:, size // 2 :] = 1.0
    return image


@pytest.fixture(scope="module")
def random_image():
    return np.random.default_rng(0).random((37, 50, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def catalog():
    return builtin_concepts()


# ---- ops: known values -------------------------------------------------------------------------


def check_grayscale():
    out = make_op("grayscale")(constant((0.2, 0.4, 0.6)))
    np.testing.assert_allclose(out, 0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6, atol=1e-6)


def check_invert():
    np.testing.assert_allclose(
        make_op("invert")(constant((0.25, 0.5, 1.0))), constant((0.75, 0.5, 0))
    )


def check_sepia():
    out = make_op("sepia")(constant((0.5, 0.5, 0.5)))
    np.testing.assert_allclose(out[0, 0], [0.6755, 0.6015, 0.4685], atol=1e-5)


def check_tint():
    # Overlay blend: mid-grey becomes the colour itself; black and white stay put.
    op = make_op("tint", colour="teal", strength=1.0)
    np.testing.assert_allclose(
        op(constant((0.5, 0.5, 0.5)))[0, 0], NAMED_COLOURS["teal"], atol=1e-6
    )
    np.testing.assert_allclose(op(constant((1.0, 1.0, 1.0))), 1.0, atol=1e-6)
    np.testing.assert_allclose(op(constant((0.0, 0.0, 0.0))), 0.0, atol=1e-6)


def check_grade():
    out = make_op("grade", style="warm")(constant((0.5, 0.5, 0.5)))
    np.testing.assert_allclose(out[0, 0], [0.59, 0.51, 0.41], atol=1e-6)
    cool = make_op("grade", style="cool")(constant((0.5, 0.5, 0.5)))[0, 0]
    assert cool[2] > cool[1] > cool[0]


def check_posterise():
    out = make_op("posterise", levels=2)(constant((0.3, 0.6, 0.49)))
    np.testing.assert_allclose(out[0, 0], [0.0, 1.0, 0.0])
    np.testing.assert_allclose(make_op("posterise", levels=5)(constant((0.3, 0.3, 0.3))), 0.25)


def check_blur():
    op = make_op("blur", sigma=1.5)
    np.testing.assert_allclose(op(constant((0.2, 0.5, 0.9))), constant((0.2, 0.5, 0.9)), atol=1e-6)
    np.testing.assert_allclose(op(ramp())[:, 8:24], ramp()[:, 8:24], atol=1e-5)
    dot = np.zeros((15, 15, 3), np.float32)
    dot[7, 7] = 1.0
    blurred = op(dot)
    assert blurred[7, 7, 0] < 0.2 and blurred[7, 8, 0] > 0 and blurred.sum() == pytest.approx(3.0)


def check_sharpen():
    op = make_op("sharpen", amount=1.0)
    np.testing.assert_allclose(op(constant((0.3, 0.3, 0.3))), 0.3, atol=1e-6)
    np.testing.assert_allclose(op(ramp())[:, 8:24], ramp()[:, 8:24], atol=1e-5)
    soft = make_op("blur", sigma=1.0)(step_edge() * 0.5 + 0.25)
    sharpened = op(soft)
    assert np.ptp(sharpened[8, 12:20, 0]) > np.ptp(soft[8, 12:20, 0])


def check_emboss():
    np.testing.assert_allclose(make_op("emboss")(constant((0.9, 0.1, 0.4))), 0.5, atol=1e-6)
    # A ramp rising by d per pixel gives a relief of 4 d (the kernel's right minus left column).
    out = make_op("emboss", strength=0.7)(ramp(32))
    np.testing.assert_allclose(out[8:24, 8:24], 0.5 + 0.7 * 4 / 31, atol=1e-5)


def check_sketch():
    op = make_op("sketch")
    np.testing.assert_allclose(op(constant((0.2, 0.6, 0.3))), 1.0)  # flat = white paper
    out = op(step_edge())[:, :, 0]
    assert out[8, 15:17].min() < 0.3 and out[8, 0] == 1.0 and out[8, -1] == 1.0


def check_cartoon():
    np.testing.assert_allclose(make_op("cartoon", levels=5)(constant((0.3, 0.3, 0.3))), 0.25)
    out = make_op("cartoon")(step_edge())
    assert out[8, 15:17].max() == 0.0 and out[8, 0].max() == 0.0 and out[8, -1].min() == 1.0


def check_pixelate():
    image = np.arange(8 * 8 * 3, dtype=np.float32).reshape(8, 8, 3) / (8 * 8 * 3)
    out = make_op("pixelate", block=4)(image)
    np.testing.assert_allclose(out[:4, :4], image[:4, :4].mean(axis=(0, 1)) * np.ones((4, 4, 3)))
    assert len(np.unique(out[..., 0])) == 4
    assert make_op("pixelate", block=4)(image[:6, :7]).shape == (6, 7, 3)


def check_vignette():
    out = make_op("vignette", strength=0.5)(constant((1.0, 1.0, 1.0), size=10))
    corner_r2 = (0.9**2 + 0.9**2) / 2
    assert out[0, 0, 0] == pytest.approx(1 - 0.5 * corner_r2)
    assert out[4, 4, 0] == pytest.approx(1 - 0.5 * 0.01)


def check_colormap():
    thermal = make_op("colormap", palette="thermal")
    np.testing.assert_allclose(thermal(constant((0, 0, 0)))[0, 0], [0, 0, 0.1], atol=1e-6)
    np.testing.assert_allclose(thermal(constant((1, 1, 1)))[0, 0], [1, 1, 0.85], atol=1e-6)
    night = make_op("colormap", palette="night_vision")(ramp())
    assert (night[..., 1] >= night[..., 0]).all() and night[0, -1, 1] > night[0, 0, 1]


def check_season():
    np.testing.assert_allclose(make_op("season", look="winter")(constant((0, 0, 0))), 0.25)
    autumn = make_op("season", look="autumn")(constant((0.0, 1.0, 0.0)))
    np.testing.assert_allclose(autumn[0, 0], [0.35, 0.65, 0.05], atol=1e-6)
    sunset = make_op("season", look="sunset")(constant((0.5, 0.5, 0.5)))
    assert sunset[0, 0, 1] < sunset[-1, 0, 1]  # redder sky at the top


def check_solarize():
    out = make_op("solarize", threshold=0.5)(constant((0.8, 0.3, 0.5)))
    np.testing.assert_allclose(out[0, 0], [0.2, 0.3, 0.5], atol=1e-6)


def check_contrast():
    out = make_op("contrast", factor=2.0)(constant((0.75, 0.6, 0.2)))
    np.testing.assert_allclose(out[0, 0], [1.0, 0.7, 0.0], atol=1e-6)


def check_brightness():
    out = make_op("brightness", delta=0.2)(constant((0.5, 0.9, 0.0)))
    np.testing.assert_allclose(out[0, 0], [0.7, 1.0, 0.2], atol=1e-6)


def check_saturation():
    random_image = np.random.default_rng(1).random((8, 8, 3), dtype=np.float32)
    grey = make_op("grayscale")(random_image)
    np.testing.assert_allclose(make_op("saturation", factor=0.0)(random_image), grey, atol=1e-6)
    np.testing.assert_allclose(make_op("saturation", factor=1.0)(random_image), random_image)


def check_duotone():
    op = make_op("duotone", dark="navy", light="gold")
    np.testing.assert_allclose(op(constant((0, 0, 0)))[0, 0], NAMED_COLOURS["navy"], atol=1e-6)
    np.testing.assert_allclose(op(constant((1, 1, 1)))[0, 0], NAMED_COLOURS["gold"], atol=1e-6)


KNOWN_VALUE_CHECKS = {
    name.removeprefix("check_"): check
    for name, check in dict(globals()).items()
    if name.startswith("check_")
}


def test_every_op_has_a_known_value_check():
    assert set(KNOWN_VALUE_CHECKS) == set(OPS)


@pytest.mark.parametrize("name", sorted(KNOWN_VALUE_CHECKS))
def test_op_known_values(name):
    KNOWN_VALUE_CHECKS[name]()


def test_at_least_15_families():
    assert len(OPS) >= 15


def test_invert_twice_is_identity(random_image):
    twice = apply_recipe(random_image, [{"op": "invert"}, {"op": "invert"}])
    np.testing.assert_allclose(twice, random_image, atol=1e-6)


def test_grayscale_channels_equal(random_image):
    out = make_op("grayscale")(random_image)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_deterministic_in_range_same_shape(name, random_image):
    op = make_op(name)
    first, second = op(random_image), op(random_image.copy())
    assert first.shape == random_image.shape and first.dtype == np.float32
    assert np.array_equal(first, second)
    assert first.min() >= 0.0 and first.max() <= 1.0
    assert not np.allclose(first, random_image), f"{name} with defaults should change the image"


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_has_several_distinct_phrasings(name):
    phrasings = make_op(name).phrasings()
    assert len(phrasings) >= 3 and len(set(phrasings)) == len(phrasings)
    assert all(isinstance(p, str) and p.strip() for p in phrasings)


def test_recipe_composes_in_order(random_image):
    recipe = [{"op": "blur", "sigma": 1.0}, {"op": "tint", "colour": "red"}]
    expected = make_op("tint", colour="red")(make_op("blur", sigma=1.0)(random_image))
    np.testing.assert_array_equal(apply_recipe(random_image, recipe), expected)
    assert describe_recipe(recipe) == "a slight blur with a red tint"


def test_normalize_recipe_fills_defaults():
    assert normalize_recipe([{"op": "blur"}]) == normalize_recipe([{"op": "blur", "sigma": 1.5}])
    step = normalize_recipe([{"op": "pixelate", "block": 4.0}])[0]
    assert step.params == (("block", 4),)
    assert dict(step) == {"op": "pixelate", "block": 4} == step.to_dict()  # reads as a dict


@pytest.mark.parametrize(
    ("step", "words"),
    [
        ({"op": "glitter"}, ["glitter", "known ops", "sepia"]),
        ({"op": "blur", "sigma": -1}, ["blur", "sigma", "[0.3, 8.0]"]),
        ({"op": "blur", "sigma": "big"}, ["blur", "sigma"]),
        ({"op": "tint", "colour": "chartreuse"}, ["tint", "colour", "teal"]),
        ({"op": "pixelate", "block": 2.5}, ["pixelate", "block", "integer"]),
        ({"op": "posterise", "levels": True}, ["posterise", "levels"]),
        ({"op": "sepia", "amount": 1}, ["sepia", "amount", "strength"]),
    ],
)
def test_bad_recipe_step_errors_name_the_problem(step, words):
    with pytest.raises(ValueError) as err:
        normalize_recipe([step])
    assert all(word in str(err.value) for word in words), str(err.value)


def test_empty_recipe_and_bad_image_rejected(random_image):
    with pytest.raises(ValueError, match="at least one step"):
        normalize_recipe([])
    with pytest.raises(ValueError, match="HxWx3"):
        apply_recipe((random_image * 255).astype(np.uint8), [{"op": "invert"}])


# ---- catalog and split -------------------------------------------------------------------------


def test_builtin_catalog_size_unique_and_deterministic(catalog):
    assert len(catalog) >= 200
    assert len({c.id for c in catalog}) == len(catalog)
    assert len({c.prompt for c in catalog}) == len(catalog)
    assert [c.to_dict() for c in builtin_concepts()] == [c.to_dict() for c in catalog]
    assert {c.family.split("+")[0] for c in catalog} >= set(OPS)  # every family is used
    assert all(c.recipe is not None and c.instruction for c in catalog)


def test_split_is_disjoint_and_held_out_properly(catalog):
    train, val, test = split_concepts(catalog)
    assert len(train) + len(val) + len(test) == len(catalog)
    ids = [{c.id for c in part} for part in (train, val, test)]
    assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
    train_recipes = {c.recipe for c in train}
    train_parts = {p for c in train for p in c.parts}
    train_prompts = {c.recipe: c.prompt for c in train}
    assert {c.kind for c in test} == {"new", "paraphrase"} and {c.kind for c in val} == {"new"}
    for concept in val + test:
        if concept.kind == "new":  # a recipe no train concept has: a new pairing of seen parts
            assert concept.recipe not in train_recipes, concept.id
            assert len(concept.parts) == 2 and set(concept.parts) <= train_parts, concept.id
            assert concept.parts not in {c.parts for c in train}
        else:
            assert concept.recipe in train_recipes, concept.id
            source_words = set(train_prompts[concept.recipe].split())
            new_words = set(concept.prompt.split()) - {"a", "an", "with"}
            assert new_words - source_words, concept.id
    # Issue 23: at least 16 new test concepts beside the 8 paraphrases, and at least 8 new
    # validation concepts, none with the recipe of a test concept.
    assert sum(c.kind == "new" for c in test) == len(HELDOUT_COMBINATIONS) >= 16
    assert sum(c.kind == "paraphrase" for c in test) == len(PARAPHRASED) == 8
    assert len(val) == len(VALIDATION_COMBINATIONS) >= 8
    assert not {c.recipe for c in val} & {c.recipe for c in test}
    assert all(c.held_out for c in val + test) and not any(c.held_out for c in train)
    assert all(c.kind is None for c in train)


# ---- phrasings -----------------------------------------------------------------------------


def test_every_builtin_concept_has_at_least_5_distinct_prompts(catalog):
    for concept in catalog:
        prompts = set(concept.phrasings) | {concept.prompt, concept.heldout_phrasing} - {None}
        assert len(prompts) >= 5, (concept.id, prompts)
        assert concept.phrasings[0] == concept.prompt, concept.id
        assert len(set(concept.phrasings)) == len(concept.phrasings), concept.id


def test_phrasings_are_the_ops_wordings_templates_and_orders_of_parts(catalog):
    by_id = {c.id: c for c in catalog}
    sketch_red = by_id["sketch+tint_red"]
    assert sketch_red.phrasings == (
        "a pencil sketch with a red tint",
        "hand-drawn charcoal outlines with a wash of red",
        "make it a pencil sketch with a red tint",
        "a pencil sketch with a red tint style",
        "turn the photo into a pencil sketch with a red tint",
        "give the photo a pencil sketch with a red tint",
        "a red tint with a pencil sketch",
    )
    assert sketch_red.heldout_phrasing == (
        "a graphite line drawing on white paper with red-tinted colours")
    sepia = by_id["sepia"]
    assert sepia.prompt == describe_recipe(sepia.recipe) == "a sepia tone"
    assert "an old brown photograph look" == sepia.heldout_phrasing
    assert len(sepia.phrasings) == 6  # a single op has no other order of parts


def test_the_held_out_family_is_never_a_training_phrasing(catalog):
    train, val, test = split_concepts(catalog)
    training_texts = [text for c in train for text in c.phrasings]
    assert len(set(training_texts)) == len(training_texts)  # no text names two concepts
    held_out = {c.heldout_phrasing for c in catalog if c.heldout_phrasing is not None}
    held_out |= {text for c in val + test for text in c.phrasings}
    assert not held_out & set(training_texts)
    by_id = {c.id: c for c in catalog}
    for source in PARAPHRASED:  # the paraphrase test concepts are worded in the held-out family
        paraphrase = by_id[f"{source}.paraphrase"]
        assert paraphrase.prompt == by_id[source].heldout_phrasing == heldout_phrasing(
            paraphrase.recipe)
        assert paraphrase.heldout_phrasing is None
        assert not set(paraphrase.phrasings) & set(training_families(paraphrase.recipe).values())


def test_a_concept_file_may_give_phrasings(tmp_path):
    rows = [{"id": "warm", "prompt": "warm tones", "recipe": [{"op": "grade"}],
             "phrasings": ["make it warm", "warm tones", "a cosy look"],
             "heldout_phrasing": "golden light"}]
    [concept] = load_concepts(write_yaml(tmp_path / "c.yaml", rows))
    assert concept.phrasings == ("warm tones", "make it warm", "a cosy look")  # prompt first
    assert concept.heldout_phrasing == "golden light"
    [plain] = load_concepts(write_yaml(tmp_path / "p.yaml", [{"id": "p", "prompt": "x",
                                                               "instruction": "y"}]))
    assert plain.phrasings == ("x",) and plain.heldout_phrasing is None
    assert "phrasings" not in plain.to_dict() and "heldout_phrasing" not in plain.to_dict()


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"phrasings": "make it warm"}, ["'w'", "phrasings", "list"]),
        ({"phrasings": ["a", ""]}, ["'w'", "phrasings", "non-empty"]),
        ({"phrasings": ["a", "b", "a"]}, ["'w'", "['a']", "more than once"]),
        ({"heldout_phrasing": "  "}, ["'w'", "heldout_phrasing", "non-empty"]),
        ({"phrasings": ["a"], "heldout_phrasing": "a"}, ["'w'", "'a'", "also a training"]),
        ({"heldout_phrasing": "x"}, ["'w'", "'x'", "also a training"]),  # the prompt itself
    ],
)
def test_bad_phrasings_are_errors_naming_the_problem(tmp_path, fields, words):
    rows = [{"id": "w", "prompt": "x", "instruction": "y", **fields}]
    with pytest.raises(ValueError) as err:
        load_concepts(write_yaml(tmp_path / "c.yaml", rows))
    assert all(word in str(err.value) for word in words), str(err.value)


def test_select_concepts_covers_families_and_test_parts(catalog):
    picked = select_concepts(catalog, n_train=12, n_test=4, seed=0, n_val=2)
    assert picked == select_concepts(catalog, n_train=12, n_test=4, seed=0, n_val=2)
    train, val, test = split_concepts(picked)
    assert (len(train), len(val), len(test)) == (12, 2, 4)
    assert [c.split for c in picked] == ["train"] * 12 + ["val"] * 2 + ["test"] * 4
    assert {c.kind for c in test} == {"new", "paraphrase"}
    assert len({step.op for c in train for step in c.recipe}) >= 12
    train_parts = {p for c in train for p in c.parts}
    train_recipes = {c.recipe for c in train}
    for concept in val + test:
        if concept.kind == "new":
            assert set(concept.parts) <= train_parts, concept.id
        else:
            assert concept.recipe in train_recipes, concept.id
    other_seed = select_concepts(catalog, n_train=12, n_test=4, seed=1, n_val=2)
    assert [c.id for c in other_seed] != [c.id for c in picked]


def test_no_validation_pick_leaves_the_train_and_test_picks_as_they_were(catalog):
    """n_val=0 draws nothing from the seeded order: the quickstart's picks do not move."""
    without = select_concepts(catalog, n_train=12, n_test=2, seed=0, n_val=0)
    assert not [c for c in without if c.split == "val"]
    _, val, _ = split_concepts(catalog)
    with_val = select_concepts(catalog, n_train=12, n_test=2, seed=0, n_val=None)
    assert [c for c in with_val if c.split == "test"] == [c for c in without if c.split == "test"]
    assert [c for c in with_val if c.split == "val"] == val


def test_select_concepts_all_and_out_of_range(catalog):
    train, val, test = split_concepts(catalog)
    assert select_concepts(catalog, None, None, seed=0) == train + val + test
    with pytest.raises(ValueError, match="n_test=999"):
        select_concepts(catalog, 3, 999, seed=0)
    with pytest.raises(ValueError, match="concepts.n_val=9 is out of range: there are 8 val"):
        select_concepts(catalog, 3, 1, seed=0, n_val=9)


def test_a_prefix_of_the_train_pick_order_is_the_train_set_of_that_size(catalog):
    order = train_pick_order(catalog, n_test=24, seed=0, n_val=8)
    assert sorted(order) == sorted(c.id for c in split_concepts(catalog)[0])
    for k in (12, 24, 96):
        picked = select_concepts(catalog, n_train=k, n_test=24, seed=0, n_val=8)
        assert set(order[:k]) == {c.id for c in picked if c.split == "train"}
    first = {c.id: c for c in catalog}
    # Spread: the first 24 hold two-part combinations, not only the catalogue's single ops first.
    assert sum(len(first[c].parts) > 1 for c in order[:24]) >= 6


# ---- procedural editor -------------------------------------------------------------------------


def test_procedural_editor_uint8_and_float(catalog, random_image):
    concept = next(c for c in catalog if c.id == "cartoon+tint_teal")
    editor = ProceduralEditor()
    batch = (np.stack([random_image, random_image[::-1]]) * 255).round().astype(np.uint8)
    out = editor.edit(batch, concept)
    assert out.dtype == np.uint8 and out.shape == batch.shape
    expected = apply_recipe(batch[1].astype(np.float32) / 255, concept.recipe)
    np.testing.assert_array_equal(out[1], np.round(expected * 255).astype(np.uint8))
    floats = editor.edit(batch.astype(np.float32) / 255, concept)
    assert floats.dtype == np.float32 and np.abs(floats * 255 - out).max() <= 0.5 + 1e-3


def test_procedural_editor_errors(random_image):
    text_only = Concept(id="zombie", prompt="a zombie", instruction="make it a zombie")
    with pytest.raises(ValueError, match="zombie.*no recipe"):
        ProceduralEditor().edit(random_image[None], text_only)
    sepia = Concept(id="sepia", prompt="sepia", recipe=[{"op": "sepia"}])
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        ProceduralEditor().edit(random_image, sepia)


# ---- concept files -----------------------------------------------------------------------------


def write_yaml(path, rows):
    path.write_text(yaml.safe_dump(rows, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("rows", "words"),
    [
        (
            [{"id": "a", "prompt": "x", "recipe": [{"op": "sepia"}]}] * 2,
            ["duplicate", "'a'", "entry 2"],
        ),
        ([{"id": "b", "recipe": [{"op": "sepia"}]}], ["entry 1", "'b'", "prompt"]),
        ([{"id": "b", "prompt": "  ", "recipe": [{"op": "sepia"}]}], ["'b'", "prompt", "empty"]),
        ([{"id": "c", "prompt": "x", "recipe": [{"op": "glitter"}]}], ["'c'", "glitter", "sepia"]),
        (
            [{"id": "d", "prompt": "x", "recipe": [{"op": "blur", "sigma": 99}]}],
            ["'d'", "blur", "sigma", "8.0"],
        ),
        ([{"id": "e", "prompt": "x"}], ["'e'", "recipe", "instruction"]),
        (
            [{"id": "f", "prompt": "x", "instruction": "y", "split": "dev"}],
            ["'f'", "split", "'dev'", "train, val, test"],
        ),
        (
            [{"id": "h", "prompt": "x", "instruction": "y", "holdout": "new"}],
            ["'h'", "holdout", "val or test", "new, paraphrase"],
        ),
        (
            [{"id": "s", "prompt": "x", "recipe": [{"op": "sepia"}]},
             {"id": "t", "prompt": "y", "recipe": [{"op": "sepia"}], "split": "test",
              "holdout": "new"}],
            ["'t'", "holdout: new", "'s'", "same recipe", "holdout: paraphrase"],
        ),
        ([{"id": "g", "prompt": "x", "instruction": "y", "colour": 1}], ["'g'", "colour"]),
        ([{"id": "bad id/", "prompt": "x", "instruction": "y"}], ["bad id/", "letters"]),
    ],
)
def test_load_concepts_errors_name_the_problem(tmp_path, rows, words):
    path = write_yaml(tmp_path / "concepts.yaml", rows)
    with pytest.raises(ValueError) as err:
        load_concepts(path)
    assert all(word in str(err.value) for word in words), str(err.value)


def test_load_concepts_missing_file_and_bad_jsonl(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.yaml"):
        load_concepts(tmp_path / "nowhere.yaml")
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": "a", "prompt": "x", "instruction": "y"}) + "\n\n{oops\n")
    with pytest.raises(ValueError, match="line 3"):
        load_concepts(path)
    path.write_text(json.dumps({"id": "a", "prompt": "", "instruction": "y"}) + "\n")
    with pytest.raises(ValueError, match="line 1.*'a'.*prompt"):
        load_concepts(path)


def test_load_concepts_accepts_list_and_mapping(tmp_path):
    rows = [{"id": "warm", "prompt": "warm", "recipe": [{"op": "grade"}]}]
    as_list = load_concepts(write_yaml(tmp_path / "a.yaml", rows))
    as_map = load_concepts(write_yaml(tmp_path / "b.yml", {"concepts": rows}))
    assert as_list == as_map and as_list[0].split == "train" and as_list[0].family == "grade"


def test_a_concept_file_may_hold_a_validation_split_and_kinds(tmp_path):
    """A val entry is accepted; a held-out entry's kind is stated or inferred from the file's
    train recipes (issue 23); an older file's "combination" reads as "new"."""
    rows = [{"id": "sepia", "prompt": "sepia", "recipe": [{"op": "sepia"}]},
            {"id": "old", "prompt": "an old look", "recipe": [{"op": "sepia"}], "split": "test"},
            {"id": "inv", "prompt": "inverted", "recipe": [{"op": "invert"}], "split": "val"},
            {"id": "zombie", "prompt": "a zombie", "instruction": "zombify", "split": "test"},
            {"id": "legacy", "prompt": "grey", "recipe": [{"op": "grayscale"}], "split": "test",
             "holdout": "combination"},
            {"id": "said", "prompt": "a new sepia", "recipe": [{"op": "sepia"}], "split": "val",
             "holdout": "paraphrase"}]
    concepts = {c.id: c for c in load_concepts(write_yaml(tmp_path / "c.yaml", rows))}
    assert {i: (c.split, c.kind) for i, c in concepts.items()} == {
        "sepia": ("train", None), "old": ("test", "paraphrase"), "inv": ("val", "new"),
        "zombie": ("test", "new"), "legacy": ("test", "new"), "said": ("val", "paraphrase")}


@pytest.mark.parametrize("suffix", [".yaml", ".jsonl"])
def test_save_load_round_trip(tmp_path, catalog, suffix):
    concepts = (
        catalog[:20]
        + [c for c in catalog if c.held_out]
        + [Concept(id="zombie", prompt="a zombie", instruction="make it a zombie", split="test")]
    )
    path = tmp_path / f"concepts{suffix}"
    save_concepts(concepts, path)
    assert load_concepts(path) == concepts
    assert all(len(c.phrasings) >= 5 for c in load_concepts(path)[:-1])  # phrasings kept
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_texts_fingerprints_cover_prompt_phrasings_and_heldout_phrasing_not_the_recipe():
    """Issue 21: the fingerprint models record beside the pairs' (which covers the recipe)."""
    concept = Concept("warm", "a warm photo", recipe=[{"op": "sepia"}],
                      phrasings=["a warm tone"], heldout_phrasing="cosy colours")
    same = texts_fingerprint(concept)
    edits = [{"prompt": "a warmer photo"}, {"phrasings": ["a warm tint"]},
             {"heldout_phrasing": "cosy tones"}]
    for edit in edits:
        assert texts_fingerprint(Concept.from_dict(concept.to_dict() | edit)) != same
    recoloured = Concept.from_dict(concept.to_dict() | {"recipe": [{"op": "invert"}]})
    assert texts_fingerprint(recoloured) == same  # the pairs' fingerprint sees the recipe
    # The base reads the prompt only: a new phrasing does not make it stale.
    assert (texts_fingerprint(Concept.from_dict(concept.to_dict() | edits[1]), PROMPT)
            == texts_fingerprint(concept, PROMPT))
    recorded = texts_fingerprints([concept, Concept("cold", "a cold photo",
                                                         recipe=[{"op": "invert"}])])
    now = {"warm": texts_fingerprint(Concept.from_dict(concept.to_dict() | edits[0]))}
    assert changed_texts(recorded, now) == ["warm"]  # "cold" is not in the run: not judged
    assert changed_texts(recorded, recorded) == []


# ---- concept ids that are store file names (issue 21) ------------------------------------------


@pytest.mark.parametrize("concept_id", ["manifest.jsonl", "Manifest.JSONL", "manifest.json",
                                        "manifest.shard-0-of-2.jsonl", "targets", "base.json",
                                        "generator.json", "logs", "zero_shot.md"])
def test_a_concept_id_that_is_a_store_file_name_is_refused_naming_the_reserved_names(
    tmp_path, concept_id
):
    path = write_yaml(tmp_path / "concepts.yaml",
                      [{"id": concept_id, "prompt": "x", "recipe": [{"op": "sepia"}]}])
    with pytest.raises(ConfigError) as err:
        load_concepts(path)
    message = str(err.value)
    assert f"concept id {concept_id!r} is the name of a file or folder" in message
    assert "manifest.jsonl" in message and "generator.json" in message  # the reserved names
    assert "rename the concept" in message and "\n" not in message
    Concept(id="manifest.jsonl.2", prompt="x", recipe=[{"op": "sepia"}])  # only exact names


def test_every_file_a_run_writes_into_its_stores_is_a_reserved_concept_id(tiny_run):
    """The reserved list is checked against what the stores really hold (a new store file that
    the list lacks fails here); the weight store's folders are the concepts' own."""
    run_dir = tiny_run["artifacts"] / "quickstart"
    names = {path.name for folder in ("pairs", "base", "generator")
             for path in (run_dir / folder).iterdir()}
    names |= {path.name for path in (run_dir / "weights").iterdir() if path.is_file()}
    names = {name for name in names if not name.startswith(".")}  # locks, temp files: no id
    assert {"manifest.jsonl", "manifest.json", "targets", "base.json", "generator.json"} <= names
    for name in sorted(names):
        with pytest.raises(ConfigError, match="is the name of a file or folder"):
            Concept(id=name, prompt="x", recipe=[{"op": "sepia"}])
