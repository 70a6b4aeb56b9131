"""The zero-shot comparison with the controls that see the generator's inputs (issue 24's bar):
per held-out kind, medians, paired wins with the sign test, and the count above every rival."""

import json

import pytest

from weightgen.study.controls_table import controls_table, pooled_over_seeds, seed_family
from weightgen.study.scaling_curve import scaling_table
from weightgen.study.zero_shot_controls import (
    EXAMPLES_KINDS,
    TEXT_KINDS,
    control_kinds,
    controls_markdown,
    score_controls,
    summarise_controls,
)


def row(concept: str, kind: str, **psnr: float) -> dict:
    return {"concept": concept, "split": "val", "kind": kind} | psnr


def test_the_kinds_scored_add_the_examples_side_only_for_a_generator_with_pairs():
    assert control_kinds(False) == (*TEXT_KINDS, "trained")
    assert control_kinds(True) == (*TEXT_KINDS, *EXAMPLES_KINDS, "trained")


def test_each_concept_is_scored_with_every_kind_and_keeps_its_held_out_kind():
    class Concept:
        def __init__(self, id, kind):
            self.id, self.split, self.kind = id, "val", kind

    asked = []

    def psnr(kind, concept):
        asked.append((kind, concept.id))
        return float(len(asked))

    rows = score_controls([Concept("a", "new"), Concept("b", "paraphrase")], ("mean", "trained"),
                          psnr)
    assert rows == [row("a", "new", mean=1.0, trained=2.0),
                    row("b", "paraphrase", mean=3.0, trained=4.0)]


def test_wins_count_each_rival_and_all_of_them_at_once_per_held_out_kind():
    rows = [
        # above ridge, blend and mean
        row("a", "new", generated_examples=20.0, examples_ridge=19.0, examples_blend=18.0, mean=15.0,
            generated=16.0, text_ridge=17.0),
        # above blend and mean, below ridge
        row("b", "new", generated_examples=18.0, examples_ridge=19.0, examples_blend=17.0, mean=15.0,
            generated=16.0, text_ridge=15.5),
        # a tie with ridge counts as neither a win nor a loss, and not as above all
        row("c", "new", generated_examples=19.0, examples_ridge=19.0, examples_blend=17.0, mean=15.0,
            generated=14.0, text_ridge=15.0),
        row("d", "paraphrase", generated_examples=25.0, examples_ridge=22.0, examples_blend=24.0,
            mean=16.0, generated=20.0, text_ridge=19.0),
    ]
    summary = summarise_controls(rows)
    assert list(summary) == ["new", "paraphrase"]
    new = summary["new"]
    assert new["concepts"] == 3
    assert new["median"]["generated_examples"] == 19.0 and new["median"]["text_ridge"] == 15.5
    examples = new["wins"]["generated_examples"]
    assert examples["examples_ridge"] == {"wins": 1, "losses": 1, "p_value": 1.0}
    assert examples["examples_blend"] == {"wins": 3, "losses": 0, "p_value": 0.25}
    assert examples["above_all"] == 1
    text = new["wins"]["generated"]
    assert text["text_ridge"] == {"wins": 1, "losses": 2, "p_value": 1.0}
    assert text["mean"]["wins"] == 2 and text["above_all"] == 1
    assert summary["paraphrase"]["wins"]["generated_examples"]["above_all"] == 1


def test_a_text_only_generator_is_compared_with_the_text_controls_only():
    rows = [row("a", "new", mean=15.0, nearest=14.0, text_ridge=16.0, generated=17.0, trained=20.0)]
    summary = summarise_controls(rows)
    assert list(summary["new"]["wins"]) == ["generated"]
    assert summary["new"]["wins"]["generated"]["above_all"] == 1


def test_the_markdown_section_gives_medians_and_wins_per_held_out_kind():
    rows = [row("a", "new", mean=15.0, nearest=14.0, text_ridge=16.0, generated=17.0,
                trained=20.0),
            row("b", "paraphrase", mean=15.0, nearest=18.0, text_ridge=16.0, generated=14.0,
                trained=21.0)]
    text = "\n".join(controls_markdown(summarise_controls(rows), "val"))
    assert "(val split)" in text and "| init | new (1) | paraphrase (1) |" in text
    assert "| text_ridge | 16.00 | 16.00 |" in text
    assert "| generated vs text_ridge | 1 / 0 (p 1) | 0 / 1 (p 1) |" in text
    assert "| generated above text_ridge and mean | 1 of 1 | 0 of 1 |" in text
    assert controls_markdown({}, "val") == []


@pytest.mark.parametrize("kind", ["generated_examples", "generated"])
def test_a_win_needs_a_strictly_higher_start(kind):
    rival = "examples_ridge" if kind == "generated_examples" else "text_ridge"
    others = ({"examples_blend": 0.0} if kind == "generated_examples" else {})
    rows = [row("a", "new", **{kind: 18.0, rival: 18.0, "mean": 0.0}, **others)]
    wins = summarise_controls(rows)["new"]["wins"][kind]
    assert wins[rival] == {"wins": 0, "losses": 0, "p_value": None}
    assert wins["above_all"] == 0


def record(name, generated_examples, ridge, train_concepts=96):
    """A lever record over concepts a-d: the text + examples generator and the example ridge
    as given, every other control fixed."""
    rows = [row(c, "new", generated_examples=g, examples_ridge=r, examples_blend=15.0,
                examples_nearest=14.0, mean=14.0, nearest=13.0, generated=15.0,
                text_ridge=16.0, trained=22.0)
            for c, g, r in zip("abcd", generated_examples, ridge, strict=True)]
    summary = {"controls": {"split": "val", "by_kind": summarise_controls(rows)}}
    return {"name": name, "note": "a note", "overrides": ["x=1"], "train_seconds": 12.0,
            "train_concepts": train_concepts, "zero_shot": {"summary": summary}}


def test_the_lever_table_reads_each_configuration_on_one_held_out_kind(tmp_path):
    records = [record("behind", [17.0, 17.0, 19.0, 17.0], [18.0] * 4),
               record("ahead", [19.0, 19.0, 19.0, 17.0], [18.0] * 4)]
    markdown = controls_table(records, tmp_path).read_text()
    table = json.loads((tmp_path / "results.json").read_text())
    assert [r["name"] for r in table["configurations"]] == ["behind", "ahead"]
    assert table["configurations"][1]["wins"]["generated_examples"]["above_all"] == 3
    assert "new concepts of the val split" in markdown
    assert "| 3 / 1 (p 0.625) | 3 of 4 (75%) **met** |" in markdown
    assert "| 1 / 3 (p 0.625) | 1 of 4 (25%) |" in markdown
    assert (tmp_path / "results.png").stat().st_size > 0


def test_a_configurations_seeds_are_pooled_concept_by_concept():
    def lever(name, ridge_wins, ridge_losses, above_all, median):
        return {"name": name, "note": "", "overrides": [], "train_seconds": 10.0, "split": "val",
                "kind": "new", "concepts": 8, "median": {"generated_examples": median},
                "wins": {"generated_examples": {
                    "examples_ridge": {"wins": ridge_wins, "losses": ridge_losses},
                    "above_all": above_all}}}

    rows = [lever("preset", 6, 2, 5, 20.0), lever("preset_seed1", 5, 3, 4, 21.0),
            lever("preset_seed2", 7, 1, 6, 21.5), lever("prior", 1, 7, 0, 15.0)]
    assert [seed_family(r["name"]) for r in rows] == ["preset"] * 3 + ["prior"]
    (pooled,) = pooled_over_seeds(rows)  # one seed of `prior`: nothing to pool
    assert pooled["name"] == "preset (3 seeds)" and pooled["concepts"] == 24
    assert pooled["median"]["generated_examples"] == pytest.approx(20.8333, abs=1e-3)
    ridge = pooled["wins"]["generated_examples"]["examples_ridge"]
    assert (ridge["wins"], ridge["losses"]) == (18, 6)
    assert ridge["p_value"] == pytest.approx(0.0227, abs=1e-3)
    assert pooled["wins"]["generated_examples"]["above_all"] == 15
    rows[0]["median"]["text_examples_ridge"] = 19.0  # a control only seed 0 was scored with
    (pooled,) = pooled_over_seeds(rows)
    assert "text_examples_ridge" not in pooled["median"]


def test_the_scaling_curve_averages_seeds_per_training_set_size(tmp_path):
    records = [record("concepts_24", [17.0, 17.0, 17.0, 17.0], [18.0] * 4, train_concepts=24),
               record("concepts_96", [19.0, 19.0, 19.0, 17.0], [18.0] * 4),
               record("concepts_96_seed1", [19.0, 17.0, 17.0, 17.0], [20.0] * 4)]
    markdown = scaling_table(records, tmp_path).read_text()
    points = json.loads((tmp_path / "scaling.json").read_text())["points"]
    assert [(p["split"], p["train_concepts"], p["seeds"]) for p in points] == [
        ("val", 24, 1), ("val", 96, 2)]
    assert points[0]["above_all"]["generated_examples"] == 0.0
    assert points[1]["above_all"]["generated_examples"] == 0.375  # 3 of 4, then 0 of 4
    assert points[1]["median"]["examples_ridge"] == 19.0 and points[1]["median"]["trained"] == 22.0
    assert "| val | 96 | 2 | 4 | 18.00 | 19.00 |" in markdown and "| 38% |" in markdown
    assert (tmp_path / "scaling.png").stat().st_size > 0 and (tmp_path / "results.md").is_file()


def bench_results(generator_steps: float, ridge_steps: float) -> dict:
    """A fine-tuned record's bench results: the generator and the ridge map on 4 new concepts."""
    def paired(ratio):
        return {"median_ratio": ratio, "wins": 3, "losses": 1, "ties": 0, "concepts": 4,
                "p_value": 0.625}

    new = {"paired_vs_e2gan": {"denoised_examples_init": paired(generator_steps * 0.9),
                               "ridge_examples_init": paired(ridge_steps * 0.9)},
           "paired_steps_vs_e2gan": {"denoised_examples_init": paired(generator_steps),
                                     "ridge_examples_init": paired(ridge_steps)},
           "speedup_by_method": {"denoised_examples_init": 4 * generator_steps,
                                 "ridge_examples_init": 4 * ridge_steps}}
    def concept(generator, ridge):  # steps to target; None: missed within the 100 steps
        def run(steps):
            return {"steps_to_target": steps, "final_step": 100}
        return {"kind": "new", "seen": False,
                "methods": {"denoised_examples_init": run(generator), "ridge_examples_init": run(ridge)}}

    concepts = [concept(10, 20), concept(10, 40), concept(50, 25), concept(5, None),
                {"kind": "paraphrase", "seen": False, "methods": {}}]
    return {"summary": {"split": "test", "heldout_kinds": {"new": 4}, "by_kind": {"new": new}},
            "concepts": concepts}


def test_the_scaling_curve_tabulates_the_fine_tunes_of_the_points_that_ran_them(tmp_path):
    records = [record("concepts_24", [17.0] * 4, [18.0] * 4, train_concepts=24)
               | {"bench": bench_results(2.5, 1.5)},
               record("concepts_96", [19.0] * 4, [18.0] * 4),  # not fine-tuned: no speed-up row
               record("concepts_192", [19.0] * 4, [18.0] * 4, train_concepts=192)
               | {"bench": bench_results(1.5, 3.0)}]
    seed1 = bench_results(2.5, 3.0)  # a second seed of the 192 point; its ridge run is reused
    records.append(record("concepts_192_seed1", [19.0] * 4, [18.0] * 4, train_concepts=192)
                   | {"bench": seed1})
    markdown = scaling_table(records, tmp_path).read_text()
    speedups = json.loads((tmp_path / "scaling.json").read_text())["speedups"]
    assert [(p["train_concepts"], p["seeds"], p["concepts"]) for p in speedups] == [
        (24, 1, 4), (192, 2, 4)]
    assert speedups[1]["methods"]["ridge_examples_init"] == {
        "seeds": 1, "vs_e2gan_steps": 3.0, "wins_steps": [3, 1], "p_steps": 0.625,
        "vs_e2gan_seconds": pytest.approx(2.7), "vs_pix2pix": 12.0}
    generator = speedups[1]["methods"]["denoised_examples_init"]  # seeds 1.5 and 2.5: mean 2.0
    assert generator["seeds"] == 2 and generator["vs_e2gan_steps"] == pytest.approx(2.0)
    assert generator["wins_steps"] == [6, 2] and generator["vs_pix2pix"] == pytest.approx(8.0)
    head_to_head = speedups[1]["versus"]["denoised_examples_init"]["ridge_examples_init"]
    assert (head_to_head["wins"], head_to_head["losses"], head_to_head["concepts"]) == (6, 2, 8)
    assert head_to_head["median_ratio"] == pytest.approx(3.0)  # 20/10, 40/10, 0.5, 100/5, twice
    assert "| test | 192 | 3.00x (6-2, p = 0.29) |" in markdown
    assert "knn_examples_init" not in speedups[0]["methods"]  # only the inits it ran
    assert "| test | 24 | 1 | 4 | 2.50x (3-1) / 2.25x / 10.0x | 1.50x (3-1) / 1.35x / 6.0x |" \
        in markdown
    assert "| test | 192 | 2 | 4 | 2.00x (6-2) / 1.80x / 8.0x | 3.00x (3-1) / 2.70x / 12.0x (1 seed) |" \
        in markdown
    assert (tmp_path / "speedups.png").stat().st_size > 0
    assert "`ensemble_init` against" not in markdown  # no ensemble ran
    plain = tmp_path / "plain"
    scaling_table(records[1:2], plain)
    assert "speed-ups" not in (plain / "scaling.md").read_text()
    assert not (plain / "speedups.png").exists()


def test_the_ensemble_is_compared_with_the_controls_and_is_no_control_of_the_generator(tmp_path):
    """An ensemble that holds the generator's adapter gets its own concept-by-concept table
    against the controls (its own control, the controls' ensemble, included); the generator's
    table lists controls only, never the ensemble or the text-only generator."""
    results = bench_results(2.0, 1.5)
    new = results["concepts"][:4]  # the fifth is a paraphrase
    for concept, (ours, theirs) in zip(new, [(5, 10), (5, 20), (30, 20), (5, 50)], strict=True):
        concept["methods"]["ensemble_init"] = {"steps_to_target": ours, "final_step": 100}
        concept["methods"]["controls_ensemble_init"] = {"steps_to_target": theirs,
                                                        "final_step": 100}
        concept["methods"]["denoised_init"] = {"steps_to_target": 40, "final_step": 100}
    markdown = scaling_table([record("concepts_96", [19.0] * 4, [18.0] * 4)
                              | {"bench": results}], tmp_path).read_text()
    versus = json.loads((tmp_path / "scaling.json").read_text())["speedups"][0]["versus"]
    assert set(versus["denoised_examples_init"]) == {"ridge_examples_init",
                                                     "controls_ensemble_init"}
    mine = versus["ensemble_init"]["controls_ensemble_init"]
    assert (mine["wins"], mine["losses"]) == (3, 1)
    assert mine["median_ratio"] == pytest.approx(3.0)  # 2, 4, 2/3, 10
    assert "`ensemble_init` against each control" in markdown
