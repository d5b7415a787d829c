"""Choose XMem's post-network settings on a selection set without rerunning the network: record
the network's probabilities once, then replay settings specs on them at milliseconds a frame.

    python -m evaluation.motion_selection record DATASET --out DIR [--cases N] [--weights W.pth]
    python -m evaluation.motion_selection replay DATASET --recorded DIR SPEC [SPEC ...]

A replay cannot show how a rejected frame, kept out of the memory, changes the network's later
outputs, and a spec must keep the recording's crop placement. From Python: record, replay.
See docs/benchmark.md, "Replaying post-network settings".
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from evaluation.benchmark import parse_spec
from evaluation.metrics import score_sequence
from model.errors import InputError
from model.io import dataset_case_id, find_case_dirs, read_dataset_case, read_labels
from model.pipeline.masks import mask_centroid
from model.runner import run_tracker
from model.trackers.xmem import XMemSettings, XMemTracker, build_core
from model.weights import load_weights
from model.xmem.network.checkpoint import load_network

RECORDING_SETTINGS = {"motion": "first-frame", "motion_crop": True}


class RecordingCore:
    """Wraps the real inference core and keeps every prediction and a digest of its input."""

    def __init__(self, core) -> None:
        self.core, self.device, self.precision, self.path = core, core.device, core.precision, core.path
        self.outputs: list[np.ndarray] = []
        self.inputs: list[float] = []

    def reset(self, expected_frames: int | None = None) -> None:
        self.outputs, self.inputs = [], []
        self.core.reset(expected_frames)

    def step(self, image: torch.Tensor, mask: torch.Tensor | None = None, end: bool = False) -> torch.Tensor:
        return self.core.step(image, mask, end)

    def predict(self, image: torch.Tensor) -> torch.Tensor:
        out = self.core.predict(image)
        self.outputs.append(out.float().cpu().numpy().astype(np.float16))
        self.inputs.append(_digest(image))
        return out

    def commit(self, accept: bool = True) -> None:
        self.core.commit(accept)

    def shift_sensory(self, rows: float, cols: float) -> None:
        self.core.shift_sensory(rows, cols)


class ReplayCore:
    """Returns the recorded predictions in order; stops if an input differs from the recording."""

    device = torch.device("cpu")
    precision = path = "fp32"

    def __init__(self, outputs: np.ndarray, inputs: np.ndarray) -> None:
        self._outputs, self._inputs, self._next = outputs, inputs, 0

    def reset(self, expected_frames: int | None = None) -> None:
        self._next = 0

    def step(self, image: torch.Tensor, mask: torch.Tensor | None = None, end: bool = False) -> torch.Tensor:
        return torch.zeros((2, *image.shape[1:]))  # frame 0: the tracker uses the given mask

    def predict(self, image: torch.Tensor) -> torch.Tensor:
        index, self._next = self._next, self._next + 1
        if not np.isclose(_digest(image), self._inputs[index], rtol=1e-5, atol=1e-3):
            raise ValueError(
                f"frame {index + 1}: the network input differs from the recording "
                "(the settings change the crop placement)"
            )
        return torch.from_numpy(self._outputs[index].astype(np.float32))

    def commit(self, accept: bool = True) -> None:
        pass

    def shift_sensory(self, rows: float, cols: float) -> None:
        pass


def _digest(image: torch.Tensor) -> float:
    """A number that changes when the crop does (sum of one channel, weighted by position)."""
    grey = image[0].float().cpu()
    ramp = torch.arange(grey.numel(), dtype=torch.float32).reshape(grey.shape) / grey.numel()
    return float((grey * (1.0 + ramp)).sum())


def record(dataset: Path, out: Path, cases: int, weights: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    settings = XMemSettings(**RECORDING_SETTINGS, weights=weights)
    _, state_dict = load_weights(weights or None)
    core = RecordingCore(build_core(load_network(state_dict, device=settings.network.torch_device()), settings))
    tracker = XMemTracker(settings, core=core)
    for case_dir in find_case_dirs(dataset)[:cases]:
        case = read_dataset_case(case_dir)
        run_tracker(tracker, case.frames, case.first_mask, case.info)
        np.savez_compressed(
            out / f"{dataset_case_id(case_dir)}.npz", outputs=np.stack(core.outputs), inputs=np.array(core.inputs)
        )
        print(f"recorded {dataset_case_id(case_dir)}: {case.frames.shape[2]} frames", flush=True)


def lag_px(masks: np.ndarray, truth: np.ndarray) -> float:
    """Mean centroid error along the target's frame-to-frame motion (negative = behind it)."""
    errors = []
    for t in range(1, truth.shape[2]):
        true_now, true_before = mask_centroid(truth[:, :, t]), mask_centroid(truth[:, :, t - 1])
        motion = np.subtract(true_now, true_before)
        speed = float(np.hypot(*motion))
        if speed > 1e-6 and masks[:, :, t].any():
            errors.append(float(np.dot(np.subtract(mask_centroid(masks[:, :, t]), true_now), motion)) / speed)
    return float(np.mean(errors)) if errors else float("nan")


def replay(dataset: Path, recorded: Path, specs: list[str]) -> None:
    cases = [d for d in find_case_dirs(dataset) if (recorded / f"{dataset_case_id(d)}.npz").is_file()]
    if not cases:
        raise InputError(f"{recorded}: no recording of a case of {dataset}")
    loaded = []
    for case_dir in cases:
        stored = np.load(recorded / f"{dataset_case_id(case_dir)}.npz")
        loaded.append(
            (
                dataset_case_id(case_dir),
                read_dataset_case(case_dir),
                read_labels(case_dir) > 0,
                stored["outputs"],
                stored["inputs"],
            )
        )
    print(f"cases: {', '.join(case_id for case_id, *_ in loaded)}")
    print("dsc     cd_px  lag_px  spec  [per case dsc / cd]")
    for spec in specs:
        name, settings = parse_spec(spec)
        if name != "xmem":
            raise InputError(f"{spec!r}: only xmem specs can be replayed")
        settings = XMemSettings(**{**settings, "weights": "", "device": "cpu"})
        per_case = []
        for case_id, case, truth, outputs, inputs in loaded:
            tracker = XMemTracker(settings, core=ReplayCore(outputs, inputs))
            result = run_tracker(tracker, case.frames, case.first_mask, case.info)
            if result.tracker_error:  # the runner keeps going after an error; a replay must not
                raise ValueError(f"{case_id}: {result.tracker_error.strip().splitlines()[-1]}")
            masks = result.masks
            scores = score_sequence(masks, truth.astype(np.uint8), case.info.scanned_region)
            per_case.append((scores["dsc"], scores["cd"], lag_px(masks > 0, truth)))
        dsc, cd, lag = np.mean(per_case, axis=0)
        detail = " ".join(f"{d:.3f}/{c:.2f}" for d, c, _ in per_case)
        print(f"{dsc:.4f}  {cd:.3f}  {lag:+.3f}  {spec}  [{detail}]", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation.motion_selection",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record", help="store the network's probabilities on a selection set")
    rec.add_argument("dataset", type=Path)
    rec.add_argument("--out", type=Path, required=True)
    rec.add_argument("--cases", type=int, default=3, help="the first N cases")
    rec.add_argument("--weights", default="", help="XMem weights; empty: as the tracker resolves them")
    rep = commands.add_parser("replay", help="score xmem settings specs on the recording")
    rep.add_argument("dataset", type=Path)
    rep.add_argument("--recorded", type=Path, required=True)
    rep.add_argument("specs", nargs="+", help="xmem[...] specs (the benchmark's syntax)")
    args = parser.parse_args(argv)
    try:
        if args.command == "record":
            record(args.dataset, args.out, args.cases, args.weights)
        else:
            replay(args.dataset, args.recorded, args.specs)
    except (InputError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
