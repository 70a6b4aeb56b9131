"""The store's convergence report: which adapters stopped gaining before their last step."""

from __future__ import annotations

import pytest

from weightgen.weights.convergence import (
    convergence_markdown,
    convergence_rows,
    convergence_summary,
    last_third_gain,
)


def summary(concept: str, curve: dict[int, float], base: float = 15.0) -> dict:
    return {"concept": concept, "split": "train", "base_psnr": base, "seconds": 30.0,
            "checkpoints": {str(s): {"psnr": p, "ssim": 0.5} for s, p in curve.items()}}


def test_last_third_gain_measures_from_the_checkpoint_nearest_two_thirds():
    assert last_third_gain({50: 20.0, 100: 22.0, 150: 23.0, 200: 24.0, 250: 24.5,
                            300: 24.6}) == pytest.approx(0.6)  # 300 - 200
    assert last_third_gain({100: 20.0}) == 0.0


def test_rows_flag_adapters_still_gaining_and_the_summary_names_them():
    rows = convergence_rows([summary("flat", {100: 25.0, 200: 26.0, 300: 26.1}),
                             summary("rising", {100: 20.0, 200: 22.0, 300: 23.0})],
                            plateau_db=0.3)
    assert [r["plateau"] for r in rows] == [True, False]
    assert rows[0]["final_psnr"] == 26.1 and rows[0]["gain_over_base_db"] == pytest.approx(11.1)
    result = convergence_summary(rows, plateau_db=0.3)
    assert result["plateaued"] == 1 and result["still_gaining"] == ["rising"]
    assert result["median_final_psnr"] == pytest.approx(24.55)
    text = convergence_markdown(rows, result)
    assert "1 of 2 adapters" in text and "| rising | train | 15.00 | 20.00 | 22.00 | 23.00 |" in text
