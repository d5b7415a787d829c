"""Pictures of tracking results: the sequence with contours (animated GIF or MP4), a PNG
montage of a few frames, and a line chart (used for DSC over time). Drawn with OpenCV;
GIFs are encoded with Pillow. Frames are (W, H, T) arrays as everywhere else; a frame is
shown with numpy axis 0 vertical, as SimpleITK viewers of these sagittal cines show it.
Every picture is written with model.atomic (complete and read back, or not at all).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from model.atomic import write_atomically

PREDICTION_BGR = (0, 215, 255)  # amber
TRUTH_BGR = (80, 220, 60)  # green
MIN_SIDE = 256  # small frames are enlarged to at least this many pixels per side
# Distinct line colours (BGR) for chart series.
SERIES_BGR = ((200, 110, 30), (40, 40, 220), (40, 160, 40), (160, 60, 160), (0, 140, 230), (120, 120, 120))


def render_frames(
    frames: np.ndarray, masks: np.ndarray, truth: np.ndarray | None = None, label: bool = True
) -> list[np.ndarray]:
    """BGR uint8 pictures of every frame with the predicted (amber) and true (green) contours."""
    if masks.shape != frames.shape or (truth is not None and truth.shape != frames.shape):
        raise ValueError(f"frames {frames.shape}, masks {masks.shape} and truth must share a shape")
    low, high = np.percentile(frames, (1.0, 99.5))
    zoom = max(1, int(np.ceil(MIN_SIDE / min(frames.shape[:2]))))
    size = (frames.shape[1] * zoom, frames.shape[0] * zoom)
    pictures = []
    for t in range(frames.shape[2]):
        grey = np.clip((frames[:, :, t] - low) * (255.0 / max(high - low, 1e-6)), 0, 255).astype(np.uint8)
        picture = cv2.cvtColor(cv2.resize(grey, size, interpolation=cv2.INTER_LINEAR), cv2.COLOR_GRAY2BGR)
        if truth is not None:
            _draw_contour(picture, truth[:, :, t], size, TRUTH_BGR)
        _draw_contour(picture, masks[:, :, t], size, PREDICTION_BGR)
        if label:
            cv2.putText(picture, f"{t}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        pictures.append(picture)
    return pictures


def write_overlay(
    frames: np.ndarray,
    masks: np.ndarray,
    path: Path,
    truth: np.ndarray | None = None,
    fps: float = 4.0,
) -> Path:
    """Write the sequence with contours as an animated .gif or .mp4 (chosen by suffix), at `fps`."""
    path = Path(path)
    pictures = render_frames(frames, masks, truth)
    suffix = path.suffix.lower()
    if suffix == ".gif":

        def write(temporary: Path) -> None:
            images = [Image.fromarray(cv2.cvtColor(p, cv2.COLOR_BGR2RGB)) for p in pictures]
            images[0].save(
                temporary,
                format="GIF",
                save_all=True,
                append_images=images[1:],
                duration=int(round(1000 / fps)),
                loop=0,
            )
    elif suffix == ".mp4":

        def write(temporary: Path) -> None:
            height, width = pictures[0].shape[:2]
            writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
            if not writer.isOpened():
                raise OSError(f"{path}: OpenCV cannot write MP4 here; use a .gif path")
            for picture in pictures:
                writer.write(picture)
            writer.release()
    else:
        raise ValueError(f"{path}: overlay must end in .gif or .mp4")
    return write_atomically(path, write, check=lambda temporary: _check_frame_count(temporary, len(pictures)))


def _check_frame_count(path: Path, expected: int) -> None:
    if path.suffix.lower() == ".gif":
        with Image.open(path) as animation:
            count = animation.n_frames
    else:
        capture = cv2.VideoCapture(str(path))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        capture.release()
    if count != expected:
        raise ValueError(f"{count} frames read back, {expected} written")


def write_montage(
    frames: np.ndarray,
    masks: np.ndarray,
    path: Path,
    truth: np.ndarray | None = None,
    count: int = 6,
    columns: int = 3,
) -> Path:
    """Write a PNG grid of `count` evenly spaced frames (first and last included) with contours."""
    path = Path(path)
    picks = np.unique(np.linspace(0, frames.shape[2] - 1, count).round().astype(int))
    picked_truth = None if truth is None else truth[:, :, picks]
    pictures = render_frames(frames[:, :, picks], masks[:, :, picks], picked_truth, label=False)
    for picture, t in zip(pictures, picks, strict=True):
        cv2.putText(picture, f"frame {t}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    blank = np.zeros_like(pictures[0])
    rows = [
        np.hstack(pictures[i : i + columns] + [blank] * (columns - len(pictures[i : i + columns])))
        for i in range(0, len(pictures), columns)
    ]
    return write_png(np.vstack(rows), path)


def write_line_chart(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: Path,
    title: str,
    x_label: str,
    y_label: str,
    y_range: tuple[float, float] = (0.0, 1.0),
    size: tuple[int, int] = (900, 500),
) -> Path:
    """Write a PNG line chart: one line per name in `series` (x values, y values), with legend."""
    width, height = size
    left, right, top, bottom = 70, 170, 40, 55
    chart = np.full((height, width, 3), 255, np.uint8)
    xs = np.concatenate([np.asarray(x, float) for x, _ in series.values()] or [np.zeros(1)])
    x_low, x_high = 0.0, max(float(xs.max()), 1e-6)

    def to_px(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        px = left + (x - x_low) / (x_high - x_low) * (width - left - right)
        py = height - bottom - (y - y_range[0]) / (y_range[1] - y_range[0]) * (height - top - bottom)
        return np.stack([px, py], axis=1).round().astype(np.int32)

    font, grey = cv2.FONT_HERSHEY_SIMPLEX, (120, 120, 120)
    for y in np.linspace(*y_range, 6):
        (x0, py), (x1, _) = to_px(np.array([x_low, x_high]), np.array([y, y]))
        cv2.line(chart, (x0, py), (x1, py), (225, 225, 225), 1)
        cv2.putText(chart, f"{y:.1f}", (left - 40, py + 4), font, 0.4, grey, 1, cv2.LINE_AA)
    for x in _nice_ticks(x_high):
        ((px, py),) = to_px(np.array([x]), np.array([y_range[0]]))
        cv2.line(chart, (px, py), (px, py + 5), grey, 1)
        cv2.putText(chart, f"{x:g}", (px - 10, py + 20), font, 0.4, grey, 1, cv2.LINE_AA)
    cv2.rectangle(chart, (left, top), (width - right, height - bottom), grey, 1)
    cv2.putText(chart, title, (left, 25), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(chart, x_label, ((width - right + left) // 2 - 40, height - 12), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(chart, y_label, (8, top - 8), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for i, (name, (x, y)) in enumerate(series.items()):
        colour = SERIES_BGR[i % len(SERIES_BGR)]
        points = to_px(np.asarray(x, float), np.clip(np.asarray(y, float), *y_range))
        cv2.polylines(chart, [points], False, colour, 2, cv2.LINE_AA)
        legend_y = top + 15 + 22 * i
        cv2.line(chart, (width - right + 15, legend_y), (width - right + 40, legend_y), colour, 2)
        cv2.putText(chart, name, (width - right + 46, legend_y + 4), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return write_png(chart, path)


def write_png(picture: np.ndarray, path: Path) -> Path:
    """Write a BGR picture as PNG, read back to check its size."""

    def write(temporary: Path) -> None:
        if not cv2.imwrite(str(temporary), picture):
            raise OSError("OpenCV cannot encode the PNG")

    def check(temporary: Path) -> None:
        read = cv2.imread(str(temporary))
        if read is None or read.shape != picture.shape:
            raise ValueError("the PNG read back is not the picture written")

    return write_atomically(Path(path), write, check)


def _draw_contour(picture: np.ndarray, mask: np.ndarray, size: tuple[int, int], colour: tuple[int, int, int]) -> None:
    # Contour of the enlarged mask, so the outline sits on the pixel boundaries at any zoom.
    big = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(picture, contours, -1, colour, 1, cv2.LINE_AA)


def _nice_ticks(high: float) -> np.ndarray:
    """About five round tick positions from 0 to `high`."""
    raw = high / 5
    magnitude = 10 ** np.floor(np.log10(raw)) if raw > 0 else 1.0
    step = min((m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw), default=magnitude)
    return np.arange(0.0, high + step * 0.01, step)
