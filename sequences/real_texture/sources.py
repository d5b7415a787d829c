"""Real medical images that ship inside PyPI packages, and the fixed train/validation split.

Every picture is a file inside an installed wheel (requirements-train.txt), read from the
package's folder with `importlib.resources`: nothing is downloaded, ever. A missing package
ends in one `RealTextureError` line naming it. Which source feeds which split is fixed here
(`RealSource.split`), by source, so that validation sequences never show a subject, a slice or
a scanner that training saw (docs/real-texture.md lists the sources, the reasons and the
licences).
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
from dataclasses import dataclass

import cv2
import numpy as np

from model.errors import InputError

SPLITS = ("train", "val")
INSTALL_HINT = "pip install -r requirements-train.txt"


class RealTextureError(InputError):
    """A real-texture source cannot be read (missing package, unreadable file, unknown split)."""


@dataclass(frozen=True)
class RealSource:
    name: str
    package: str  # the PyPI package (= import name) whose wheel ships the file
    path: str  # inside the package folder
    modality: str  # MR, CT or US
    anatomy: str
    split: str  # "train" or "val"
    slices: tuple[int, ...] = ()  # indices along the last axis (volume slices, cine frames); () = a 2-D image
    volume: int | None = None  # index along a fourth (time) axis
    crop: tuple[tuple[int, int], tuple[int, int]] | None = None  # (rows, cols) of the picture to keep


@dataclass(frozen=True)
class SliceRef:
    source: RealSource
    index: int | None  # slice of a volume or frame of a cine; None for a 2-D image

    @property
    def label(self) -> str:
        return self.source.name if self.index is None else f"{self.source.name}[{self.index}]"


@dataclass(frozen=True)
class RealSlice:
    ref: SliceRef
    image: np.ndarray  # float32 2-D, 0.5/99.5 percentiles mapped to 0 and 1 (clipped)
    spacing_mm: tuple[float, float]


SOURCES: tuple[RealSource, ...] = (
    # Training: brain MR of two further subjects, a thoracic CT, a knee-region MR and a cardiac
    # ultrasound cine (each frame a slice).
    RealSource(
        "dipy-b0",
        "dipy",
        "data/files/S0_10slices.nii.gz",
        "MR",
        "brain (diffusion b=0, T2-like)",
        "train",
        slices=tuple(range(2, 9)),
        volume=0,
    ),
    RealSource(
        "dipy-piesno",
        "dipy",
        "data/files/test_piesno.nii.gz",
        "MR",
        "brain (diffusion, low SNR)",
        "train",
        slices=tuple(range(3, 12)),
    ),
    RealSource(
        "pydicom-ct", "pydicom", "data/test_files/CT_small.dcm", "CT", "thorax (spine, paraspinal muscle)", "train"
    ),
    RealSource("pydicom-mr", "pydicom", "data/test_files/MR_small.dcm", "MR", "small-field MR", "train"),
    RealSource(
        "pydicom-us",
        "pydicom",
        "data/test_files/examples_ybr_color.dcm",
        "US",
        "heart (echocardiography)",
        "train",
        slices=tuple(range(0, 30, 3)),
        crop=((25, 215), (50, 280)),
    ),
    # Validation: other subjects and scanners, including the one abdominal MR.
    RealSource(
        "pydicom-abdomen",
        "pydicom",
        "data/test_files/examples_overlay.dcm",
        "MR",
        "abdomen (liver, kidneys, bowel)",
        "val",
    ),
    RealSource("dipy-t1", "dipy", "data/files/t1_coronal_slice.npy", "MR", "brain (T1, coronal)", "val"),
    RealSource(
        "nibabel-epi",
        "nibabel",
        "tests/data/example4d.nii.gz",
        "MR",
        "brain (EPI)",
        "val",
        slices=tuple(range(6, 19, 2)),
        volume=0,
    ),
)


def slices_of(split: str) -> list[SliceRef]:
    """Every slice that `split` ("train" or "val") may use, in a fixed order."""
    if split not in SPLITS:
        raise RealTextureError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    return [
        SliceRef(source, index) for source in SOURCES if source.split == split for index in (source.slices or (None,))
    ]


def require(package: str, needed_for: str) -> None:
    """Raise a one-line RealTextureError when `package` is not installed (never downloads)."""
    if importlib.util.find_spec(package) is None:
        raise RealTextureError(
            f"{needed_for} needs the Python package '{package}', which is not installed: {INSTALL_HINT}"
        )


def require_sources(split: str = "train") -> None:
    """Raise RealTextureError naming the first package that `split`'s sources need and lack."""
    for source in SOURCES:
        if source.split == split:
            require(source.package, f"real-texture source {source.name}")


@functools.cache
def load_slice(ref: SliceRef) -> RealSlice:
    """The picture of `ref`, grey, float32 in [0, 1], with its pixel spacing (1 mm when unknown)."""
    source = ref.source
    require(source.package, f"real-texture source {source.name}")
    path = importlib.resources.files(source.package).joinpath(source.path)
    try:
        picture, spacing = _read(str(path), source)
    except (OSError, ValueError, KeyError) as error:  # unreadable or not the expected layout
        raise RealTextureError(f"{path}: cannot read real-texture source {source.name}: {error}") from error
    if ref.index is not None:
        picture = picture[..., ref.index]
    if picture.ndim == 3:  # colour ultrasound: grey from the channels
        picture = picture.mean(axis=-1)
    if source.crop is not None:
        (r0, r1), (c0, c1) = source.crop
        picture = picture[r0:r1, c0:c1]
    picture = picture.astype(np.float32)
    low, high = np.percentile(picture, (0.5, 99.5))
    image = np.clip((picture - low) / max(float(high - low), 1e-6), 0.0, 1.0).astype(np.float32)
    return RealSlice(ref, image, spacing)


def _read(path: str, source: RealSource) -> tuple[np.ndarray, tuple[float, float]]:
    """(array with slices/frames on the last axis, in-plane spacing) of one source file."""
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False), (1.0, 1.0)
    if path.endswith((".nii", ".nii.gz")):
        import nibabel

        volume = nibabel.load(path)
        data = np.asarray(volume.dataobj)
        if source.volume is not None:
            data = data[..., source.volume]
        zooms = volume.header.get_zooms()
        return data, (float(zooms[0]), float(zooms[1]))
    import pydicom

    dataset = pydicom.dcmread(path)
    data = dataset.pixel_array
    if int(dataset.get("NumberOfFrames", 1)) > 1:  # DICOM puts frames first
        data = np.moveaxis(data, 0, -1)
    spacing = [float(s) for s in dataset.get("PixelSpacing", (1.0, 1.0))]
    return data, (spacing[0], spacing[1])


def tissue_mask(image: np.ndarray) -> np.ndarray:
    """Where the picture shows tissue rather than background air (Otsu on a smoothed copy)."""
    smooth = cv2.GaussianBlur(image, (0, 0), 2.0)
    scaled = (np.clip(smooth, 0, 1) * 255).astype(np.uint8)
    threshold, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return smooth * 255 > 0.5 * threshold
