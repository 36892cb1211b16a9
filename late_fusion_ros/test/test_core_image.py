# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Unit tests of the ROS-free image core: raw encodings, validation, compressed images."""

import array
import io
from types import SimpleNamespace

from late_fusion_ros.core.errors import InputError
from late_fusion_ros.core.image import (
    compressed_to_rgb, image_backend, image_msg_to_rgb, image_to_rgb, rgb_to_encoding)
import numpy as np
from PIL import Image
import pytest
from skimage import data as skdata

RNG = np.random.default_rng(3)
# Random colours, each repeated over a horizontal pixel pair so that 4:2:2 chroma
# subsampling loses nothing.
RGB = np.repeat(RNG.integers(0, 256, (6, 4, 3), dtype=np.uint8), 2, axis=1)
GRAY = np.repeat(RNG.integers(0, 256, (6, 8, 1), dtype=np.uint8), 3, axis=2)
EXACT = ['rgb8', 'bgr8', 'rgba8', 'bgra8']
MONO = ['mono8', 'mono16']
YUV = ['yuv422_yuy2', 'yuyv', 'uyvy', 'yuv422']


def msg(encoding, rgb, pad=0, container=bytes, is_bigendian=False):
    """Build a sensor_msgs/Image-like namespace, optionally with row padding."""
    data, step = rgb_to_encoding(rgb, encoding)
    rows = np.frombuffer(data, np.uint8).reshape(rgb.shape[0], step)
    if is_bigendian:
        rows = rows.view('<u2').astype('>u2').view(np.uint8)
    padded = np.pad(rows, ((0, 0), (0, pad)), constant_values=0xAB)
    return SimpleNamespace(encoding=encoding, height=rgb.shape[0], width=rgb.shape[1],
                           step=step + pad, data=container(padded.tobytes()),
                           is_bigendian=int(is_bigendian))


def convert(m):
    """Convert a message with the pure-numpy reference."""
    return image_to_rgb(m.encoding, m.height, m.width, m.step, m.data, m.is_bigendian)


@pytest.mark.parametrize('encoding', EXACT)
def test_colour_encodings_round_trip_exactly(encoding):
    """Recover the exact pixels of lossless colour encodings."""
    out = convert(msg(encoding, RGB))
    assert out.dtype == np.uint8 and out.flags.c_contiguous and out.flags.writeable
    np.testing.assert_array_equal(out, RGB)


@pytest.mark.parametrize('encoding', MONO)
@pytest.mark.parametrize('is_bigendian', [False, True])  # no effect on mono8
def test_mono_encodings_round_trip_gray(encoding, is_bigendian):
    """Recover gray pixels from mono8 and mono16 of either byte order."""
    m = msg(encoding, GRAY, is_bigendian=is_bigendian and encoding == 'mono16')
    np.testing.assert_array_equal(convert(m), GRAY)


@pytest.mark.parametrize('encoding', YUV)
def test_yuv422_round_trips_and_matches_opencv(encoding):
    """Recover colours from YUV 4:2:2 and agree with OpenCV."""
    m = msg(encoding, RGB)
    out = convert(m)
    # Limited-range YUV quantises colours: a few levels of error.
    assert np.abs(out.astype(int) - RGB).max() <= 3
    cv2 = pytest.importorskip('cv2')
    code = cv2.COLOR_YUV2RGB_YUYV if encoding in ('yuv422_yuy2', 'yuyv') \
        else cv2.COLOR_YUV2RGB_UYVY
    reference = cv2.cvtColor(np.frombuffer(m.data, np.uint8).reshape(m.height, m.width, 2),
                             code)
    assert np.abs(out.astype(int) - reference).max() <= 1


@pytest.mark.parametrize('encoding', EXACT + MONO + YUV)
@pytest.mark.parametrize('container', [bytes, lambda b: array.array('B', b),
                                       lambda b: np.frombuffer(b, np.uint8)])
def test_row_padding_and_containers(encoding, container):
    """Ignore row padding and accept bytes, array.array and numpy data."""
    np.testing.assert_array_equal(convert(msg(encoding, RGB, pad=5, container=container)),
                                  convert(msg(encoding, RGB)))


@pytest.mark.parametrize('encoding', EXACT + MONO + YUV)
@pytest.mark.parametrize('pad', [0, 3])
def test_msg_conversion_agrees_with_reference(encoding, pad):
    """Give the same pixels through the chosen backend as the reference."""
    m = msg(encoding, GRAY if encoding in MONO else RGB, pad=pad)
    out = image_msg_to_rgb(m)
    assert out.shape == (m.height, m.width, 3) and out.dtype == np.uint8
    assert out.flags.writeable
    # Backends scale mono16 by 255 / 65535 where the reference shifts by 8.
    assert np.abs(out.astype(int) - convert(m)).max() <= (1 if encoding == 'mono16' else 0)
    assert image_backend() in ('cv_bridge', 'rosbags_image', 'numpy')


def malformed(**changes):
    """Build a 3x2 rgb8 image message with some fields overridden."""
    good = {'encoding': 'rgb8', 'height': 2, 'width': 3, 'step': 9, 'data': bytes(18),
            'is_bigendian': 0}
    return SimpleNamespace(**{**good, **changes})


@pytest.mark.parametrize('m, reason', [
    (malformed(encoding='bayer_rggb8'), 'unknown_encoding'),
    (malformed(height=0, data=b''), 'empty'),
    (malformed(width=0), 'empty'),
    (malformed(step=8), 'step_too_small'),
    (malformed(data=bytes(17)), 'truncated'),
    (malformed(step=10, data=bytes(19)), 'truncated'),
    (malformed(encoding='yuyv', step=6), 'odd_width'),
])
def test_malformed_images_are_rejected_with_reason(m, reason):
    """Reject malformed images before any backend sees them."""
    for call in (convert, image_msg_to_rgb):
        with pytest.raises(InputError) as err:
            call(m)
        assert err.value.reason == reason


@pytest.fixture(scope='module')
def chelsea():
    """Provide a natural test image."""
    return skdata.chelsea()


def encoded(image, fmt, **options):
    """Compress an image with Pillow."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_compressed_png_decodes_exactly(chelsea):
    """Decode a PNG losslessly from any container."""
    data = encoded(chelsea, 'PNG')
    for container in (data, array.array('B', data), np.frombuffer(data, np.uint8)):
        np.testing.assert_array_equal(compressed_to_rgb('png', container), chelsea)


def test_compressed_jpeg_decodes_approximately(chelsea):
    """Decode a JPEG close to the original."""
    out = compressed_to_rgb('rgb8; jpeg compressed bgr8', encoded(chelsea, 'JPEG', quality=95))
    assert out.shape == chelsea.shape and out.dtype == np.uint8
    assert np.abs(out.astype(float) - chelsea).mean() < 3


@pytest.mark.parametrize('fmt, data', [
    ('jpeg', b''),
    ('jpeg', b'not an image at all'),
    ('png', b'\x89PNG\r\n\x1a\n' + bytes(30)),
    ('16UC1; compressedDepth', b'\x00' * 20),
])
def test_bad_compressed_images_are_rejected(fmt, data):
    """Reject empty, corrupt and depth payloads."""
    with pytest.raises(InputError) as err:
        compressed_to_rgb(fmt, data)
    assert err.value.reason == 'bad_compressed'


def test_channel_orders_against_hand_built_buffers():
    """Buffers laid out by hand (not by rgb_to_encoding) decode to the right pixels."""
    from late_fusion_ros.core.image import image_to_rgb
    rgb = np.array([[[10, 20, 30], [40, 50, 60]]], np.uint8)  # 1 x 2 pixels
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    alpha = np.full_like(r, 255)
    layouts = {
        'rgb8': np.stack([r, g, b], -1), 'bgr8': np.stack([b, g, r], -1),
        'rgba8': np.stack([r, g, b, alpha], -1), 'bgra8': np.stack([b, g, r, alpha], -1),
    }
    for encoding, pixels in layouts.items():
        out = image_to_rgb(encoding, 1, 2, pixels.shape[-1] * 2, pixels.tobytes())
        np.testing.assert_array_equal(out, rgb, err_msg=encoding)
    # mono16 little-endian 0x1234 -> 0x12 in every channel; big-endian bytes the other way.
    little = bytes([0x34, 0x12, 0xff, 0x00])
    out = image_to_rgb('mono16', 1, 2, 4, little)
    np.testing.assert_array_equal(out[0, :, 0], [0x12, 0x00])
    out = image_to_rgb('mono16', 1, 2, 4, bytes([0x12, 0x34, 0x00, 0xff]), is_bigendian=True)
    np.testing.assert_array_equal(out[0, :, 1], [0x12, 0x00])
