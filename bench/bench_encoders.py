# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Benchmark of the encoders in process (no ROS): every registered model on real media.

Every encoder registered in `late_fusion_ros.core.encoders` (entries that need a model file
or plugin are listed as skipped) on real media, torch with one thread: time per input
(median, p90) and real-time factor. Audio: espeak-ng speech cut into the encoder's windows;
RTF = processing time / audio duration of one hop. Vision: scikit-image photos at 640x480;
RTF = processing time / 33.3 ms (30 fps). The encoder *nodes* fed by driver-like publishers
are measured in bench_drivers.py.

    python bench/bench_encoders.py [--inputs 300]
"""

import argparse
import inspect
import time

from benchlib import pct, table
import numpy as np

PHOTOS = ['astronaut', 'chelsea', 'coffee', 'rocket']
CAMERA = (480, 640)
NEEDS_FILE = ('torchscript', 'onnx', 'plugin', 'file', 'path')


def camera_photo(name):
    """Return the scikit-image photo `name` scaled and centre-cropped to 640x480 RGB."""
    from late_fusion_ros.core.media import camera_frame
    return camera_frame(name, CAMERA[1], CAMERA[0])


def real_speech(rate, seconds):
    """Return about `seconds` of espeak-ng speech and silence at `rate` (int16)."""
    from late_fusion_ros.core.media import scenario
    audio, _ = scenario('speech silence speech speech', gap=1.0, rate=rate)
    reps = int(np.ceil(seconds * rate / len(audio)))
    return np.tile(audio, reps)[:int(seconds * rate)]


def skip_reason(name, factory):
    """Return why a registered encoder cannot be built with defaults here, or ''."""
    if any(word in name.lower() for word in NEEDS_FILE):
        return 'needs a model file or plugin'
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return ''
    required = [p.name for p in sig.parameters.values()
                if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return f'needs {", ".join(required)}' if required else ''


def build(name, factory):
    """Build one encoder on cpu; return (encoder, '') or (None, reason)."""
    reason = skip_reason(name, factory)
    if reason:
        return None, reason
    try:
        enc = factory(device='cpu')
        enc.warmup()
        return enc, ''
    except Exception as e:  # noqa: BLE001 - any failure is reported as a skip
        return None, f'{type(e).__name__}: {str(e)[:60]}'


def bench_in_process(inputs):
    """Part 1: time every registered encoder on real media, one torch thread."""
    import torch
    from late_fusion_ros.core.encoders import AUDIO_ENCODERS, VISION_ENCODERS
    torch.set_num_threads(1)
    rows, skipped, model_ms = [], [], {}
    for name, factory in sorted(AUDIO_ENCODERS.items()):
        enc, reason = build(name, factory)
        if enc is None:
            skipped.append(('audio', name, reason))
            continue
        sr, win, hop = enc.sample_rate, enc.window, enc.hop
        samples = real_speech(sr, (inputs * hop + win) / sr + 0.1).astype(np.float32) / 32768.0
        times = []
        for k in range(inputs):
            x = samples[k * hop:k * hop + win]
            t0 = time.perf_counter()
            enc.encode(x)
            times.append(time.perf_counter() - t0)
        hop_s = hop / sr
        med, p90 = pct(times, 50), pct(times, 90)
        model_ms[name] = med * 1e3
        rows.append(('audio', name, f'{hop_s * 1e3:.0f} ms hop', len(times),
                     f'{med * 1e3:.3f}', f'{p90 * 1e3:.3f}', f'{med / hop_s:.4f}',
                     f'{p90 / hop_s:.4f}', f'{1.0 / med:.0f}/s'))
    photos = [camera_photo(n) for n in PHOTOS]
    period = 1.0 / 30.0
    for name, factory in sorted(VISION_ENCODERS.items()):
        enc, reason = build(name, factory)
        if enc is None:
            skipped.append(('vision', name, reason))
            continue
        n = max(8, inputs // 10)
        times = []
        for k in range(n):
            t0 = time.perf_counter()
            enc.encode(photos[k % len(photos)])
            times.append(time.perf_counter() - t0)
        med, p90 = pct(times, 50), pct(times, 90)
        model_ms[name] = med * 1e3
        rows.append(('vision', name, '640x480 vs 30 fps', n, f'{med * 1e3:.2f}',
                     f'{p90 * 1e3:.2f}', f'{med / period:.3f}', f'{p90 / period:.3f}',
                     f'{1.0 / med:.1f}/s'))
    table('encoders in process (no ROS), torch 1 thread, real media; RTF < 1 keeps up',
          ['kind', 'encoder', 'input', 'n', 'median ms', 'p90 ms', 'RTF med', 'RTF p90',
           'max rate'], rows)
    for kind, name, reason in skipped:
        print(f'  skipped {kind} encoder {name}: {reason}')
    return model_ms


def main():
    """Time every registered encoder and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--inputs', type=int, default=300, help='audio windows per encoder')
    args = parser.parse_args()
    started = time.time()
    bench_in_process(args.inputs)
    print(f'\ntotal {time.time() - started:.1f} s')


if __name__ == '__main__':
    main()
