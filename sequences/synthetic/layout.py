"""Writing a synthetic sequence as one case of the TrackRAD dataset layout.

<case_dir>/images/<id>_frames.mha, <case_dir>/targets/<id>_first_label.mha,
<case_dir>/targets/<id>_labels.mha, frame-rate.json, b-field-strength.json,
scanned-region.json (bare JSON values) and synthetic.json (how the case was made).

Geometry follows the example case: numpy arrays (W, H, T) as SimpleITK reads them, so ITK's
first axis is time; ITK spacing is (TIME_AXIS_SPACING, spacing of numpy axis 1, spacing of
numpy axis 0), identity direction.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from sequences.synthetic.generator import SyntheticSequence

# The example case carries 5.0 on the time axis (not a frame interval: it runs at 8 fps);
# nothing reads it, so the synthetic cases copy it.
TIME_AXIS_SPACING = 5.0


def write_case(case_dir: Path, case_id: str, sequence: SyntheticSequence) -> Path:
    """Write `sequence` as a dataset-layout case; returns `case_dir`."""
    case_dir = Path(case_dir)
    (case_dir / "images").mkdir(parents=True, exist_ok=True)
    (case_dir / "targets").mkdir(parents=True, exist_ok=True)
    spacing = sequence.info.pixel_spacing_mm
    itk_spacing = (TIME_AXIS_SPACING, float(spacing[1]), float(spacing[0]))
    # Centre the frame on the scanner origin, as a cine plane through the isocentre would be.
    shape = sequence.frames.shape
    itk_origin = (0.0, -(shape[1] - 1) / 2 * spacing[1], -(shape[0] - 1) / 2 * spacing[0])

    def write(array: np.ndarray, path: Path) -> None:
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(itk_spacing)
        image.SetOrigin(itk_origin)
        sitk.WriteImage(image, str(path), useCompression=True)

    write(sequence.frames.astype(np.float32), case_dir / "images" / f"{case_id}_frames.mha")
    write(sequence.masks[:, :, :1].astype(np.uint8), case_dir / "targets" / f"{case_id}_first_label.mha")
    write(sequence.masks.astype(np.uint8), case_dir / "targets" / f"{case_id}_labels.mha")
    info = sequence.info
    (case_dir / "frame-rate.json").write_text(json.dumps(float(info.frame_rate)))
    (case_dir / "b-field-strength.json").write_text(json.dumps(float(info.field_strength)))
    (case_dir / "scanned-region.json").write_text(json.dumps(info.scanned_region))
    (case_dir / "synthetic.json").write_text(json.dumps(sequence.metadata, indent=1))
    return case_dir
