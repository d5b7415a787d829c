import numpy as np
import torch

from model.pipeline.preprocess import grey_to_network_channels, normalise_frame


def test_normalise_frame_is_zero_mean_unit_variance_and_clips_outliers():
    rng = np.random.default_rng(0)
    frame = rng.normal(100.0, 20.0, size=(40, 50))
    frame[0, 0] = 1e6  # one hot pixel must not set the scale
    out = normalise_frame(frame)
    assert out.dtype == np.float32 and out.shape == (40, 50)
    assert abs(out.mean()) < 1e-4
    assert abs(out.std() - 1.0) < 1e-4
    assert out[0, 0] < 4.0


def test_normalise_frame_handles_flat_and_integer_frames():
    flat = normalise_frame(np.full((8, 8), 7, dtype=np.uint16))
    assert flat.dtype == np.float32
    assert np.all(flat == 0.0)


def test_grey_is_replicated_into_three_channels_where_asked():
    grey = torch.from_numpy(normalise_frame(np.arange(12, dtype=np.float32).reshape(3, 4)))
    crop = grey_to_network_channels(grey, channel_dim=0)
    assert crop.shape == (3, 3, 4) and all(torch.equal(channel, grey) for channel in crop)
    clips = torch.stack([grey, -grey])[None]  # B=1, T=2
    batch = grey_to_network_channels(clips, channel_dim=2)
    assert batch.shape == (1, 2, 3, 3, 4)
    assert all(torch.equal(batch[0, 1, c], -grey) for c in range(3))


def test_values_near_the_float32_maximum_normalise_without_overflow():
    import warnings

    frame = np.full((32, 32), 3.3e38, np.float32)
    frame[:16] = -3.3e38  # the frame's range is beyond float32
    frame[10:14, 10:14] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy overflow warning fails the test
        out = normalise_frame(frame)
    assert np.isfinite(out).all() and abs(out.mean()) < 1e-3 and abs(out.std() - 1.0) < 1e-3
