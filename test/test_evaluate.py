"""evaluation.evaluate: the one read-track-score path of the benchmark and the validation."""

import numpy as np
import pytest

from evaluation.evaluate import evaluate_case, score_output
from evaluation.metrics import score_sequence
from model.io import CaseError, read_labels
from model.trackers import build_tracker
from sequences.synthetic import write_translation_case


@pytest.fixture(scope="module")
def moving_case(tmp_path_factory):
    case_dir = tmp_path_factory.mktemp("cases") / "T_001"
    shifts = np.stack([np.arange(6) * 2.0, np.zeros(6)], axis=1)  # 2 px a frame along axis 0
    write_translation_case(case_dir, shifts_px=shifts, shape=(48, 40), n_frames=6, seed=3, radius_px=6)
    return case_dir


def test_evaluate_case_tracks_causally_and_scores_against_the_labels(moving_case):
    evaluated = evaluate_case(build_tracker("copy"), moving_case)
    truth = read_labels(moving_case)
    assert evaluated.case_id == "T_001" and np.array_equal(evaluated.truth, truth)
    copied = np.repeat(truth[:, :, :1], truth.shape[2], axis=2)
    assert np.array_equal(evaluated.result.masks, copied)  # copy: the first mask on every frame
    assert len(evaluated.result.frame_seconds) == truth.shape[2] - 1
    assert evaluated.scores == score_sequence(copied, truth, evaluated.case.info.scanned_region)
    assert evaluated.scores["cd"] > 4  # the target moved 10 px; copying it does not follow


def test_score_output_refuses_masks_of_another_shape(moving_case):
    truth = read_labels(moving_case)
    with pytest.raises(CaseError, match=r"T_001: labels of shape \(48, 40, 6\) differ from the output's"):
        score_output(truth[:, :, :5], moving_case, "abdomen")
    assert score_output(truth, moving_case, "abdomen")[1]["dsc"] == 1.0
