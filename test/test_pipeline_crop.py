import numpy as np
import pytest

from model.pipeline.crop import (
    CropBox,
    CropWindow,
    initial_box,
    margin_for_region,
    mask_centroid,
)


def disk(shape, centre, radius):
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def test_margin_depends_on_region():
    assert margin_for_region("pelvis") == 20.0
    assert margin_for_region(" Prostate ") == 20.0
    assert margin_for_region("lung") == margin_for_region("abdomen") == 30.0
    assert margin_for_region("somewhere new") == 30.0


def test_initial_box_is_bounding_box_plus_margin_square_in_mm():
    mask = np.zeros((100, 120), bool)
    mask[40:50, 30:60] = True  # 10 x 30 pixels
    box = initial_box(mask, spacing_mm=(2.0, 1.0), margin_mm=10.0)
    # Largest extent 30 mm (axis 1) + 2 x 10 mm = 50 mm: 25 px at 2 mm, 50 px at 1 mm.
    assert box.size == (25, 50)
    assert box.centre == pytest.approx((45.0, 45.0), abs=0.5)
    with pytest.raises(ValueError):
        initial_box(np.zeros((5, 5), bool), (1.0, 1.0), 10.0)


def test_a_box_is_at_most_four_frame_sides_whatever_the_spacing():
    mask = np.zeros((32, 20), bool)
    mask[10:15, 8:12] = True
    # 0.001 mm pixels: 60 mm of margin would be 60000 pixels (a 14 GB float32 buffer).
    box = initial_box(mask, spacing_mm=(0.001, 0.001), margin_mm=30.0)
    assert box.size == (128, 128)
    assert box.centre == pytest.approx((12.5, 10.0), abs=0.5)


def test_crop_resizes_box_and_paste_inverts_it():
    rows, cols = np.mgrid[:80, :90]
    frame = (np.sin(rows / 6.0) + np.cos(cols / 9.0)).astype(np.float32)
    window = CropWindow(CropBox(origin=(10, 20), size=(32, 32)), frame.shape, out_size=64)
    crop = window.crop(frame)
    assert crop.shape == (64, 64) and crop.dtype == np.float32
    # 2x bilinear enlargement: the box's mean is preserved.
    assert crop.mean() == pytest.approx(frame[10:42, 20:52].mean(), abs=0.02)
    out = np.full(frame.shape, -7.0, np.float32)
    window.paste(crop, out)
    # Enlarged bilinearly, shrunk back by area averaging: the round trip is close to identity.
    assert np.abs(out[10:42, 20:52] - frame[10:42, 20:52]).max() < 0.03
    untouched = np.ones(frame.shape, bool)
    untouched[10:42, 20:52] = False
    assert np.all(out[untouched] == -7.0)


def test_box_partly_outside_the_frame_is_padded_and_pasted_back_clipped():
    frame = np.ones((40, 40), np.float32)
    window = CropWindow(CropBox(origin=(-10, 30), size=(20, 20)), frame.shape, out_size=20)
    crop = window.crop(frame, pad_value=-3.0)
    assert np.all(crop[10:, :10] == 1.0)  # inside the frame
    assert np.all(crop[:10, :] == -3.0) and np.all(crop[:, 10:] == -3.0)
    out = np.zeros(frame.shape, np.float32)
    window.paste(np.full((20, 20), 5.0, np.float32), out)
    assert np.all(out[:10, 30:] == 5.0) and out.sum() == 5.0 * 100


def test_crop_mask_keeps_a_target_smaller_than_a_network_pixel():
    mask = np.zeros((200, 200), bool)
    mask[100, 100] = True
    window = CropWindow(CropBox(origin=(68, 68), size=(64, 64)), mask.shape, out_size=16)
    small = window.crop_mask(mask)
    assert small.shape == (16, 16) and small.sum() == 1 and small[8, 8]


def test_follow_recentres_only_past_the_fraction():
    shape = (200, 200)
    window = CropWindow(CropBox(origin=(50, 50), size=(100, 100)), shape, out_size=64)
    assert window.follow(disk(shape, (110, 100), 5), recentre_fraction=0.25) is None  # 10 px < 12.5
    assert window.box.origin == (50, 50)
    moved = window.follow(disk(shape, (130, 100), 5), recentre_fraction=0.25)  # 30 px off
    assert window.box.centre == pytest.approx(mask_centroid(disk(shape, (130, 100), 5)), abs=0.5)
    assert window.box.size == (100, 100)  # never rescaled
    # The box moved 30 px down in the frame: on the 64-px grid the content moved 19.2 px up.
    assert window.box.origin == (80, 50)
    assert moved == pytest.approx((-30 * 64 / 100, 0.0))


def test_recentring_keeps_a_target_moving_60_pixels_inside_the_crop():
    shape, radius, frames = (160, 160), 6, 16
    centres = [(40 + 4 * t, 50 + 2 * t) for t in range(frames)]  # 60 px along axis 0
    masks = [disk(shape, c, radius) for c in centres]
    box = initial_box(masks[0], (1.0, 1.0), margin_mm=10.0)
    window = CropWindow(box, shape, out_size=64)
    static = CropWindow(box, shape, out_size=64)

    def inside(win, mask):
        (o0, o1), (s0, s1) = win.box.origin, win.box.size
        return mask[o0 : o0 + s0, o1 : o1 + s1].sum() == mask.sum()

    moves = 0
    for mask in masks[1:]:
        assert inside(window, mask)  # the box chosen from the previous frame holds this one
        moves += window.follow(mask, recentre_fraction=0.25) is not None
    assert moves >= 2
    assert not all(inside(static, m) for m in masks)  # without following it would be lost


def _disk_at(shape, centre, radius):
    """A disk whose centre is `centre` in the box coordinates (pixel i covers [i, i + 1))."""
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (rows + 0.5 - centre[0]) ** 2 + (cols + 0.5 - centre[1]) ** 2 <= radius**2


def _dice(a, b):
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.mark.parametrize("box_side", [37, 40, 41, 64])  # odd and even windows
@pytest.mark.parametrize("out_size", [64, 96, 384])  # scale 1, and non-integer 1.5 ... 10.4
# Sub-pixel, whole and half-pixel centres; the last puts the window past the frame corner.
@pytest.mark.parametrize("centre", [(60.3, 70.8), (75.0, 75.0), (61.5, 80.25), (10.3, 140.6)])
@pytest.mark.parametrize("offset", [(0, 0), (7, -5)])  # centred on the target, or off it
def test_crop_resize_paste_back_keeps_centroid_and_shape(box_side, out_size, centre, offset):
    # The pipeline's geometry without a network: the first mask goes to the network grid as
    # the memory's mask (crop_mask), a map on that grid comes back to the frame (paste) and is
    # thresholded at 0.5 (the post-processing). The window always enlarges (a box of a tumour
    # plus margins is far smaller than the network input), the regime checked here.
    shape = (160, 150)
    mask = _disk_at(shape, centre, radius=9.0)
    centroid = mask_centroid(mask)
    origin = tuple(int(round(centroid[a] - box_side / 2)) + offset[a] for a in (0, 1))
    window = CropWindow(CropBox(origin, (box_side, box_side)), shape, out_size)
    inside = np.zeros(shape, bool)
    inside[max(origin[0], 0) : origin[0] + box_side, max(origin[1], 0) : origin[1] + box_side] = True
    expected = mask & inside  # what of the mask the window can see
    for network_map in (window.crop_mask(mask).astype(np.float32), window.crop(mask.astype(np.float32))):
        back = np.zeros(shape, np.float32)
        window.paste(network_map, back)
        returned = back > 0.5
        assert np.abs(np.subtract(mask_centroid(returned), mask_centroid(expected))).max() <= 0.05
        assert _dice(returned, expected) > 0.99


def test_paste_back_after_follow_lands_where_the_target_is():
    shape = (160, 150)
    window = CropWindow(CropBox((30, 30), (41, 41)), shape, out_size=96)
    target = _disk_at(shape, (72.4, 66.7), 8.0)
    assert window.follow(target, recentre_fraction=0.25) is not None
    back = np.zeros(shape, np.float32)
    window.paste(window.crop_mask(target).astype(np.float32), back)
    assert np.abs(np.subtract(mask_centroid(back > 0.5), mask_centroid(target))).max() <= 0.05
    assert _dice(back > 0.5, target) > 0.99
