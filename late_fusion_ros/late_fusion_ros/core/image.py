# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Conversion of sensor_msgs/Image and CompressedImage payloads to RGB arrays.

The colour conversions are OpenCV's, called through rosbags-image (the conversions
cv_bridge calls too): RGB/BGR(A) in 8 and 16 bits, mono8/mono16, the four Bayer mosaics in
8 and 16 bits (industrial and machine-vision cameras), packed YUV 4:2:2 (usb_cam's
yuv422_yuy2, uyvy) and NV12/NV21. What stays here are the checks a library would not make
before touching the bytes: the geometry (width, height, step against the encoding's pixel
size and layout) and the size limits, so that a malformed or enormous message is refused
with a reason before anything is allocated for it. `image_reference.image_to_rgb` is the
pure-numpy oracle the tests hold this conversion against.
"""

import io
import types

from late_fusion_ros.core.errors import InputError
import numpy as np
from PIL import Image

# encoding -> (bytes per pixel, layout). 'packed': one pixel after the other; 'pair': YUV
# 4:2:2, two pixels share their chroma, so the width is even; 'nv': a Y plane of height
# rows followed by height / 2 rows of interleaved chroma (4:2:0), so both sizes are even.
# These are the encodings rosbags-image converts to rgb8 (sensor_msgs/image_encodings).
GEOMETRY = {
    **{e: (1, 'packed') for e in ('mono8', 'bayer_rggb8', 'bayer_bggr8', 'bayer_gbrg8',
                                  'bayer_grbg8')},
    **{e: (2, 'packed') for e in ('mono16', 'bayer_rggb16', 'bayer_bggr16', 'bayer_gbrg16',
                                  'bayer_grbg16')},
    'rgb8': (3, 'packed'), 'bgr8': (3, 'packed'), 'rgba8': (4, 'packed'),
    'bgra8': (4, 'packed'), 'rgb16': (6, 'packed'), 'bgr16': (6, 'packed'),
    'rgba16': (8, 'packed'), 'bgra16': (8, 'packed'),
    **{e: (2, 'pair') for e in ('yuv422', 'uyvy', 'yuyv', 'yuv422_yuy2')},
    'nv12': (1, 'nv'), 'nv21': (1, 'nv'),
}
ENCODINGS = tuple(GEOMETRY)
# Default bound on one image's bytes (the nodes make it a read-only parameter): an 8K RGBA
# frame is 133 MB; 64 MB takes 4K rgb16 and anything smaller.
MAX_IMAGE_BYTES = 64 * 1024 * 1024


def checked_rows(encoding: str, height: int, width: int, step: int, data,
                 max_bytes: int = MAX_IMAGE_BYTES) -> np.ndarray:
    """
    Check an Image's geometry against its data; return its pixel rows without padding.

    The result is an (rows, width * bytes per pixel) uint8 view of `data` (rows = height, or
    height * 3 / 2 for NV12/NV21). Data beyond `step * rows` is ignored, as are the padding
    bytes at the end of each row. InputError, with a reason key, for anything else: an
    encoding with no conversion, no pixels, an odd size a layout cannot have, a step too
    small, declared or carried bytes above `max_bytes`, or data shorter than declared.
    """
    try:
        bpp, layout = GEOMETRY[encoding.lower()]
    except KeyError:
        raise InputError('unknown_encoding', f'unsupported image encoding {encoding!r}; '
                         f'supported: {", ".join(ENCODINGS)}') from None
    if height <= 0 or width <= 0:
        raise InputError('empty', f'image has no pixels ({width}x{height})')
    if layout in ('pair', 'nv') and width % 2:
        raise InputError('odd_width', f'{encoding} packs pixel pairs; width {width} is odd')
    if layout == 'nv' and height % 2:
        raise InputError('odd_height', f'{encoding} shares chroma between row pairs; '
                         f'height {height} is odd')
    if step < width * bpp:
        raise InputError('step_too_small',
                         f'step {step} < width {width} * {bpp} bytes per pixel')
    rows = height * 3 // 2 if layout == 'nv' else height
    declared = step * rows
    if max(declared, len(data)) > max_bytes:
        raise InputError('too_large', f'{width}x{height} {encoding} image of '
                         f'{max(declared, len(data))} bytes is above the limit of '
                         f'{max_bytes} bytes (max_image_bytes)')
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size < declared:
        raise InputError('truncated',
                         f'{raw.size} bytes of data < step {step} * {rows} rows')
    return raw[:declared].reshape(rows, step)[:, :width * bpp]


def image_msg_to_rgb(msg, max_bytes: int = MAX_IMAGE_BYTES, copy: bool = True) -> np.ndarray:
    """
    Convert a sensor_msgs/Image-like object to a new (H, W, 3) uint8 RGB array.

    With `copy` False, an rgb8 image comes back as a read-only view of `msg.data` (its rows,
    whatever the step) instead of a copy: for a reader that only reads the pixels while the
    message lives, e.g. fusion_offline's encoders (a 1280x720 copy costs ~2 ms).
    """
    from rosbags.image import ImageError, image_to_cvimage
    rows = checked_rows(msg.encoding, msg.height, msg.width, msg.step, msg.data, max_bytes)
    if not copy and msg.encoding.lower() == 'rgb8':
        return rows.reshape(msg.height, msg.width, 3)
    # rosbags-image reads unpadded rows (it ignores step) and, for NV12/NV21, takes `height`
    # as the number of rows in the buffer: both are handed over that way.
    compact = types.SimpleNamespace(
        encoding=msg.encoding.lower(), height=rows.shape[0], width=msg.width,
        data=np.ascontiguousarray(rows).reshape(-1), is_bigendian=msg.is_bigendian)
    try:
        rgb = image_to_cvimage(compact, 'rgb8')
    except (ImageError, ValueError) as err:
        raise InputError('conversion_error', f'{msg.encoding}: {err}') from err
    return np.require(rgb, np.uint8, ['C', 'W', 'O'])


def check_compressed(fmt: str, data, max_bytes: int = MAX_IMAGE_BYTES,
                     max_pixels: int = MAX_IMAGE_BYTES // 3):
    """
    Check a CompressedImage payload from its header alone; return the opened PIL image.

    InputError ('bad_compressed', 'too_large') for a depth format, no data, bytes that are
    no image, or more bytes or pixels than allowed: a decompression bomb is refused before
    it is decoded. The pixels are only decoded by compressed_to_rgb.
    """
    if 'compresseddepth' in fmt.lower():
        raise InputError('bad_compressed', f'format {fmt!r} is a depth image, not colour')
    if len(data) > max_bytes:
        raise InputError('too_large', f'compressed image of {len(data)} bytes is above the '
                         f'limit of {max_bytes} bytes (max_image_bytes)')
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size == 0:
        raise InputError('bad_compressed', 'compressed image has no data')
    try:
        img = Image.open(io.BytesIO(raw))
    except Image.DecompressionBombError as err:
        raise InputError('too_large', f'compressed image refused: {err}') from err
    except (OSError, ValueError) as err:
        raise InputError('bad_compressed', f'cannot decode {fmt!r} image: {err}') from err
    if img.width * img.height > max_pixels:
        img.close()
        raise InputError('too_large', f'compressed image decodes to {img.width}x'
                         f'{img.height} pixels, above the limit of {max_pixels}')
    return img


def compressed_to_rgb(fmt: str, data, max_bytes: int = MAX_IMAGE_BYTES,
                      max_pixels: int = MAX_IMAGE_BYTES // 3) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage payload (jpeg, png, ...) to (H, W, 3) uint8 RGB."""
    img = check_compressed(fmt, data, max_bytes, max_pixels)
    try:
        with img:
            return np.array(img.convert('RGB'))
    except (OSError, ValueError) as err:  # a valid header over truncated or corrupt data
        raise InputError('bad_compressed', f'cannot decode {fmt!r} image: {err}') from err


def warm_up_conversions() -> None:
    """
    Convert one tiny frame of each common encoding, and one jpeg, once.

    The first conversion imports rosbags-image and OpenCV and initialises their tables, and
    the first jpeg loads PIL's decoder: together up to a second, during which the holder of
    the GIL stalls every other thread of the node. Done at start-up, before the node
    subscribes, a camera's first frames meet a warm path instead of a full reader queue.
    """
    for encoding, bpp in (('rgb8', 3), ('bgr8', 3), ('mono8', 1), ('yuv422_yuy2', 2)):
        frame = types.SimpleNamespace(encoding=encoding, height=2, width=4, step=4 * bpp,
                                      data=bytes(8 * bpp), is_bigendian=0)
        image_msg_to_rgb(frame)
    jpeg = io.BytesIO()
    Image.new('RGB', (8, 8)).save(jpeg, format='JPEG')
    compressed_to_rgb('jpeg', jpeg.getvalue())
