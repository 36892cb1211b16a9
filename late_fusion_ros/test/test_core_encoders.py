# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Encoders on real media: espeak-ng speech, sox noise, scikit-image photos.

Every model is loaded once per module; thresholds were measured on these inputs and leave
a margin (the measured values are noted next to each).
"""

import logging

from late_fusion_ros.core import media
from late_fusion_ros.core.audio import AudioFramer
from late_fusion_ros.core.encoders import make_audio_encoder, make_vision_encoder, select_device
from late_fusion_ros.core.encoders.efficientnet import (_crop_plan, imagenet_class_names,
                                                        ORT_TOLERANCE, resize_center_crop)
import numpy as np
import pytest

CATS = range(281, 286)  # ImageNet-1k: tabby, tiger cat, Persian, Siamese, Egyptian cat


def floats(int16):
    """Return int16 samples as float32 in [-1, 1]."""
    return np.asarray(int16, np.float32) / 32768.0


@pytest.fixture(scope='module')
def silero():
    """Load silero VAD once."""
    return make_audio_encoder('silero_vad', device='cpu')


@pytest.fixture(scope='module')
def voice():
    """Load Resemblyzer once."""
    enc = make_audio_encoder('resemblyzer', device='cpu')
    enc.warmup()
    return enc


@pytest.fixture(scope='module')
def face():
    """Load the MediaPipe face encoder once."""
    enc = make_vision_encoder('face', device='cpu', top_k=5)
    enc.warmup()
    yield enc
    enc.close()


@pytest.fixture(scope='module')
def efficientnet():
    """Load EfficientNet-Lite0 once (ONNX Runtime on the CPU: the default)."""
    return make_vision_encoder('efficientnet_lite0', device='cpu', top_k=5)


@pytest.fixture(scope='module')
def efficientnet_torch():
    """Load EfficientNet-Lite0 in PyTorch (what runs on CUDA)."""
    return make_vision_encoder('efficientnet_lite0', device='cpu', top_k=5, runtime='torch')


# ---------------------------------------------------------------- device selection

def test_cuda_request_falls_back_to_cpu_with_a_warning(caplog):
    torch = pytest.importorskip('torch')
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA: no fallback to see')
    with caplog.at_level(logging.WARNING):
        assert select_device('cuda').type == 'cpu'
        assert select_device('cuda:1').type == 'cpu'
    assert 'CUDA is not available' in caplog.text
    assert select_device('CPU').type == 'cpu'
    with pytest.raises(ValueError, match='unknown device'):
        select_device('tpu')


def test_unknown_encoder_names_are_errors():
    with pytest.raises(ValueError, match='unknown audio encoder'):
        make_audio_encoder('nope')
    with pytest.raises(ValueError, match='unknown vision encoder'):
        make_vision_encoder('nope')


# ---------------------------------------------------------------- silero VAD

def vad_probs(enc, samples):
    enc.reset()
    x = floats(samples)
    n = enc.window
    return np.array([enc.encode(x[i:i + n]).scores[0] for i in range(0, len(x) - n + 1, n)])


def test_silero_separates_speech_from_silence_and_noise(silero):
    speech, _ = media.scenario('speech speech speech')
    # Measured: 93% of speech chunks > 0.5; silence max 0.009; pink noise max 0.06.
    assert np.mean(vad_probs(silero, speech) > 0.5) > 0.8
    assert np.mean(vad_probs(silero, np.zeros(3 * 16000, np.int16)) < 0.1) > 0.95
    assert np.mean(vad_probs(silero, media.noise(3.0)) < 0.1) > 0.95


# ---------------------------------------------------------------- Resemblyzer

def utterance_embedding(enc, samples):
    """Frame like the audio node does (window 1.6 s, hop 0.5 s); average the windows."""
    framer = AudioFramer(enc.window, enc.hop)
    x = floats(samples)
    x = np.concatenate([x, np.zeros(max(0, enc.window - len(x)), np.float32)])
    frames = framer.push(x, 0.0, enc.sample_rate)
    assert len(frames) == (len(x) - enc.window) // enc.hop + 1
    embs = np.array([enc.encode(f.samples).data for f in frames])
    mean = embs.mean(axis=0)
    return mean / np.linalg.norm(mean)


def test_resemblyzer_windows_and_outputs(voice):
    assert (voice.sample_rate, voice.window, voice.hop) == (16000, 25600, 8000)
    out = voice.encode(floats(media.speech(media.SENTENCES[1])[:voice.window]))
    assert out.data.shape == (256,) and out.data.dtype == np.float32
    assert np.linalg.norm(out.data) == pytest.approx(1.0, abs=1e-5)
    assert out.labels == ['voiced']
    # Measured: a speech window 0.92 voiced, digital silence 0.04.
    assert out.scores[0] > 0.6
    assert voice.encode(np.zeros(voice.window, np.float32)).scores[0] < 0.2


def test_resemblyzer_hop_is_a_parameter():
    enc = make_audio_encoder('resemblyzer', hop_seconds=0.25)
    assert enc.hop == 4000 and enc.window == 25600
    with pytest.raises(ValueError, match='hop_seconds'):
        make_audio_encoder('resemblyzer', hop_seconds=2.0)


def test_resemblyzer_same_voice_is_closer_than_another_voice(voice):
    us = [utterance_embedding(voice, media.speech(s, voice='en-us')) for s in media.SENTENCES]
    f2 = [utterance_embedding(voice, media.speech(s, voice='en-us+f2'))
          for s in media.SENTENCES]
    # Different sentences throughout, so only the voice can make pairs similar.
    # Measured: same voice 0.80-0.85, across voices 0.64-0.68.
    same = [a @ b for group in (us, f2) for i, a in enumerate(group) for b in group[i + 1:]]
    across = [a @ b for i, a in enumerate(us) for j, b in enumerate(f2) if i != j]
    assert min(same) > max(across) + 0.05


# ---------------------------------------------------------------- face

def open_mouth(rgb, pts, gap):
    """Drop the jaw of the face with landmarks `pts` by `gap` pixels and darken the gap."""
    import cv2
    h, w = rgb.shape[:2]
    cx, lip = (pts[61, 0] + pts[291, 0]) / 2, (pts[13, 1] + pts[14, 1]) / 2
    width, below_chin = np.linalg.norm(pts[61] - pts[291]), pts[152, 1] + 20
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    across = np.exp(-((xx - cx) / (0.8 * width)) ** 2)
    down = np.clip((yy - lip) / 3, 0, 1) * np.clip((below_chin - yy) / (below_chin - lip), 0, 1)
    out = cv2.remap(rgb, xx, (yy - gap * across * down).astype(np.float32), cv2.INTER_LINEAR)
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (int(cx), int(lip + gap / 2)), (int(0.4 * width), int(gap / 2)), 0, 0,
                360, 255, -1)
    out[mask > 0] //= 4
    return out


def test_face_on_the_astronaut(face):
    out = face.encode(media.photo('astronaut'))
    assert out.labels == ['face', 'mouth_open', 'mouth_moving']
    assert out.data.shape == (10,)
    x, y, w, h, score = out.data[:5]
    assert score == out.scores[0] > 0.8
    # Her face spans about x 0.33-0.55, y 0.12-0.35 of the 512 x 512 photo.
    assert 0.38 < x + w / 2 < 0.50 and 0.18 < y + h / 2 < 0.30
    assert 0.12 < w < 0.30 and 0.12 < h < 0.30
    assert out.data[9] == 1
    # A smile showing teeth (measured 0.12); frontal (yaw -0.03, roll 0.05 rad).
    assert 0.05 < out.scores[1] < 0.2
    assert abs(out.data[7]) < 0.15 and abs(out.data[8]) < 0.2


@pytest.mark.parametrize('name', ['chelsea', 'coffee'])
def test_no_face_in_photos_without_people(face, name):
    out = face.encode(media.photo(name))
    assert not out.scores.any() and not out.data.any()


def test_mouth_moving_needs_a_moving_mouth(face):
    img = media.photo('astronaut')
    box, _ = face._largest_face(img)
    opened = open_mouth(img, face._landmarks(img, box), 12)
    assert face.encode(opened).scores[1] > face.encode(img).scores[1] + 0.06

    face.reset()
    static = [face.encode(img, stamp=0.1 * i).scores[2] for i in range(10)]
    face.reset()
    talking = [face.encode(opened if i % 2 else img, stamp=0.1 * i).scores[2]
               for i in range(10)]
    # Measured: static 0.0; alternating about 0.9.
    assert max(static) < 0.1
    assert talking[-1] > 0.5 > max(static)
    assert talking[:2] == [0.0, 0.0]  # fewer than 3 frames: no verdict yet

    # A frame without a face clears the history; so does a stamp far past the horizon.
    assert face.encode(media.photo('chelsea')).scores[2] == 0.0
    assert face.encode(img, stamp=1.0).scores[2] == 0.0
    face.reset()
    spaced = [face.encode(opened if i % 2 else img, stamp=5.0 * i).scores[2] for i in range(6)]
    assert max(spaced) == 0.0
    # Without stamps the call time stands in: a quick alternation still counts.
    face.reset()
    assert [face.encode(opened if i % 2 else img).scores[2] for i in range(6)][-1] > 0.5


# ---------------------------------------------------------------- EfficientNet

def test_efficientnet_sees_a_cat(efficientnet):
    out = efficientnet.encode(media.photo('chelsea'), stamp=12.5)
    assert imagenet_class_names().index(out.labels[0]) in CATS
    assert out.data.shape == (1280,)


def _frames():
    """Camera frames as drivers send them (720p, 480p, 1080p) and the photos themselves."""
    return ([media.camera_frame(n) for n in ('astronaut', 'chelsea', 'coffee', 'rocket')]
            + [media.camera_frame('coffee', 640, 480), media.camera_frame('rocket', 1920, 1080)]
            + [media.photo(n) for n in ('astronaut', 'chelsea')])


def test_efficientnet_runs_on_onnxruntime_as_in_pytorch(efficientnet, efficientnet_torch):
    """Frame by frame, the ONNX Runtime outputs are PyTorch's within ORT_TOLERANCE."""
    assert efficientnet.runtime == 'onnxruntime' and efficientnet_torch.runtime == 'torch'
    for rgb in _frames():
        a, b = efficientnet.encode(rgb), efficientnet_torch.encode(rgb)
        # Measured: features 6e-6 (values up to ~3), probabilities 4e-7.
        np.testing.assert_allclose(a.data, b.data, rtol=0, atol=ORT_TOLERANCE['features'])
        np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=ORT_TOLERANCE['probs'])
        assert a.labels == b.labels


def test_efficientnet_batches_equal_single_frames(efficientnet, efficientnet_torch):
    """A batch gives each frame's own outputs: bitwise on ONNX Runtime, 1e-5 in PyTorch."""
    frames = _frames()
    single = [efficientnet.encode(rgb) for rgb in frames]
    for got, want in zip(efficientnet.encode_batch(frames), single):
        assert np.array_equal(got.data, want.data) and got.labels == want.labels
        assert np.array_equal(got.scores, want.scores)
    for got, rgb in zip(efficientnet_torch.encode_batch(frames[:3]), frames):
        want = efficientnet_torch.encode(rgb)
        np.testing.assert_allclose(got.data, want.data, rtol=0, atol=1e-5)
        assert got.labels == want.labels


def test_onnx_export_is_cached_and_a_damaged_cache_is_redone(tmp_path):
    """The export is written once; a cached file that cannot be loaded is exported again."""
    first = make_vision_encoder('efficientnet_lite0', cache_dir=str(tmp_path))
    cached = list(tmp_path.glob('efficientnet_lite0-*.onnx'))
    assert len(cached) == 1 and first.runtime == 'onnxruntime'
    rgb = media.camera_frame('chelsea')
    want = first.encode(rgb)
    cached[0].write_bytes(b'not an onnx model')
    again = make_vision_encoder('efficientnet_lite0', cache_dir=str(tmp_path))
    assert again.runtime == 'onnxruntime' and cached[0].stat().st_size > 1e6
    assert np.array_equal(again.encode(rgb).data, want.data)


def _full_resize_then_crop(rgb, size):
    """Resize the whole frame (short side to size * 256/224), then crop: the reference."""
    from PIL import Image
    h, w = rgb.shape[:2]
    scale = round(size * 256 / 224) / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    img = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR))
    top, left = (nh - size) // 2, (nw - size) // 2
    return img[top:top + size, left:left + size]


def test_centre_crop_resamples_only_the_crop_and_gives_the_same_pixels():
    """
    Pixel for pixel the full resize's crop, whatever the frame size.

    Whether only the crop's part of the frame was resampled (720p, 1080p) or the whole.
    """
    rng = np.random.default_rng(3)
    shapes = [(720, 1280), (1080, 1920), (480, 640), (300, 451), (97, 301), (500, 200),
              (224, 224), (360, 640)]
    frames = _frames() + [rng.integers(0, 256, shape + (3,), dtype=np.uint8)
                          for shape in shapes for _ in range(3)]
    # A 1-level flip of one PIL coefficient shows in ~1 of 8,000 values: 20 more 720p frames.
    frames += [rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8) for _ in range(20)]
    for rgb in frames:
        assert np.array_equal(resize_center_crop(rgb, 224), _full_resize_then_crop(rgb, 224))
    # 1280x720 and 1920x1080 resample only the crop's part of the frame.
    assert _crop_plan(720, 1280, 224)[0] == (256, 45, 1024, 675)
    assert _crop_plan(1080, 1920, 224)[0] == (384, 0, 1536, 1080)
    # A strided view (a padded message's rows) gives the same pixels as a copy.
    padded = np.zeros((720, 1290, 3), np.uint8)
    padded[:, :1280] = frames[0]
    assert np.array_equal(resize_center_crop(padded[:, :1280], 224),
                          resize_center_crop(frames[0], 224))
