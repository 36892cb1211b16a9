# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Unit tests of the ROS-free image core: raw encodings, validation, compressed images.

The conversion is OpenCV's (through rosbags-image); the pure-numpy reference in
core/image_reference.py is the oracle it is held against.
"""

import array
import io
from types import SimpleNamespace

from late_fusion_ros.core.errors import InputError
from late_fusion_ros.core.image import compressed_to_rgb, ENCODINGS, image_msg_to_rgb
from late_fusion_ros.core.image_reference import image_to_rgb, rgb_to_encoding
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
    rows = np.frombuffer(data, np.uint8).reshape(-1, step)  # NV12/NV21: 1.5 x height rows
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
@pytest.mark.parametrize('is_bigendian', [False, True])
def test_msg_conversion_agrees_with_reference(encoding, pad, is_bigendian):
    """Convert with OpenCV (through rosbags-image) to the reference's pixels, padded or not."""
    m = msg(encoding, GRAY if encoding in MONO else RGB, pad=pad,
            is_bigendian=is_bigendian and encoding == 'mono16')
    out = image_msg_to_rgb(m)
    assert out.shape == (m.height, m.width, 3) and out.dtype == np.uint8
    assert out.flags.writeable and out.flags.c_contiguous
    # OpenCV scales mono16 by 255 / 65535 where the reference shifts by 8.
    assert np.abs(out.astype(int) - convert(m)).max() <= (1 if encoding == 'mono16' else 0)


# Colour blocks of 4x4 pixels: inside a block every demosaicing and 4:2:0 subsampling
# gives the block's colour back.
BLOCKS = np.repeat(np.repeat(RNG.integers(0, 256, (4, 5, 3), dtype=np.uint8), 4, axis=0),
                   4, axis=1)
INSIDE = (slice(1, None, 4), slice(1, None, 4))  # one pixel well inside each block
BAYER = [f'bayer_{p}{bits}' for p in ('rggb', 'bggr', 'gbrg', 'grbg') for bits in (8, 16)]


@pytest.mark.parametrize('encoding', BAYER)
def test_bayer_mosaics_demosaic_to_the_right_colours(encoding):
    """Industrial cameras' Bayer patterns, 8 and 16 bits, in the right channel order."""
    out = image_msg_to_rgb(msg(encoding, BLOCKS, pad=2))
    inner = (slice(1, None, 4), slice(1, None, 4))
    # Bilinear demosaicing is exact at the centre of a flat block.
    for dy, dx in ((1, 1), (1, 2), (2, 1), (2, 2)):
        sel = (slice(dy, None, 4), slice(dx, None, 4))
        assert np.abs(out[sel].astype(int) - BLOCKS[sel]).max() <= 1, (encoding, dy, dx)
    assert out[inner].shape == BLOCKS[inner].shape


@pytest.mark.parametrize('encoding', ['nv12', 'nv21'])
def test_nv12_and_nv21_planes(encoding):
    """4:2:0 planar YUV: the chroma plane follows the luma rows; U/V order per name."""
    m = msg(encoding, BLOCKS, pad=4)
    assert len(m.data) == m.step * m.height * 3 // 2
    out = image_msg_to_rgb(m)
    assert out.shape == BLOCKS.shape
    assert np.abs(out.astype(int) - BLOCKS).max() <= 3
    with pytest.raises(InputError) as err:
        image_msg_to_rgb(SimpleNamespace(encoding=encoding, height=3, width=4, step=4,
                                         data=bytes(18), is_bigendian=0))
    assert err.value.reason == 'odd_height'


@pytest.mark.parametrize('encoding', ['rgb16', 'bgr16', 'rgba16', 'bgra16'])
@pytest.mark.parametrize('is_bigendian', [False, True])
def test_16_bit_colour(encoding, is_bigendian):
    """16-bit colour of either byte order scales to the same 8-bit pixels."""
    np.testing.assert_array_equal(
        image_msg_to_rgb(msg(encoding, RGB, pad=2, is_bigendian=is_bigendian)), RGB)


def test_every_listed_encoding_converts():
    """Each encoding the nodes accept converts to an RGB frame of the right size."""
    for encoding in ENCODINGS:
        out = image_msg_to_rgb(msg(encoding, BLOCKS))
        assert out.shape == BLOCKS.shape, encoding


def malformed(**changes):
    """Build a 3x2 rgb8 image message with some fields overridden."""
    good = {'encoding': 'rgb8', 'height': 2, 'width': 3, 'step': 9, 'data': bytes(18),
            'is_bigendian': 0}
    return SimpleNamespace(**{**good, **changes})


@pytest.mark.parametrize('m, reason', [
    (malformed(encoding='32FC1'), 'unknown_encoding'),
    (malformed(encoding='h264'), 'unknown_encoding'),
    (malformed(height=100_000, width=100_000, step=300_000), 'too_large'),
    (malformed(data=bytes(65 * 1024 * 1024)), 'too_large'),
    (malformed(height=0, data=b''), 'empty'),
    (malformed(width=0), 'empty'),
    (malformed(step=8), 'step_too_small'),
    (malformed(data=bytes(17)), 'truncated'),
    (malformed(step=10, data=bytes(19)), 'truncated'),
    (malformed(encoding='yuyv', step=6), 'odd_width'),
])
def test_malformed_images_are_rejected_with_reason(m, reason):
    """Reject malformed or oversized images before any conversion sees them."""
    with pytest.raises(InputError) as err:
        image_msg_to_rgb(m)
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


def test_compressed_decompression_bomb_is_refused_before_decoding():
    """A small PNG that would decode to more pixels than allowed is refused from its header."""
    bomb = encoded(np.zeros((4000, 4000), np.uint8), 'PNG')
    assert len(bomb) < 100_000
    with pytest.raises(InputError) as err:
        compressed_to_rgb('png', bomb, max_pixels=4000 * 3999)
    assert err.value.reason == 'too_large'
    with pytest.raises(InputError) as err:
        compressed_to_rgb('jpeg', bytes(100), max_bytes=99)
    assert err.value.reason == 'too_large'


def test_channel_orders_against_hand_built_buffers():
    """Buffers laid out by hand (not by rgb_to_encoding) decode to the right pixels."""
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
