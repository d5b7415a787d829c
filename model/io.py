"""Reading and validating a TrackRAD case, and writing the algorithm's output.

Two input layouts: grand-challenge's (`read_case`) and the downloaded dataset's
(`read_dataset_case`). Arrays follow SimpleITK's `GetArrayFromImage`: shape (W, H, T), time on
the last numpy axis. Every problem raises `CaseError` naming the file and the problem; inputs
are only ever read. What each kind of bad input gives (error, warning, repair) is in
docs/bad-input.md.
"""

from __future__ import annotations

import json
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from model.atomic import write_atomically
from model.errors import InputError, quiet_native_stderr
from model.trackers import SequenceInfo

# Readers by lower-case suffix: SimpleITK's own choice is case-sensitive and fails on IMAGE.MHA.
IMAGE_IO = {".mha": "MetaImageIO", ".tif": "TIFFImageIO", ".tiff": "TIFFImageIO"}
IMAGE_SUFFIXES = tuple(IMAGE_IO)
SERIES_FOLDER = Path("images/mri-linacs")
TARGET_FOLDER = Path("images/mri-linac-target")
OUTPUT_FOLDER = Path("images/mri-linac-series-targets")
OUTPUT_NAME = "output.mha"

FRAME_RATE_JSON = "frame-rate.json"
FIELD_STRENGTH_JSON = "b-field-strength.json"
SCANNED_REGION_JSON = "scanned-region.json"
# Used when the JSON file is absent: a mid-range cine frame rate, the more common
# (Elekta Unity) field strength, and the region whose dose sigma is the challenge's default.
DEFAULT_FRAME_RATE = 4.0
DEFAULT_FIELD_STRENGTH = 1.5
DEFAULT_SCANNED_REGION = "abdomen"
# Plausible values; anything outside is clamped to the nearer end, with a warning. Cine MRI runs
# at about 1-15 frames/s, MR-linacs at 0.35-1.5 T.
FRAME_RATE_RANGE = (0.1, 100.0)  # frames per second
FIELD_STRENGTH_RANGE = (0.1, 10.0)  # tesla


class CaseError(InputError):
    """A case cannot be read or written; the message names the file and the problem."""


@dataclass
class Case:
    """One validated sequence with its first mask and what is needed to write the output."""

    frames: np.ndarray  # (W, H, T) float32, finite
    first_mask: np.ndarray  # (W, H) bool, non-empty
    info: SequenceInfo
    spacing: tuple[float, ...]  # ITK order (time first), copied to the output
    origin: tuple[float, ...]
    direction: tuple[float, ...]
    image_path: Path
    warnings: list[str] = field(default_factory=list)
    nonfinite_pixels: int = 0
    blank_frames: int = 0  # frames with one value everywhere (no signal)


def read_case(input_dir: Path) -> Case:
    """Read a case in the grand-challenge layout (/input)."""
    input_dir = Path(input_dir)
    image_path = _single_image(input_dir / SERIES_FOLDER)
    mask_path = _single_image(input_dir / TARGET_FOLDER)
    return _load(image_path, mask_path, input_dir)


def read_dataset_case(case_dir: Path) -> Case:
    """Read a case in the dataset layout (images/<id>_frames.mha, targets/<id>_first_label.mha)."""
    case_dir = Path(case_dir)
    case_id = dataset_case_id(case_dir)
    mask_path = case_dir / "targets" / f"{case_id}_first_label.mha"
    if not mask_path.is_file():
        raise CaseError(f"{mask_path}: first-frame mask not found")
    return _load(case_dir / "images" / f"{case_id}_frames.mha", mask_path, case_dir)


def read_labels(case_dir: Path) -> np.ndarray:
    """Ground truth (W, H, T) uint8 0/1 of a dataset-layout case (targets/<id>_labels.mha)."""
    case_dir = Path(case_dir)
    path = case_dir / "targets" / f"{dataset_case_id(case_dir)}_labels.mha"
    if not path.is_file():
        raise CaseError(f"{path}: ground-truth labels not found")
    labels = sitk.GetArrayFromImage(_read_image(path, []))
    if labels.ndim != 3:
        raise CaseError(f"{path}: labels must be 3-D (W, H, T), got {labels.ndim}-D")
    return (labels > 0).astype(np.uint8)


def prepare_output(output_dir: Path) -> Path:
    """Create the output folder and check it is writable; return the output file's path.

    Called before tracking so that a bad output folder fails fast.
    """
    folder = Path(output_dir) / OUTPUT_FOLDER
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise CaseError(f"{output_dir}: output folder not writable ({error.strerror})") from None
    return folder / OUTPUT_NAME


def write_output(output_dir: Path, masks: np.ndarray, reference: Case) -> Path:
    """Write masks (W, H, T) as compressed uint8 0/1 with the reference's geometry, atomically.

    The file is written beside its final name, read back (header geometry, and the compressed
    data's length and checksum against the masks) and only then renamed into place with mode
    0644, so a full disk or any other failure never leaves a partial or unreadable output.mha.
    """
    if masks.shape != reference.frames.shape:
        raise ValueError(f"masks shape {masks.shape} != sequence shape {reference.frames.shape}")
    path = prepare_output(output_dir)
    data = np.ascontiguousarray(masks > 0, dtype=np.uint8)
    image = sitk.GetImageFromArray(data)
    image.SetSpacing(reference.spacing)
    image.SetOrigin(reference.origin)
    image.SetDirection(reference.direction)
    write_atomically(
        path,
        lambda temporary: sitk.WriteImage(image, str(temporary), useCompression=True),
        check=lambda temporary: _check_written(temporary, image, data),
    )
    return path


def _check_written(path: Path, image: sitk.Image, data: np.ndarray) -> None:
    """Raise CaseError unless `path` holds `image` (geometry) with exactly `data` (checksum)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.SetImageIO(IMAGE_IO[".mha"])
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise CaseError(f"{path}: header unreadable") from None
    written = (reader.GetSize(), reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection())
    wanted = (image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection())
    if written[0] != wanted[0] or not all(
        np.allclose(a, b, rtol=1e-9, atol=0) for a, b in zip(written[1:], wanted[1:], strict=True)
    ):
        raise CaseError(f"{path}: header read back differs from what was written")
    header = _meta_header(path)
    if header is None or not header.compressed:
        raise CaseError(f"{path}: not a compressed MetaImage after writing")
    if _stored_checksum(path, header) != zlib.adler32(data):
        raise CaseError(f"{path}: data read back differs from what was written")


def _load(image_path: Path, mask_path: Path, json_dir: Path) -> Case:
    warnings: list[str] = []
    image = _read_image(image_path, warnings)
    if image.GetDimension() != 3:
        raise CaseError(f"{image_path}: sequence must be 3-D (frames over time), got {image.GetDimension()}-D")
    frames = sitk.GetArrayFromImage(image).astype(np.float32)
    nonfinite = int(np.count_nonzero(~np.isfinite(frames)))
    if nonfinite:
        frames = _sanitise(frames)
        warnings.append(f"{image_path}: {nonfinite} NaN/Inf pixels replaced by finite values")
    blank = _count_blank_frames(frames)
    if blank:
        warnings.append(
            f"{image_path}: {blank} of {frames.shape[2]} frames have no signal "
            "(one value everywhere); no tracker can follow the target there"
        )
    first_mask = _read_first_mask(mask_path, image, frames.shape[:2], warnings)
    spacing = tuple(image.GetSpacing())
    info = SequenceInfo(
        frame_shape=(frames.shape[0], frames.shape[1]),
        n_frames=frames.shape[2],
        # numpy axis 0 is ITK axis 2, numpy axis 1 is ITK axis 1.
        pixel_spacing_mm=(float(spacing[2]), float(spacing[1])),
        frame_rate=_read_number(json_dir / FRAME_RATE_JSON, DEFAULT_FRAME_RATE, FRAME_RATE_RANGE, "frames/s", warnings),
        field_strength=_read_number(
            json_dir / FIELD_STRENGTH_JSON, DEFAULT_FIELD_STRENGTH, FIELD_STRENGTH_RANGE, "T", warnings
        ),
        scanned_region=_read_region(json_dir / SCANNED_REGION_JSON, warnings),
    )
    return Case(
        frames=np.ascontiguousarray(frames),
        first_mask=first_mask,
        info=info,
        spacing=spacing,
        origin=tuple(image.GetOrigin()),
        direction=tuple(image.GetDirection()),
        image_path=image_path,
        warnings=warnings,
        nonfinite_pixels=nonfinite,
        blank_frames=blank,
    )


def _read_first_mask(path: Path, sequence: sitk.Image, frame_shape: tuple[int, ...], warnings: list[str]) -> np.ndarray:
    image = _read_image(path, warnings)
    if image.GetDimension() != 3:
        raise CaseError(f"{path}: mask must be 3-D with one frame, got {image.GetDimension()}-D")
    mask = sitk.GetArrayFromImage(image)
    if mask.shape[:2] != tuple(frame_shape):
        raise CaseError(f"{path}: mask frame size {mask.shape[:2]} differs from the sequence's {tuple(frame_shape)}")
    if mask.shape[2] != 1:
        raise CaseError(f"{path}: mask must have exactly one frame, got {mask.shape[2]}")
    differences = _geometry_differences(image, sequence)
    if differences:
        warnings.append(
            f"{path}: the mask's geometry differs from the sequence's ({'; '.join(differences)}); "
            "the mask is taken pixel for pixel on the sequence's grid"
        )
    mask = mask[:, :, 0]
    if not np.all(np.isfinite(mask)):
        raise CaseError(f"{path}: mask contains NaN/Inf")
    if not np.all((mask == 0) | (mask == 1)):
        warnings.append(f"{path}: mask values other than 0/1 binarised as value > 0")
    binary = mask > 0
    if not binary.any():
        raise CaseError(f"{path}: mask is empty (no foreground pixel)")
    return binary


def _geometry_differences(mask: sitk.Image, sequence: sitk.Image) -> list[str]:
    """How the mask's in-plane geometry differs from the sequence's, beyond a tolerance (0.1 % of
    the spacing, a tenth of a pixel of the origin, 0.001 in the direction). ITK axis 0 is time:
    the mask's one frame has no time spacing or time origin to compare."""
    differences = []
    mask_spacing, spacing = np.array(mask.GetSpacing()[1:]), np.array(sequence.GetSpacing()[1:])
    if not np.allclose(mask_spacing, spacing, rtol=1e-3, atol=0):
        differences.append(f"spacing {_mm(mask_spacing)} mm against {_mm(spacing)} mm")
    direction = np.array(sequence.GetDirection()).reshape(3, 3)
    if not np.allclose(np.array(mask.GetDirection()).reshape(3, 3), direction, atol=1e-3):
        differences.append("direction " + " ".join(f"{value:g}" for value in mask.GetDirection()))
    # The origin's offset along the sequence's two in-plane index axes, in mm.
    offset = direction.T.dot(np.array(mask.GetOrigin()) - np.array(sequence.GetOrigin()))[1:]
    if np.any(np.abs(offset) > 0.1 * spacing.min()):
        differences.append(f"origin shifted by {', '.join(f'{value:g}' for value in offset)} mm in the frame plane")
    return differences


def _mm(values: np.ndarray) -> str:
    return " x ".join(f"{value:g}" for value in values)


def _single_image(folder: Path) -> Path:
    if not folder.is_dir():
        raise CaseError(f"{folder}: image folder missing")
    candidates = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not candidates:
        raise CaseError(f"{folder}: no image found (expected one {'/'.join(IMAGE_SUFFIXES)} file)")
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise CaseError(f"{folder}: {len(candidates)} candidate images ({names}), expected one")
    return candidates[0]


def find_case_dirs(root: Path) -> list[Path]:
    """Dataset-layout case folders: `root` itself if it is one (has images/), else its
    sub-folders that are, sorted. Raises CaseError when there is none."""
    root = Path(root)
    if (root / "images").is_dir():
        return [root]
    cases = sorted(p for p in root.iterdir() if (p / "images").is_dir()) if root.is_dir() else []
    if not cases:
        raise CaseError(f"{root}: no case folder (a folder with images/) found")
    return cases


def dataset_case_id(case_dir: Path) -> str:
    """The <id> of a dataset-layout case folder, from its images/<id>_frames.mha."""
    case_dir = Path(case_dir)
    images = case_dir / "images"
    if not images.is_dir():
        raise CaseError(f"{images}: image folder missing")
    frames = sorted(images.glob("*_frames.mha"))
    if not frames:
        raise CaseError(f"{images}: no <id>_frames.mha image found")
    if len(frames) > 1:
        names = ", ".join(p.name for p in frames)
        raise CaseError(f"{images}: {len(frames)} candidate images ({names}), expected one")
    return frames[0].name[: -len("_frames.mha")]


def _read_image(path: Path, warnings: list[str]) -> sitk.Image:
    """Read a scalar image; every problem is a CaseError naming the file (see the module doc)."""
    header = _meta_header(path)
    if header is not None:
        _check_spacing(path, header, warnings)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    if path.suffix.lower() in IMAGE_IO:
        reader.SetImageIO(IMAGE_IO[path.suffix.lower()])
    # ITK's MetaIO prints its own complaints on fd 2; the CaseError message replaces them.
    with quiet_native_stderr():
        try:
            image = reader.Execute()
        except RuntimeError:
            raise CaseError(f"{path}: unreadable or truncated image file") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise CaseError(f"{path}: expected a scalar image, got vector pixels")
    if header is not None and header.compressed:
        _check_complete(path, header, image)
    return image


@dataclass(frozen=True)
class _MetaHeader:
    fields: dict[str, str]  # "Key = Value" lines up to and including ElementDataFile
    data_offset: int  # where the pixel data starts in the file (ElementDataFile = LOCAL)

    @property
    def compressed(self) -> bool:
        return self.fields.get("CompressedData", "").lower() == "true" and self.fields.get("ElementDataFile") == "LOCAL"


_HEADER_LIMIT = 1 << 16  # MetaImage headers are a few hundred bytes


def _meta_header(path: Path) -> _MetaHeader | None:
    """The header of a single-file MetaImage (.mha), or None when `path` is none (ITK decides)."""
    if path.suffix.lower() != ".mha":
        return None
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEADER_LIMIT)
    except OSError:
        return None
    fields: dict[str, str] = {}
    position = 0
    while (end := head.find(b"\n", position)) >= 0:
        key, sep, value = head[position:end].decode("latin-1").partition("=")
        position = end + 1
        if not sep:
            return None
        fields[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            return _MetaHeader(fields, position)
    return None


def _check_spacing(path: Path, header: _MetaHeader, warnings: list[str]) -> None:
    text = header.fields.get("ElementSpacing", "")
    try:
        spacing = [float(value) for value in text.split()]
    except ValueError:
        return  # ITK reports a malformed header
    if any(value == 0 for value in spacing):
        raise CaseError(
            f"{path}: zero pixel spacing (ElementSpacing = {text}); ITK cannot hold an "
            "image with it, set the true spacing in the header (nothing is written)"
        )
    if any(value < 0 for value in spacing):
        positive = " ".join(f"{abs(value):g}" for value in spacing)
        warnings.append(
            f"{path}: negative pixel spacing (ElementSpacing = {text}) read as {positive} "
            "with those axes reversed in the direction; the output carries that geometry"
        )


def _check_complete(path: Path, header: _MetaHeader, image: sitk.Image) -> None:
    """ITK reads a compressed stream that ends before the header's size is reached without a
    word, leaving the rest of the image as whatever was in memory. The zlib stream ends with a
    checksum of what it holds: when the pixels read match it, the stream held all of them;
    otherwise the stream is inflated once more to count its bytes."""
    pixels = sitk.GetArrayViewFromImage(image)
    if zlib.adler32(pixels) == _stored_checksum(path, header):
        return
    compressed_end = _compressed_end(path, header)
    inflater, produced = zlib.decompressobj(), 0
    try:
        with open(path, "rb") as handle:
            handle.seek(header.data_offset)
            remaining = compressed_end - header.data_offset
            while remaining > 0 and not inflater.eof:
                chunk = handle.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
                produced += len(inflater.decompress(chunk))
    except (OSError, zlib.error):
        raise CaseError(f"{path}: unreadable or truncated image file") from None
    if produced < pixels.nbytes:
        raise CaseError(
            f"{path}: truncated image data (the compressed data holds {produced} of "
            f"the {pixels.nbytes} bytes that its header's DimSize and ElementType describe)"
        )


def _compressed_end(path: Path, header: _MetaHeader) -> int:
    size = path.stat().st_size
    try:
        end = header.data_offset + int(header.fields["CompressedDataSize"])
    except (KeyError, ValueError):
        return size
    if end > size:
        raise CaseError(f"{path}: truncated image file ({size} bytes, its header promises {end})")
    return end


def _stored_checksum(path: Path, header: _MetaHeader) -> int:
    """The Adler-32 that ends the zlib stream (of the uncompressed pixel bytes)."""
    with open(path, "rb") as handle:
        handle.seek(_compressed_end(path, header) - 4)
        return int.from_bytes(handle.read(4), "big")


def _read_json(path: Path) -> object:
    try:  # utf-8-sig: also accept a byte-order mark, as some editors write one
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CaseError(f"{path}: not valid JSON ({_first_line(error)})") from None


def _read_number(path: Path, default: float, plausible: tuple[float, float], unit: str, warnings: list[str]) -> float:
    if not path.exists():
        warnings.append(f"{path}: missing, using default {default}")
        return default
    value = _read_json(path)
    # bool is an int in Python; `true` is not a frame rate.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CaseError(f"{path}: expected a JSON number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        raise CaseError(f"{path}: number out of range") from None
    if not np.isfinite(number) or number <= 0:
        raise CaseError(f"{path}: expected a positive number, got {value}")
    low, high = plausible
    if not low <= number <= high:
        clamped = min(max(number, low), high)
        warnings.append(
            f"{path}: {number:g} {unit} is outside the plausible {low:g}-{high:g} {unit}; using {clamped:g}"
        )
        return clamped
    return number


def read_scanned_region(json_dir: Path) -> str:
    """The scanned region of a case folder (the documented default when the file is missing)."""
    return _read_region(Path(json_dir) / SCANNED_REGION_JSON, [])


def _read_region(path: Path, warnings: list[str]) -> str:
    if not path.exists():
        warnings.append(f"{path}: missing, using default {DEFAULT_SCANNED_REGION!r}")
        return DEFAULT_SCANNED_REGION
    value = _read_json(path)
    if not isinstance(value, str) or not value.strip():
        raise CaseError(f"{path}: expected a non-empty JSON string, got {type(value).__name__}")
    return value.strip().lower()


def _count_blank_frames(frames: np.ndarray) -> int:
    per_frame = frames.reshape(-1, frames.shape[2])
    return int(np.count_nonzero(per_frame.max(axis=0) == per_frame.min(axis=0)))


def _sanitise(frames: np.ndarray) -> np.ndarray:
    finite = frames[np.isfinite(frames)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    return np.nan_to_num(frames, nan=0.0, posinf=high, neginf=low)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
