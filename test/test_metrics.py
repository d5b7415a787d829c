"""evaluation.metrics on hand-built masks whose answers are known."""

import math

import numpy as np
import pytest

from evaluation.metrics import (
    METRICS,
    fit_runtime,
    frame_scores,
    mean_over_cases,
    relative_d98,
    score_sequence,
)


def square(shape=(40, 50), top=10, left=12, size=10) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    mask[top : top + size, left : left + size] = 1
    return mask


def stack(*frames: np.ndarray) -> np.ndarray:
    return np.stack(frames, axis=-1)


def test_identical_masks_score_perfectly():
    truth = stack(square(), square(top=12), square(top=14))
    scores = score_sequence(truth.copy(), truth, "abdomen")
    assert scores == {"dsc": 1.0, "hd95": 0.0, "masd": 0.0, "cd": 0.0, "rel_d98": 1.0}


def test_square_shifted_by_3_4_has_centre_distance_5():
    scores = frame_scores(square(top=13, left=16), square())
    assert scores.cd == 5.0
    assert scores.dsc == pytest.approx(2 * 7 * 6 / 200)  # overlap 7 x 6 of two 10 x 10 squares


def test_single_pixels_give_exact_surface_distances():
    pred, truth = np.zeros((20, 20), np.uint8), np.zeros((20, 20), np.uint8)
    pred[5, 5], truth[8, 9] = 1, 1
    assert frame_scores(pred, truth) == pytest.approx(
        frame_scores(pred, truth).__class__(dsc=0.0, hd95=5.0, masd=5.0, cd=5.0)
    )


def test_masd_is_directed_from_prediction_to_truth():
    outer, inner = square(top=10, left=10, size=11), square(top=13, left=13, size=5)
    # Every edge pixel of the inner square lies exactly 3 pixels from the outer square's edge.
    assert frame_scores(inner, outer).masd == 3.0
    assert frame_scores(outer, inner).masd > 3.0
    assert frame_scores(inner, outer).hd95 == frame_scores(outer, inner).hd95


def test_empty_prediction_gets_the_contract_penalties():
    truth = square(shape=(20, 30), top=5, left=5, size=6)
    scores = frame_scores(np.zeros_like(truth), truth)
    assert (scores.dsc, scores.hd95, scores.masd, scores.cd) == (0.0, 30.0, 30.0, 30.0)


def test_empty_prediction_enters_the_sequence_means():
    truth = stack(*[square(shape=(20, 30), top=5, left=5, size=6)] * 3)
    pred = truth.copy()
    pred[:, :, 2] = 0
    scores = score_sequence(pred, truth, "abdomen")
    assert (scores["dsc"], scores["hd95"], scores["masd"], scores["cd"]) == (0.5, 15.0, 15.0, 15.0)


def test_first_frame_is_excluded_from_every_mean():
    truth = stack(square(), square(), square())
    pred = truth.copy()
    pred[:, :, 0] = square(top=25, left=30)  # frame 0 completely wrong
    scores = score_sequence(pred, truth, "abdomen")
    assert (scores["dsc"], scores["hd95"], scores["masd"], scores["cd"]) == (1.0, 0.0, 0.0, 0.0)


def test_frames_with_empty_truth_are_dropped():
    truth = stack(square(), square(), np.zeros((40, 50), np.uint8))
    pred = stack(square(), square(), square(top=25))
    assert score_sequence(pred, truth, "abdomen")["dsc"] == 1.0
    with pytest.raises(ValueError, match="empty"):
        frame_scores(square(), np.zeros((40, 50), np.uint8))


def test_no_scored_frame_gives_nan_means():
    truth = stack(square(), np.zeros((40, 50), np.uint8))
    assert math.isnan(score_sequence(truth.copy(), truth, "abdomen")["dsc"])


def test_relative_d98_drops_with_motion_and_empty_frames():
    truth = stack(*[square(shape=(80, 80), top=30, left=30, size=12)] * 3)
    shifted = truth.copy()
    shifted[:, :, 1:] = square(shape=(80, 80), top=36, left=30, size=12)[..., None]
    assert relative_d98(shifted, truth, "abdomen") < 0.9
    half_empty = truth.copy()
    half_empty[:, :, 1:] = 0  # two of three frames deliver nothing
    assert relative_d98(half_empty, truth, "abdomen") == pytest.approx(1 / 3, abs=0.05)


def test_lung_uses_the_wider_dose_margin():
    truth = stack(*[square(shape=(80, 80), top=30, left=30, size=12)] * 2)
    shifted = truth.copy()
    shifted[:, :, 1] = square(shape=(80, 80), top=36, left=30, size=12)
    # The wider sigma-6 dose tolerates the same motion better.
    assert relative_d98(shifted, truth, "lung") > relative_d98(shifted, truth, "abdomen")


def test_fit_runtime_recovers_a_line():
    frames = [10, 20, 40]
    per_frame, loading = fit_runtime(frames, [2.0 + 0.1 * n for n in frames])
    assert per_frame == pytest.approx(0.1)
    assert loading == pytest.approx(2.0)


def test_fit_runtime_single_case_charges_everything_to_frames():
    assert fit_runtime([10], [3.0]) == (0.3, 0.0)
    with pytest.raises(ValueError):
        fit_runtime([], [])


def test_metric_table_names_every_score_once():
    truth = stack(square(), square(top=12))
    assert [m.key for m in METRICS] == list(score_sequence(truth, truth, "lung"))
    assert len({m.column for m in METRICS}) == len(METRICS)
    assert [m.official for m in METRICS] == ["DSC", "HD95", "MASD", "CD", "relative D98"]


def test_mean_over_cases_leaves_out_undefined_cases_and_counts_them():
    scores = [
        dict(dsc=0.5, hd95=2.0, masd=1.0, cd=1.0, rel_d98=math.nan),
        dict(dsc=0.7, hd95=4.0, masd=1.0, cd=3.0, rel_d98=0.9),
        dict(dsc=math.nan, hd95=math.nan, masd=math.nan, cd=math.nan, rel_d98=0.8),
    ]
    averaged = mean_over_cases(scores)
    assert averaged.cases == 3
    assert averaged.means["dsc"] == pytest.approx(0.6) and averaged.means["rel_d98"] == pytest.approx(0.85)
    assert averaged.left_out == {"dsc": 1, "hd95": 1, "masd": 1, "cd": 1, "rel_d98": 1}
    summary = averaged.summary()
    assert summary.startswith("dsc 0.600, hd95_px 3.00, masd_px 1.00, cd_px 2.000, rel_d98 0.850")
    assert "undefined, left out: dsc on 1, hd95_px on 1, masd_px on 1, cd_px on 1, rel_d98 on 1 of 3 cases" in summary


def test_mean_over_cases_of_a_metric_undefined_everywhere_is_nan():
    averaged = mean_over_cases([dict(dsc=math.nan, hd95=1.0, masd=1.0, cd=1.0, rel_d98=1.0)])
    assert math.isnan(averaged.means["dsc"]) and averaged.left_out["dsc"] == 1
    assert averaged.means["hd95"] == 1.0 and averaged.left_out["hd95"] == 0
    assert "(undefined" not in mean_over_cases([dict(dsc=1.0, hd95=1.0, masd=1.0, cd=1.0, rel_d98=1.0)]).summary()
