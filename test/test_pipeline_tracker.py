import dataclasses

import cv2
import numpy as np
import pytest
import torch

from model.device import cpu_has_native_bf16
from model.runner import run_tracker
from model.settings import setting_fields, value_parser
from model.trackers import SequenceInfo, build_tracker
from model.trackers.xmem import XMemSettings, XMemTracker, build_core
from model.weights import PROJECT_NAME, RESOURCES_DIR, WeightsError
from model.xmem.network.network import NetworkDims, XMem
from sequences.synthetic.translation import make_translation_sequence

SMALL = dict(crop_size=64, margin_mm="10", device="cpu")


def moving_blob(shape=(128, 96), n_frames=16, start=(30, 40), step=(4, 0), radius=8, seed=0):
    """A textured disk translated by `step` pixels per frame over a static textured background
    (only the target moves, and it is much brighter than anything else: see ThresholdCore).

    Returns frames (A, B, T) float32 and the true masks (A, B, T) bool.
    """
    rng = np.random.default_rng(seed)

    def texture(size, base, amplitude):
        noise = cv2.GaussianBlur(rng.normal(size=size).astype(np.float32), (0, 0), 1.5)
        return base + amplitude * noise / noise.std()

    background = texture(shape, 100.0, 15.0)
    side = 2 * radius + 1
    patch = texture((side, side), 300.0, 40.0)
    rows, cols = np.ogrid[:side, :side]
    disk = (rows - radius) ** 2 + (cols - radius) ** 2 <= radius**2
    frames = np.repeat(background[:, :, None], n_frames, axis=2)
    masks = np.zeros(frames.shape, bool)
    for t in range(n_frames):
        r0, c0 = start[0] + t * step[0] - radius, start[1] + t * step[1] - radius
        window = (slice(r0, r0 + side), slice(c0, c0 + side), t)
        frames[window] = np.where(disk, patch, frames[window])
        masks[window] = disk
    return frames, masks


def info_for(frames, frame_rate=4.0, region="abdomen"):
    return SequenceInfo(
        frame_shape=frames.shape[:2],
        n_frames=frames.shape[2],
        pixel_spacing_mm=(1.0, 1.0),
        frame_rate=frame_rate,
        field_strength=1.5,
        scanned_region=region,
    )


def dice(a, b):
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


class ThresholdCore:
    """A test double of InferenceCore that 'segments' whatever is bright in its input crop.

    It tracks perfectly whatever the weights, so crop, paste-back and re-centring can be
    checked end to end; it also records what the pipeline feeds it.
    """

    device = torch.device("cpu")
    precision = path = "fp32"

    def __init__(self):
        self.images, self.masks, self.commits, self.shifts = [], [], [], []

    def reset(self, expected_frames=None):
        assert expected_frames is None  # the length of the sequence must not reach the memory
        self.images, self.masks, self.commits, self.shifts = [], [], [], []

    def step(self, image, mask=None, end=False):
        self.images.append(image.clone())
        self.masks.append(None if mask is None else mask.clone())
        foreground = (image[0] > 3.0).float()  # the disk is ~7 standard deviations bright
        return torch.stack([1 - foreground, foreground])

    def predict(self, image):
        return self.step(image)

    def commit(self, accept=True):
        self.commits.append(accept)

    def shift_sensory(self, rows, cols):
        self.shifts.append((len(self.images) - 1, rows, cols))


def translating_phantom(n_frames, step=(3.0, 1.0), shape=(64, 80)):
    """The shared synthetic phantom moving by a known `step` pixels per frame."""
    shifts = np.outer(np.arange(n_frames), step)
    return make_translation_sequence(shifts, shape=shape, n_frames=n_frames, radius_px=6.0)


def random_xmem(seed=0):
    torch.manual_seed(seed)
    return XMem(NetworkDims()).eval()


@pytest.fixture(scope="module")
def random_network():
    """One randomly initialised XMem for the module's tests (building one takes a second or
    two); running it leaves it as it was."""
    return random_xmem()


class RecordingCore:
    """Wraps the real core and keeps every probability map it returns."""

    def __init__(self, core):
        self.core, self.outputs = core, []
        self.device, self.precision, self.path = core.device, core.precision, core.path

    def reset(self, expected_frames=None):
        self.outputs = []
        self.core.reset(expected_frames)

    def step(self, image, mask=None, end=False):
        out = self.core.step(image, mask, end)
        self.outputs.append(out.clone())
        return out

    def predict(self, image):
        out = self.core.predict(image)
        self.outputs.append(out.clone())
        return out

    def commit(self, accept=True):
        self.core.commit(accept)

    def shift_sensory(self, rows, cols):
        self.core.shift_sensory(rows, cols)


# --- settings ---------------------------------------------------------------------------


def test_settings_follow_the_cli_contract_and_reach_the_core():
    for f in setting_fields(XMemSettings):
        assert value_parser(f) and f.metadata.get("help"), f.name
        assert f.default is not dataclasses.MISSING
    config = XMemSettings(mem_every=3, top_k=7).network.inference_config()
    assert (config.mem_every, config.top_k) == (3, 7)
    assert config.enable_long_term_count_usage is True  # not decided from the sequence length


@pytest.mark.parametrize(
    "bad",
    [
        {"crop_size": 100},
        {"crop_size": "big"},
        {"grid_min": 100},
        {"grid_min": 400},
        {"grid_scale": 0.0},
        {"margin_mm": "wide"},
        {"margin_mm": "-1"},
        {"ema_weight": "0"},
        {"ema_weight": "1.5"},
        {"threshold": 1.0},
        {"trust_floor": 1.0},
        {"trust_floor": -0.1},
        {"area_jump_factor": 1.0},
        {"recentre_fraction": 0.0},
        {"mem_every": 0},
        {"device": "abacus"},
        {"precision": "fp8"},
        {"precision": "fp16", "device": "cpu"},
    ],
)
def test_settings_reject_bad_values(bad):
    with pytest.raises(ValueError):
        XMemSettings(**bad)


def test_building_by_name_without_weights_fails_with_the_weights_message(monkeypatch, tmp_path):
    monkeypatch.delenv("TRACKRAD_XMEM_WEIGHTS", raising=False)
    with pytest.raises(WeightsError):
        build_tracker("xmem", weights=str(tmp_path / "missing.pth"))


def test_auto_settings_resolve_from_metadata():
    frames, masks = moving_blob(n_frames=2)
    reports = {}
    for rate, region in ((8.0, "lung"), (1.0, "pelvis")):
        settings = XMemSettings(crop_size=64, device="cpu", ema_time_constant_s=0.1)
        tracker = XMemTracker(settings, core=ThresholdCore())
        tracker.start(frames[:, :, 0], masks[:, :, 0], info_for(frames, rate, region))
        reports[region] = tracker.settings()["resolved"]
    assert reports["lung"]["margin_mm"] == 30.0 and reports["pelvis"]["margin_mm"] == 20.0
    assert reports["lung"]["crop_box_size_px"][0] > reports["pelvis"]["crop_box_size_px"][0]
    assert reports["lung"]["ema_weight"] == pytest.approx(1 - np.exp(-1.25))
    assert reports["pelvis"]["ema_weight"] > 0.9999


@pytest.mark.parametrize(
    ("settings", "grid"),
    [
        ({"grid_scale": 4.0, "grid_min": 64}, 112),  # 4 x the 27-px window = 108 -> 112
        ({"grid_scale": 4.0, "grid_min": 160}, 160),  # the floor
        ({"grid_scale": 40.0, "grid_min": 64}, 384),  # the ceiling: the training scale
        ({"crop_size": 96, "grid_scale": 4.0}, 96),  # a fixed grid wins
    ],
)
def test_the_network_grid_follows_the_window_at_frame_0(settings, grid):
    frames, masks = moving_blob(n_frames=6)  # a 17-px disk in a 5-px margin: a 27-px window
    core = ThresholdCore()
    tracker = XMemTracker(XMemSettings(margin_mm="5", device="cpu", motion="off", **settings), core=core)
    result = run_tracker(tracker, frames, masks[:, :, 0], info_for(frames))
    assert tracker.settings()["resolved"]["crop_box_size_px"] == [27, 27]
    assert tracker.settings()["resolved"]["grid_px"] == grid
    assert {tuple(image.shape[-2:]) for image in core.images} == {(grid, grid)}  # one grid all along
    assert np.mean([dice(result.masks[:, :, t] > 0, masks[:, :, t]) for t in range(1, 6)]) > 0.9


# --- the pipeline around a core that tracks ----------------------------------------------


def test_crop_follows_a_target_moving_60_pixels_and_masks_come_back_in_place():
    frames, truth = moving_blob()  # 15 steps of 4 px = 60 px
    core = ThresholdCore()
    # Without motion parts: the window follows the previous output.
    tracker = XMemTracker(XMemSettings(**SMALL, ema_weight="1", motion="off"), core=core)
    result = run_tracker(tracker, frames, truth[:, :, 0], info_for(frames))

    assert result.masks.shape == frames.shape and result.masks.dtype == np.uint8
    for t in range(1, frames.shape[2]):
        assert dice(result.masks[:, :, t] > 0, truth[:, :, t]) > 0.9, t
        # The network saw the whole target: all of it inside the crop it was given.
        assert core.images[t][0].gt(3.0).sum() > 0.9 * (np.pi * 8**2) * (64 / 37) ** 2
    assert tracker.events()["crop_recentred"] >= 2
    assert tracker.events()["fallback_mask_vanished"] == 0
    # Every re-centring moved the sensory memory with the content: the disk moves down
    # (axis 0), so the window follows down and the content moves up on the network grid, by
    # the disk's displacement since the last move scaled to the grid.
    assert len(core.shifts) == tracker.events()["crop_recentred"]
    scale = 64 / 37  # network grid / window side (37 px with the 10 mm margin here)
    last = 0
    for t, rows, cols in core.shifts:
        assert rows == pytest.approx(-4 * (t - last) * scale, abs=1.5 * scale)
        assert cols == pytest.approx(0.0, abs=1.5 * scale)
        last = t
    # Frame 0: the first mask, cropped to the network grid, is the memory's mask.
    assert core.masks[0].shape == (64, 64) and core.masks[0].sum() > 0
    assert all(m is None for m in core.masks[1:])
    assert all(image.shape == (3, 64, 64) for image in core.images)


def test_lost_target_keeps_the_last_good_mask():
    frames, truth = moving_blob(n_frames=6)
    frames[:, :, 3:] = frames[:, :, :1].mean()  # the image goes flat: nothing to segment
    core = ThresholdCore()
    tracker = XMemTracker(XMemSettings(**SMALL, motion="off"), core=core)
    result = run_tracker(tracker, frames, truth[:, :, 0], info_for(frames))
    assert all(result.masks[:, :, t].any() for t in range(6))
    assert np.array_equal(result.masks[:, :, 5], result.masks[:, :, 2])
    assert tracker.events()["fallback_mask_vanished"] == 3
    assert result.events == {}  # the tracker, not the runner, handled it
    # The rejected frames (3, 4, 5) are kept out of the memory; the good ones are offered.
    assert core.commits == [True, True, False, False, False]


# --- invariants with a randomly initialised XMem -----------------------------------------


def test_random_network_output_shape_and_never_empty(random_network):
    sequence = translating_phantom(5)
    frames = sequence.frames
    tracker = XMemTracker.from_network(random_network, XMemSettings(**SMALL, mem_every=2))
    result = run_tracker(tracker, frames, sequence.masks[:, :, 0], sequence.info)
    assert result.masks.shape == frames.shape
    assert set(np.unique(result.masks)) <= {0, 1}
    assert all(result.masks[:, :, t].any() for t in range(frames.shape[2]))
    # No fallback of the runner's; random weights may make the post-processing hold the first
    # mask, which the runner counts as first_mask_repeated.
    assert set(result.events) <= {"first_mask_repeated"}
    assert len(result.frame_seconds) == frames.shape[2] - 1
    assert tracker.describe()["device"].startswith("cpu")
    assert tracker.describe()["precision"] == ("bf16" if cpu_has_native_bf16() else "fp32")  # auto on the CPU


# The causality tests run the network in eager mode: the frozen graphs (the CPU's fast path) are
# stateless functions of their inputs, traced anew for every run here (about a second each), and
# test_xmem_core.py checks that they compute what eager mode does.
CAUSAL = dict(SMALL, mem_every=2, frozen_graphs=False)


def test_causal_frame_t_depends_on_frames_up_to_t_only(random_network):
    sequence = translating_phantom(7)
    frames, first_mask = sequence.frames, sequence.masks[:, :, 0]
    network = random_network
    settings = XMemSettings(**CAUSAL)

    def run(n):
        core = RecordingCore(build_core(network, settings))
        tracker = XMemTracker(settings, core=core)
        part = np.ascontiguousarray(frames[:, :, :n])
        info = dataclasses.replace(sequence.info, n_frames=n)
        return run_tracker(tracker, part, first_mask, info).masks, core.outputs

    full_masks, full_probs = run(7)
    # Non-trivial: the memory changes the network's output from frame to frame.
    assert not torch.equal(full_probs[1], full_probs[2])
    for n in (3, 5):
        masks, probs = run(n)
        assert np.array_equal(masks, full_masks[:, :, :n])
        assert all(torch.equal(a, b) for a, b in zip(probs, full_probs[:n], strict=True))


def test_causal_with_smoothing_component_choice_and_crop_following_in_play():
    # ThresholdCore tracks, so every post-processing stage and the moving crop carry state from
    # frame to frame (with random weights every frame would be a fallback to the first mask).
    frames, truth = moving_blob()
    settings = XMemSettings(**SMALL, motion="off", ema_time_constant_s=0.1)  # EMA weight 0.92 at 4 frames/s

    def run(n):
        tracker = XMemTracker(settings, core=ThresholdCore())
        part = np.ascontiguousarray(frames[:, :, :n])
        result = run_tracker(tracker, part, truth[:, :, 0], info_for(part))
        return result.masks, tracker.events()

    full, events = run(16)
    assert events["crop_recentred"] >= 2 and not np.array_equal(full[:, :, 8], full[:, :, 0])
    for n in (4, 9):
        masks, _ = run(n)
        assert np.array_equal(masks, full[:, :, :n])


SHIPPED_WEIGHTS = RESOURCES_DIR / PROJECT_NAME


# --- tracking quality with shipped weights ----------------------------------------------


@pytest.mark.slow  # the default settings: a 224 px grid, the frozen graphs traced on the first frames
def test_tracks_a_translating_textured_target_with_shipped_weights():
    sequence = translating_phantom(7, step=(7.0, 2.0), shape=(128, 112))  # 42 px along axis 0
    tracker = build_tracker("xmem", device="cpu", weights=str(SHIPPED_WEIGHTS))
    result = run_tracker(tracker, sequence.frames, sequence.masks[:, :, 0], sequence.info)
    truth = sequence.masks > 0
    scores = [dice(result.masks[:, :, t] > 0, truth[:, :, t]) for t in range(1, truth.shape[2])]
    assert min(scores) > 0.8, scores


# --- motion parts: flow-placed crop, prior, slow-failure guards, flow fallback --------------

ONLY_CROP = dict(
    motion="first-frame",
    motion_crop=True,
    motion_prior="off",
    trust_floor=0.0,
    align_max_px=0.0,
    first_area_factor=0.0,
    min_flow_dice=0.0,
    max_flow_shift=0.0,
    flow_fallback=False,
)
ALL_MOTION = dict(
    motion="first-frame",
    motion_crop=True,
    motion_prior="confidence",
    trust_floor=0.8,
    align_max_px=2.0,
    first_area_factor=1.5,
    min_flow_dice=0.5,
    max_flow_shift=0.1,
    flow_fallback=True,
)


class BlankingCore(ThresholdCore):
    """ThresholdCore that sees nothing on the frames (counted from 1) in `blank`."""

    def __init__(self, blank):
        super().__init__()
        self.blank, self.frame = set(blank), 0

    def predict(self, image):
        self.frame += 1
        out = self.step(image)
        if self.frame in self.blank:
            out = torch.stack([torch.ones_like(out[0]), torch.zeros_like(out[1])])
        return out


class GrowingCore(ThresholdCore):
    """ThresholdCore whose mask grows by 2 % of the target's area a frame, leaking to one side
    over the neighbouring tissue (a band to the right of the target), like a slow failure."""

    def __init__(self):
        super().__init__()
        self.frame = 0

    def predict(self, image):
        self.frame += 1
        out = self.step(image)
        target = out[1] > 0.5
        rows = torch.nonzero(target.any(dim=1)).flatten()
        cols = torch.nonzero(target.any(dim=0)).flatten()
        height = int(rows.max() - rows.min() + 1)
        width = round((1.02**self.frame - 1.0) * int(target.sum()) / height)
        leak = torch.zeros_like(target)
        leak[rows.min() : rows.max() + 1, cols.max() + 1 : cols.max() + 1 + width] = True
        grown = (target | leak).float()
        return torch.stack([1 - grown, grown])


class SpreadingCore(ThresholdCore):
    """ThresholdCore whose mask is always the target grown by a ring of `ring` pixels: a
    confident network whose masks spread over the surrounding tissue on every frame, with the
    centroid in place (so the centroid guard does not fire), as the project's weights do on
    images unlike their training phantom."""

    def __init__(self, ring):
        super().__init__()
        self.kernel = np.ones((2 * ring + 1, 2 * ring + 1), np.uint8)

    def predict(self, image):
        target = self.step(image)[1].numpy().astype(np.uint8)
        grown = torch.from_numpy(cv2.dilate(target, self.kernel).astype(np.float32))
        return torch.stack([1 - grown, grown])


def _centroid(mask):
    return np.array(np.nonzero(mask)).mean(axis=1)


def moving_scene(n_frames, step, radius=8, shape=(128, 96)):
    """moving_blob's first frame with everything in it moving by `step` pixels a frame (as
    breathing moves the organs around a tumour), so the flow has a true answer to find."""
    frames, truth = moving_blob(shape=shape, n_frames=1, radius=radius)
    moves = [(t * step[0], t * step[1]) for t in range(n_frames)]
    frames = np.stack([np.roll(frames[:, :, 0], m, axis=(0, 1)) for m in moves], axis=2)
    truth = np.stack([np.roll(truth[:, :, 0], m, axis=(0, 1)) for m in moves], axis=2)
    return frames, truth


def test_flow_placed_crop_keeps_a_translating_target_centred():
    sequence = translating_phantom(12, step=(2.6, -1.3), shape=(112, 112))  # 29 px along axis 0
    core = ThresholdCore()
    settings = XMemSettings(**SMALL, **ONLY_CROP, recentre_fraction=0.05)
    tracker = XMemTracker(settings, core=core)
    tracker.start(sequence.frames[:, :, 0], sequence.masks[:, :, 0] > 0, sequence.info)
    start = np.array(tracker._window.box.centre) - sequence.motion_px[0]
    for t in range(1, 12):
        tracker.track(sequence.frames[:, :, t])
        # The crop this frame's network input came from, placed before the network ran.
        placed = np.array(tracker._window.box.centre) - start
        assert np.abs(placed - sequence.motion_px[t]).max() <= 2.0, (t, placed, sequence.motion_px[t])
    assert tracker.events()["crop_recentred"] >= 5


def test_rejected_frames_fall_back_to_the_flow_mask_that_moves_with_the_target():
    frames, truth = moving_scene(12, step=(3, 1))
    blank = range(4, 9)
    core = BlankingCore(blank)
    tracker = XMemTracker(XMemSettings(**SMALL, **{**ONLY_CROP, "flow_fallback": True}, ema_weight="1"), core=core)
    result = run_tracker(tracker, frames, truth[:, :, 0], info_for(frames))
    for t in blank:
        # Not the frozen frame-3 mask: the flow-propagated mask, where the target now is.
        assert np.abs(_centroid(result.masks[:, :, t]) - _centroid(truth[:, :, t])).max() <= 1.0, t
        assert dice(result.masks[:, :, t] > 0, truth[:, :, t]) > 0.85
    assert tracker.events()["fallback_output_flow_mask"] == len(blank)
    # The rejected frames stay out of the memory.
    assert core.commits == [t not in blank for t in range(1, 12)]
    # Without the flow fallback the last accepted mask is repeated (the old behaviour).
    frozen = XMemTracker(XMemSettings(**SMALL, ema_weight="1", motion="off"), core=BlankingCore(blank))
    old = run_tracker(frozen, frames, truth[:, :, 0], info_for(frames))
    assert np.array_equal(old.masks[:, :, 8], old.masks[:, :, 3])


def test_a_slowly_growing_prediction_is_rejected_and_the_output_keeps_the_true_area():
    # A radius-12 target: 2 % of its area is about one pixel column of leak every two frames.
    frames, truth = moving_scene(20, step=(2, 1), radius=12, shape=(160, 128))
    core = GrowingCore()
    tracker = XMemTracker(XMemSettings(**SMALL), core=core)  # the shipped motion defaults
    result = run_tracker(tracker, frames, truth[:, :, 0], info_for(frames))
    # Caught once the leak lasts (commits[t - 1] is frame t): the trust the network earned on
    # its first frames gives it some leeway, which a lasting disagreement with a credible flow
    # uses up; from then on, and for as long as it grows, it stays out of the memory.
    assert not any(core.commits[11:]), core.commits
    true_area = truth[:, :, 0].sum()
    areas = result.masks[:, :, 1:].sum(axis=(0, 1))
    assert np.all(np.abs(areas / true_area - 1.0) <= 0.25), areas / true_area
    assert np.all(np.abs(areas[10:] / true_area - 1.0) <= 0.02), areas / true_area
    # Without the motion parts nothing catches it: every frame is memorised and the mask grows.
    alone = GrowingCore()
    grown = run_tracker(
        XMemTracker(XMemSettings(**SMALL, motion="off"), core=alone), frames, truth[:, :, 0], info_for(frames)
    )
    assert all(alone.commits) and grown.masks[:, :, -1].sum() > 1.3 * true_area


def test_network_trust_hands_the_fusion_to_the_flow_when_the_network_keeps_straying():
    frames, truth = moving_scene(14, step=(2, 1), radius=8)
    fused = dict(SMALL, ema_weight="1", motion_prior="confidence", max_flow_shift=0.1)

    def run(trust_floor):
        tracker = XMemTracker(XMemSettings(**fused, trust_floor=trust_floor), core=SpreadingCore(ring=3))
        masks = run_tracker(tracker, frames, truth[:, :, 0], info_for(frames)).masks
        return [dice(masks[:, :, t] > 0, truth[:, :, t]) for t in range(1, 14)], tracker.events()

    # Full trust: the confident spreading network outvotes the prior around the target.
    scores, events = run(0.0)
    assert np.mean(scores) < 0.85 and events["network_untrusted"] == 0  # about 0.80
    # Its masks agree with the flow mask at DSC ~0.6, under the floor: the prior decides.
    scores, events = run(0.8)
    assert min(scores) > 0.9 and events["network_untrusted"] == 13


def test_causal_with_every_motion_part_on(random_network):
    sequence = translating_phantom(7)
    frames, first_mask = sequence.frames, sequence.masks[:, :, 0]
    network = random_network
    settings = XMemSettings(**CAUSAL, **ALL_MOTION)

    def run(n):
        core = RecordingCore(build_core(network, settings))
        tracker = XMemTracker(settings, core=core)
        part = np.ascontiguousarray(frames[:, :, :n])
        info = dataclasses.replace(sequence.info, n_frames=n)
        return run_tracker(tracker, part, first_mask, info).masks, core.outputs, tracker.settings()

    full_masks, full_probs, report = run(7)
    assert report["resolved"]["motion_parts"] == ["crop", "prior", "trust", "align", "guards", "fallback"]
    assert not torch.equal(full_probs[1], full_probs[2])
    for n in (3, 5):
        masks, probs, _ = run(n)
        assert np.array_equal(masks, full_masks[:, :, :n])
        assert all(torch.equal(a, b) for a, b in zip(probs, full_probs[:n], strict=True))


def test_causal_with_motion_parts_and_a_tracking_core():
    # ThresholdCore tracks, so the flow-placed crop, the fused prior and the guards all carry
    # state from frame to frame.
    frames, truth = moving_blob()
    settings = XMemSettings(**SMALL, **{**ALL_MOTION, "motion": "previous-frame"})

    def run(n):
        tracker = XMemTracker(settings, core=ThresholdCore())
        part = np.ascontiguousarray(frames[:, :, :n])
        return run_tracker(tracker, part, truth[:, :, 0], info_for(part)).masks, tracker.events()

    full, events = run(16)
    assert events["crop_recentred"] >= 2 and not np.array_equal(full[:, :, 8], full[:, :, 0])
    for n in (4, 9):
        assert np.array_equal(run(n)[0], full[:, :, :n])
