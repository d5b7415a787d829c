import math

import numpy as np
import pytest

from model.pipeline.masks import select_component
from model.pipeline.postprocess import PostProcessor, ema_weight_for_frame_rate

NO_FALLBACKS = dict.fromkeys(PostProcessor(np.ones((2, 2), bool), 1.0, 0.5, 2.0, 3).events(), 0)


def square(shape, top_left, side, value=1.0):
    out = np.zeros(shape, np.float32)
    out[top_left[0] : top_left[0] + side, top_left[1] : top_left[1] + side] = value
    return out


def test_ema_weight_follows_the_time_constant():
    assert ema_weight_for_frame_rate(8.0, 0.1) == pytest.approx(1 - math.exp(-1.25))
    assert ema_weight_for_frame_rate(1.0, 0.1) > 0.9999  # slow cine: no smoothing
    assert ema_weight_for_frame_rate(8.0, 0.1) < ema_weight_for_frame_rate(4.0, 0.1)
    assert ema_weight_for_frame_rate(8.0, 0.0) == 1.0


def test_ema_averages_probabilities_causally():
    shape = (20, 20)
    first = square(shape, (5, 5), 6) > 0
    post = PostProcessor(first, ema_weight=0.4, threshold=0.5, area_jump_factor=10.0, patience=3)
    # 0.7 on the square: ema = 0.4 * 0.7 + 0.6 * 1 = 0.88 there.
    assert np.array_equal(post(square(shape, (5, 5), 6, 0.7)), first)
    left_half = np.zeros(shape, np.float32)
    left_half[5:11, 5:8] = 1.0
    # The right half loses its probability: ema there = 0.6 * 0.88 = 0.528, still above 0.5 ...
    assert np.array_equal(post(left_half), first)
    # ... and one frame later 0.6 * 0.528 = 0.317: only the left half is left.
    assert np.array_equal(post(left_half), left_half > 0)


def test_no_smoothing_with_weight_one_and_strict_configurable_threshold():
    shape = (12, 12)
    first = square(shape, (2, 2), 4) > 0
    post = PostProcessor(first, ema_weight=1.0, threshold=0.6, area_jump_factor=10.0, patience=3)
    probability = square(shape, (2, 2), 4, 0.6)  # exactly at the threshold: not foreground
    probability[2:4, 2:6] = 0.61
    assert np.array_equal(post(probability), probability > 0.6)


def test_component_overlapping_previous_mask_wins_over_larger_one():
    shape = (30, 30)
    previous = square(shape, (2, 2), 5) > 0
    binary = (square(shape, (3, 3), 4) + square(shape, (15, 15), 10)) > 0
    assert np.array_equal(select_component(binary, previous), square(shape, (3, 3), 4) > 0)


def test_largest_component_wins_without_overlap():
    shape = (30, 30)
    previous = square(shape, (0, 25), 3) > 0
    binary = (square(shape, (3, 3), 4) + square(shape, (15, 15), 10)) > 0
    assert np.array_equal(select_component(binary, previous), square(shape, (15, 15), 10) > 0)


def test_components_are_8_connected():
    binary = np.zeros((6, 6), bool)
    binary[1, 1] = binary[2, 2] = binary[5, 5] = True
    chosen = select_component(binary, previous=np.zeros((6, 6), bool))
    assert chosen[1, 1] and chosen[2, 2] and not chosen[5, 5]


def test_vanished_mask_keeps_last_good_and_counts():
    shape = (20, 20)
    first = square(shape, (5, 5), 6) > 0
    post = PostProcessor(first, ema_weight=1.0, threshold=0.5, area_jump_factor=2.0, patience=3)
    moved = square(shape, (6, 6), 6)
    assert np.array_equal(post(moved), moved > 0)
    out = post(np.zeros(shape, np.float32))
    assert np.array_equal(out, moved > 0) and out.any()
    assert post.events() == {**NO_FALLBACKS, "fallback_mask_vanished": 1, "fallback_area_jump": 0}


def test_area_jump_beyond_factor_keeps_last_good_and_counts():
    shape = (40, 40)
    first = square(shape, (10, 10), 6) > 0  # 36 pixels
    post = PostProcessor(first, ema_weight=1.0, threshold=0.5, area_jump_factor=2.0, patience=3)
    assert np.array_equal(post(square(shape, (10, 10), 13)), first)  # 169 > 72
    assert np.array_equal(post(square(shape, (10, 10), 4)), first)  # 16 < 18
    grown = square(shape, (10, 10), 8)  # 64 <= 72: accepted
    assert np.array_equal(post(grown), grown > 0)
    assert post.events() == {**NO_FALLBACKS, "fallback_mask_vanished": 0, "fallback_area_jump": 2}


def test_a_lasting_area_change_is_accepted_after_the_patience_a_spike_is_not():
    shape = (40, 40)
    first = square(shape, (10, 10), 6) > 0  # 36 pixels
    post = PostProcessor(first, ema_weight=1.0, threshold=0.5, area_jump_factor=2.0, patience=3)
    spike, grown = square(shape, (10, 10), 13), square(shape, (10, 10), 12)  # 169, 144 px
    assert np.array_equal(post(spike), first)  # a one-frame spike...
    moved = square(shape, (11, 10), 6)
    assert np.array_equal(post(moved), moved > 0)  # ...then back to normal: the streak resets
    assert np.array_equal(post(grown), moved > 0)  # lasting growth: rejected twice,
    assert np.array_equal(post(spike), moved > 0)  # (169 agrees with 144 within 2x)
    assert np.array_equal(post(grown), grown > 0)  # then accepted on the third frame
    assert np.array_equal(post(spike), spike > 0)  # and the new size is the reference now
    assert post.events() == {**NO_FALLBACKS, "fallback_mask_vanished": 0, "fallback_area_jump": 3}
