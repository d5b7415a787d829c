"""The TrackRAD2025 metrics, as the challenge's evaluation computes them: per frame DSC, HD95,
MASD and centre distance (pixels, frame 0 excluded), per sequence the relative D98, over cases
one averaging rule (a case whose metric is undefined is left out and counted), and the runtime.

Arrays are (W, H, T), time last, 0/1 valued. Entry points: frame_scores, score_sequence,
relative_d98, mean_over_cases, fit_runtime, METRICS (names and formats).
See docs/contract.md, "The metrics".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

DOSE_MARGIN_ITERATIONS = 3  # 3-pixel margin, 4-connected cross, 3 dilation iterations
DOSE_THRESHOLD = 0.25  # pseudo-dose threshold after Gaussian smoothing (contract)
DOSE_SIGMA_LUNG = 6.0
DOSE_SIGMA_DEFAULT = 4.0
DVH_BIN_WIDTH = 0.1  # the challenge's dose-volume histogram bins
_CROSS = ndimage.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class Metric:
    """One per-sequence metric as every table of the project shows it."""

    key: str  # the key in score_sequence's result
    column: str  # column title in tables and CSV files (units where they apply)
    official: str  # the challenge's name
    format: str  # format spec of one value


METRICS = (
    Metric("dsc", "dsc", "DSC", ".3f"),
    Metric("hd95", "hd95_px", "HD95", ".2f"),
    Metric("masd", "masd_px", "MASD", ".2f"),
    Metric("cd", "cd_px", "CD", ".3f"),  # sub-pixel trackers differ by hundredths
    Metric("rel_d98", "rel_d98", "relative D98", ".3f"),
)


@dataclass(frozen=True)
class FrameScores:
    dsc: float
    hd95: float
    masd: float
    cd: float


def frame_scores(pred: np.ndarray, truth: np.ndarray) -> FrameScores:
    """Scores of one 2-D frame; `truth` must be non-empty. An empty `pred` gets the penalties."""
    pred, truth = pred > 0, truth > 0
    if pred.shape != truth.shape or pred.ndim != 2:
        raise ValueError(f"need two 2-D masks of one shape, got {pred.shape} and {truth.shape}")
    if not truth.any():
        raise ValueError("ground truth frame is empty; such frames are not scored")
    if not pred.any():
        penalty = float(max(pred.shape))
        return FrameScores(dsc=0.0, hd95=penalty, masd=penalty, cd=penalty)
    dsc = 2.0 * np.count_nonzero(pred & truth) / (np.count_nonzero(pred) + np.count_nonzero(truth))
    pred_edge, truth_edge = _edges(pred), _edges(truth)
    # Distance of every pixel to the nearest edge pixel of the other mask.
    to_truth = ndimage.distance_transform_edt(~truth_edge)[pred_edge]
    to_pred = ndimage.distance_transform_edt(~pred_edge)[truth_edge]
    hd95 = max(np.quantile(to_truth, 0.95), np.quantile(to_pred, 0.95))
    cd = math.dist(ndimage.center_of_mass(pred), ndimage.center_of_mass(truth))
    return FrameScores(dsc=float(dsc), hd95=float(hd95), masd=float(to_truth.mean()), cd=cd)


def dice_per_frame(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(T,) DSC of every frame of two (W, H, T) masks, NaN where the truth is empty (no
    penalties: for plots over time, not the challenge's means)."""
    pred, truth = pred > 0, truth > 0
    overlap = np.count_nonzero(pred & truth, axis=(0, 1))
    sizes = np.count_nonzero(pred, axis=(0, 1)) + np.count_nonzero(truth, axis=(0, 1))
    dsc = 2.0 * overlap / np.maximum(sizes, 1)
    return np.where(np.count_nonzero(truth, axis=(0, 1)) > 0, dsc, np.nan)


def score_sequence(pred: np.ndarray, truth: np.ndarray, scanned_region: str) -> dict[str, float]:
    """Per-sequence means (frames 1..T-1 with non-empty truth) and the relative D98.

    Keys: dsc, hd95, masd, cd, rel_d98. Means are NaN when no later frame has a ground truth.
    """
    if pred.shape != truth.shape or pred.ndim != 3:
        raise ValueError(f"need two (W, H, T) arrays of one shape, got {pred.shape} and {truth.shape}")
    per_frame = [frame_scores(pred[:, :, t], truth[:, :, t]) for t in range(1, truth.shape[2]) if truth[:, :, t].any()]
    means = {
        key: float(np.mean([getattr(s, key) for s in per_frame])) if per_frame else math.nan
        for key in ("dsc", "hd95", "masd", "cd")
    }
    means["rel_d98"] = relative_d98(pred, truth, scanned_region)
    return means


@dataclass(frozen=True)
class CaseMeans:
    """Means of METRICS over cases, and how many cases each mean left out."""

    cases: int
    means: dict[str, float]  # metric key -> mean over the cases where it is defined (NaN if none)
    left_out: dict[str, int]  # metric key -> cases whose value was undefined (NaN)

    def summary(self) -> str:
        """One line: each metric's column title and formatted mean, then any left-out counts."""
        text = ", ".join(f"{m.column} {self.means[m.key]:{m.format}}" for m in METRICS)
        undefined = [f"{m.column} on {self.left_out[m.key]}" for m in METRICS if self.left_out[m.key]]
        if undefined:
            text += f" (undefined, left out: {', '.join(undefined)} of {self.cases} cases)"
        return text


def mean_over_cases(scores: Sequence[Mapping[str, float]]) -> CaseMeans:
    """Average per-case scores (score_sequence results) over the cases, metric by metric.

    The one rule for every table: a case whose metric is undefined (NaN, e.g. no later frame
    has a ground truth, or a target too small for any dose) is left out of that metric's mean
    and counted in `left_out`; a metric undefined on every case has the mean NaN.
    """
    means, left_out = {}, {}
    for metric in METRICS:
        values = [float(s[metric.key]) for s in scores]
        defined = [v for v in values if not math.isnan(v)]
        means[metric.key] = float(np.mean(defined)) if defined else math.nan
        left_out[metric.key] = len(values) - len(defined)
    return CaseMeans(len(scores), means, left_out)


def relative_d98(pred: np.ndarray, truth: np.ndarray, scanned_region: str) -> float:
    """D98 of the first true mask under the motion-averaged pseudo dose / D98 without motion.

    The pseudo dose is the first non-empty true mask dilated by the margin, Gaussian-smoothed
    (sigma 6 for "lung", else 4) and thresholded. For every frame with a ground truth it is
    shifted (cubic spline, nearest edge) by predicted minus true centre of mass; the shifted
    doses are averaged. NaN when the unshifted D98 is 0 (a target too small for any dose).
    """
    kept = [t for t in range(truth.shape[2]) if truth[:, :, t].any()]
    if not kept:
        return math.nan
    target = truth[:, :, kept[0]] > 0
    dose = _pseudo_dose(target, DOSE_SIGMA_LUNG if scanned_region == "lung" else DOSE_SIGMA_DEFAULT)
    delivered = np.zeros(dose.shape, dtype=np.float64)
    for t in kept:
        if not pred[:, :, t].any():
            continue  # an empty prediction delivers nothing to the target
        shift = np.subtract(ndimage.center_of_mass(pred[:, :, t] > 0), ndimage.center_of_mass(truth[:, :, t] > 0))
        delivered += ndimage.shift(dose, shift, order=3, mode="nearest")
    delivered /= len(kept)
    planned = d_percent(dose, target, 98)
    return math.nan if planned == 0 else d_percent(delivered, target, 98) / planned


def d_percent(dose: np.ndarray, target: np.ndarray, percent: float) -> float:
    """Dose received by `percent` % of the target, read off a cumulative DVH binned as the
    challenge bins it (width 0.1 up to the dose grid's maximum, linear interpolation)."""
    top = float(dose.max())
    edges = np.arange(-DVH_BIN_WIDTH / 2, top + DVH_BIN_WIDTH, DVH_BIN_WIDTH)
    counts, edges = np.histogram(dose[target], bins=edges)
    centres = np.round((edges[1:] + edges[:-1]) / 2, 10)
    volume = np.cumsum(counts[::-1])[::-1].astype(np.float64)  # fraction receiving >= bin
    if volume[0] == 0 or volume[0] == volume.sum():
        return 0.0  # no dose reaches the target beyond the first bin
    volume /= volume[0]
    return float(np.interp(percent / 100, volume[::-1], centres[::-1]))


def fit_runtime(frame_counts: Sequence[int], seconds: Sequence[float]) -> tuple[float, float]:
    """(seconds per frame, loading seconds) from a straight line through (frames, seconds).

    With fewer than two distinct frame counts the line is undetermined; then all time is
    attributed to frames (loading 0), which over-estimates time per frame, never under.
    """
    if len(frame_counts) != len(seconds) or not frame_counts:
        raise ValueError("need one runtime per frame count, at least one case")
    counts = np.asarray(frame_counts, dtype=np.float64)
    times = np.asarray(seconds, dtype=np.float64)
    if len(np.unique(counts)) < 2:
        return float(times.sum() / counts.sum()), 0.0
    slope, intercept = np.polyfit(counts, times, 1)
    return float(slope), float(intercept)


def _pseudo_dose(target: np.ndarray, sigma: float) -> np.ndarray:
    margin = ndimage.binary_dilation(target, structure=_CROSS, iterations=DOSE_MARGIN_ITERATIONS)
    smoothed = ndimage.gaussian_filter(margin.astype(np.float32), sigma=sigma)
    return (smoothed >= DOSE_THRESHOLD).astype(np.float32)


def _edges(mask: np.ndarray) -> np.ndarray:
    # Pixels on the image border count as edge (erosion sees outside as background).
    return mask & ~ndimage.binary_erosion(mask, structure=_CROSS)
