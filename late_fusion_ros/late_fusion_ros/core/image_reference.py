# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
A pure-numpy reference for raw image encodings, in both directions.

``image_to_rgb`` decodes the packed encodings by hand: the oracle the tests hold the
library conversion (``late_fusion_ros.core.image``, OpenCV through rosbags-image) against.
``rgb_to_encoding`` lays RGB pixels out in any encoding the nodes accept, for the tests'
and benchmarks' camera publishers (OpenCV has no conversion *to* packed YUV 4:2:2 or to
Bayer mosaics).

YUV uses the BT.601 limited-range coefficients of OpenCV's COLOR_YUV2RGB_* conversions.
OpenCV scales mono16 to 8 bits by v * 255 / 65535 where the reference shifts right by 8:
they differ by at most one level.
"""

from late_fusion_ros.core.errors import InputError
import numpy as np

# encoding -> (bytes per pixel, layout, layout argument).
# 'order': byte index of R, G, B within a pixel; 'yuv': byte index of Y0, U, Y1, V
# within a two-pixel macropixel.
_ENCODINGS = {
    'rgb8': (3, 'order', (0, 1, 2)),
    'bgr8': (3, 'order', (2, 1, 0)),
    'rgba8': (4, 'order', (0, 1, 2)),
    'bgra8': (4, 'order', (2, 1, 0)),
    'mono8': (1, 'order', (0, 0, 0)),
    'mono16': (2, 'mono16', None),
    'yuv422_yuy2': (2, 'yuv', (0, 1, 2, 3)),
    'yuyv': (2, 'yuv', (0, 1, 2, 3)),
    'uyvy': (2, 'yuv', (1, 0, 3, 2)),
    'yuv422': (2, 'yuv', (1, 0, 3, 2)),
}
# OpenCV's fixed-point BT.601 constants (ITUR_BT_601_* / 2**20), limited range.
_CY, _CVR, _CVG, _CUG, _CUB = 1.164, 1.596, -0.813, -0.391, 2.018
# Luma weights of OpenCV's RGB2GRAY.
_LUMA = np.array([0.299, 0.587, 0.114])


def _spec(encoding: str):
    try:
        return _ENCODINGS[encoding.lower()]
    except KeyError:
        raise InputError('unknown_encoding',
                         f'unsupported image encoding {encoding!r}; '
                         f'supported: {", ".join(_ENCODINGS)}') from None


def _validated_rows(encoding: str, height: int, width: int, step: int, data):
    """
    Check geometry against the data; return the spec and an (H, W * bpp) uint8 view.

    Data shorter than step * height is rejected as 'truncated'; bytes beyond it
    are ignored, as are the padding bytes at the end of each row.
    """
    bpp, layout, arg = _spec(encoding)
    if height <= 0 or width <= 0:
        raise InputError('empty', f'image has no pixels ({width}x{height})')
    if layout == 'yuv' and width % 2:
        raise InputError('odd_width', f'{encoding} packs pixel pairs; width {width} is odd')
    if step < width * bpp:
        raise InputError('step_too_small',
                         f'step {step} < width {width} * {bpp} bytes per pixel')
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size < step * height:
        raise InputError('truncated',
                         f'{raw.size} bytes of data < step {step} * height {height}')
    rows = raw[:step * height].reshape(height, step)[:, :width * bpp]
    return (bpp, layout, arg), rows


def _yuv422_to_rgb(rows: np.ndarray, order) -> np.ndarray:
    macro = rows.reshape(rows.shape[0], -1, 4).astype(np.float32)
    y0, u, y1, v = (macro[..., i] for i in order)
    # Interleave the two lumas of each macropixel back into pixel order.
    y = np.maximum(np.stack([y0, y1], axis=-1).reshape(rows.shape[0], -1) - 16, 0) * _CY
    u = np.repeat(u - 128, 2, axis=1)
    v = np.repeat(v - 128, 2, axis=1)
    rgb = np.stack([y + _CVR * v, y + _CUG * u + _CVG * v, y + _CUB * u], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def image_to_rgb(encoding: str, height: int, width: int, step: int, data,
                 is_bigendian: bool = False) -> np.ndarray:
    """Convert raw image bytes to a new (H, W, 3) uint8 RGB array in pure numpy."""
    (bpp, layout, arg), rows = _validated_rows(encoding, height, width, step, data)
    if layout == 'yuv':
        return _yuv422_to_rgb(rows, arg)
    if layout == 'mono16':
        gray = (rows.view('>u2' if is_bigendian else '<u2') >> 8).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    pixels = rows.reshape(height, width, bpp)
    return np.stack([pixels[..., i] for i in arg], axis=-1)


def rgb_to_encoding(rgb: np.ndarray, encoding: str) -> tuple:
    """
    Encode an (H, W, 3) uint8 RGB array as unpadded little-endian rows: (bytes, step).

    Mono encodings store OpenCV's luma (mono16 as luma * 257); YUV 4:2:2 uses
    the inverse of the decoder's BT.601 limited-range matrix with the chroma of
    each pixel pair averaged.
    """
    height, width, _ = rgb.shape
    rgbf = rgb.astype(np.float64)
    enc = encoding.lower()
    if enc.startswith('bayer_'):
        # One colour per pixel, in the 2x2 tile the name spells in raster order.
        mosaic = np.empty((height, width), np.uint8)
        tile = ((0, 0), (0, 1), (1, 0), (1, 1))
        for letter, (dy, dx) in zip(enc[6:10], tile):
            mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, 'rgb'.index(letter)]
        if enc.endswith('16'):
            return (mosaic.astype('<u2') * 257).tobytes(), width * 2
        return mosaic.tobytes(), width
    if enc in ('nv12', 'nv21'):
        # A full-resolution Y plane, then one interleaved chroma pair per 2x2 block.
        if width % 2 or height % 2:
            raise InputError('odd_size', f'{encoding} needs an even size, got {width}x{height}')
        y = 16 + rgbf @ [65.481, 128.553, 24.966] / 255
        u = 128 + rgbf @ [-37.797, -74.203, 112.0] / 255
        v = 128 + rgbf @ [112.0, -93.786, -18.214] / 255

        def block(c):
            return c.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
        pair = (block(u), block(v)) if enc == 'nv12' else (block(v), block(u))
        chroma = np.stack(pair, axis=-1).reshape(height // 2, width)
        planes = np.concatenate([y, chroma])
        return np.clip(np.rint(planes), 0, 255).astype(np.uint8).tobytes(), width
    if enc in ('rgb16', 'bgr16', 'rgba16', 'bgra16'):
        data, step = rgb_to_encoding(rgb, enc[:-2] + '8')
        return (np.frombuffer(data, np.uint8).astype('<u2') * 257).tobytes(), step * 2
    bpp, layout, arg = _spec(encoding)
    if layout == 'yuv':
        if width % 2:
            raise InputError('odd_width', f'{encoding} needs an even width, got {width}')
        y = 16 + rgbf @ [65.481, 128.553, 24.966] / 255
        u = 128 + rgbf @ [-37.797, -74.203, 112.0] / 255
        v = 128 + rgbf @ [112.0, -93.786, -18.214] / 255
        pair = (slice(None), slice(None, None, 2))
        odd = (slice(None), slice(1, None, 2))
        planes = [y[pair], (u[pair] + u[odd]) / 2, y[odd], (v[pair] + v[odd]) / 2]
        macro = np.stack([planes[i] for i in np.argsort(arg)], axis=-1)
        pixels = np.clip(np.rint(macro), 0, 255).astype(np.uint8)
    elif layout == 'mono16':
        pixels = (np.rint(rgbf @ _LUMA).astype('<u2') * 257).astype('<u2')
    elif bpp == 1:
        pixels = np.rint(rgbf @ _LUMA).astype(np.uint8)
    else:
        pixels = np.full((height, width, bpp), 255, dtype=np.uint8)
        pixels[..., list(arg)] = rgb
    return pixels.tobytes(), width * bpp
