# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
The user's own model without writing code: a TorchScript or ONNX file plus a YAML spec.

A vision spec (keys not listed are rejected, so that a typo is an error, not a default)::

    input_size: [224, 224]        # model input height, width (required)
    resize: center_crop           # or stretch; center_crop scales the short side to
                                  # size * 256/224 first, as ImageNet evaluation does
    scale: 255                    # x = (pixel / scale - mean) / std, per channel in
    mean: [0.485, 0.456, 0.406]   # the model's channel order (see color)
    std: [0.229, 0.224, 0.225]
    layout: NCHW                  # or NHWC
    color: rgb                    # or bgr
    output: {embedding: 0, logits: 1}   # output index or name; at least one of the two
    labels_file: labels.txt       # optional, one label per line, relative to the spec
    top_k: 5
    softmax: true                 # false: the logits output already holds scores

An audio spec has `sample_rate` (16000), `window` (samples, required), `hop` (samples,
default `window`) and `layout` (NT: input (1, window), or NCT: (1, 1, window)) instead of
the image keys; input samples are float32 in [-1, 1].

`data` is the embedding output flattened (the logits when the spec names no embedding);
`labels`/`scores` are the top_k classes (`class_<i>` without a labels file), or empty when
the spec names no logits. The model sees a batch of one.
"""

from dataclasses import dataclass, field
import logging
import os
from typing import List, Optional, Union

import numpy as np

from .base import (AudioEncoder, EncoderOutput, register_audio, register_vision,
                   select_device, VisionEncoder)

_LOG = logging.getLogger(__name__)

OutputKey = Union[int, str]
_COMMON = {'output', 'labels_file', 'top_k', 'softmax'}
_VISION = _COMMON | {'input_size', 'resize', 'scale', 'mean', 'std', 'layout', 'color'}
_AUDIO = _COMMON | {'sample_rate', 'window', 'hop', 'layout'}


@dataclass
class ModelSpec:
    """A validated spec; see the module docstring for the meaning of each field."""

    kind: str
    embedding: Optional[OutputKey] = None
    logits: Optional[OutputKey] = None
    labels: Optional[List[str]] = None
    top_k: Optional[int] = None
    softmax: bool = True
    input_size: tuple = (224, 224)
    resize: str = 'center_crop'
    scale: float = 255.0
    mean: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    std: np.ndarray = field(default_factory=lambda: np.ones(3, np.float32))
    layout: str = 'NCHW'
    color: str = 'rgb'
    sample_rate: int = 16000
    window: int = 0
    hop: int = 0


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{what} must be a positive integer, got {value!r}')
    return value


def _channel_values(value, what: str) -> np.ndarray:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if (not isinstance(value, list) or len(value) not in (1, 3)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise ValueError(f'{what} must be a number or a list of 1 or 3 numbers, got {value!r}')
    return np.broadcast_to(np.asarray(value, np.float32), (3,)).copy()


def _output_key(value, what: str) -> Optional[OutputKey]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == '' or (
            isinstance(value, int) and value < 0):
        raise ValueError(f'{what} must be an output index (>= 0) or an output name, '
                         f'got {value!r}')
    return value


def parse_spec(raw, kind: str, base_dir: str = '.') -> ModelSpec:
    """Validate a loaded spec mapping for a 'vision' or 'audio' model; raise ValueError."""
    if not isinstance(raw, dict):
        raise ValueError(f'the spec must be a mapping of keys to values, got {type(raw).__name__}')
    allowed = _VISION if kind == 'vision' else _AUDIO
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValueError(f'unknown {kind} spec keys {unknown}; allowed: {sorted(allowed)}')
    spec = ModelSpec(kind)
    output = raw.get('output')
    if not isinstance(output, dict) or not output or set(output) - {'embedding', 'logits'}:
        raise ValueError("'output' must be a mapping with 'embedding' and/or 'logits' "
                         f'(each an output index or name), got {output!r}')
    spec.embedding = _output_key(output.get('embedding'), 'output.embedding')
    spec.logits = _output_key(output.get('logits'), 'output.logits')
    if spec.embedding is None and spec.logits is None:
        raise ValueError("'output' names neither an embedding nor logits")
    if 'top_k' in raw:
        spec.top_k = _positive_int(raw['top_k'], 'top_k')
    softmax = raw.get('softmax', True)
    if not isinstance(softmax, bool):
        raise ValueError(f'softmax must be true or false, got {softmax!r}')
    spec.softmax = softmax
    if raw.get('labels_file') is not None:
        if not isinstance(raw['labels_file'], str):
            raise ValueError(f"labels_file must be a path, got {raw['labels_file']!r}")
        path = os.path.join(base_dir, os.path.expanduser(raw['labels_file']))
        if not os.path.isfile(path):
            raise ValueError(f'labels_file {path} does not exist')
        with open(path, encoding='utf-8') as f:
            spec.labels = [line.strip() for line in f if line.strip()]
        if not spec.labels:
            raise ValueError(f'labels_file {path} holds no labels')
        if spec.logits is None:
            raise ValueError('labels_file given but output.logits is not')
    if kind == 'vision':
        size = raw.get('input_size')
        if not isinstance(size, list) or len(size) != 2:
            raise ValueError(f'input_size must be [height, width], got {size!r}')
        spec.input_size = tuple(_positive_int(v, 'input_size entries') for v in size)
        spec.resize = _choice(raw, 'resize', ('center_crop', 'stretch'), 'center_crop')
        scale = raw.get('scale', 255)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale <= 0:
            raise ValueError(f'scale must be a positive number, got {scale!r}')
        spec.scale = float(scale)
        spec.mean = _channel_values(raw.get('mean', 0.0), 'mean')
        spec.std = _channel_values(raw.get('std', 1.0), 'std')
        if np.any(spec.std == 0):
            raise ValueError('std must not contain 0')
        spec.layout = _choice(raw, 'layout', ('NCHW', 'NHWC'), 'NCHW')
        spec.color = _choice(raw, 'color', ('rgb', 'bgr'), 'rgb')
    else:
        spec.sample_rate = _positive_int(raw.get('sample_rate', 16000), 'sample_rate')
        if 'window' not in raw:
            raise ValueError('an audio spec needs window (samples per model input)')
        spec.window = _positive_int(raw['window'], 'window')
        spec.hop = _positive_int(raw.get('hop', spec.window), 'hop')
        if spec.hop > spec.window:
            raise ValueError(f'hop ({spec.hop}) must not exceed window ({spec.window})')
        spec.layout = _choice(raw, 'layout', ('NT', 'NCT'), 'NT')
    return spec


def _choice(raw, key: str, choices, default: str) -> str:
    value = raw.get(key, default)
    if value not in choices:
        raise ValueError(f'{key} must be one of {list(choices)}, got {value!r}')
    return value


def load_spec(path: str, kind: str) -> ModelSpec:
    """Read and validate the YAML spec at `path` (yaml.safe_load: data only, no objects)."""
    import yaml
    if not path or not os.path.isfile(path):
        raise ValueError(f"spec_path '{path}' is not a file")
    with open(path, encoding='utf-8') as f:
        try:
            raw = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ValueError(f'{path}: not valid YAML: {e}') from None
    try:
        return parse_spec(raw, kind, os.path.dirname(os.path.abspath(path)))
    except ValueError as e:
        raise ValueError(f'{path}: {e}') from None


def resize_to(rgb: np.ndarray, height: int, width: int, mode: str) -> np.ndarray:
    """Stretch to height x width, or scale the short side by 256/224 and crop the centre."""
    from PIL import Image
    img = Image.fromarray(np.ascontiguousarray(rgb))
    if mode == 'stretch':
        return np.asarray(img.resize((width, height), Image.BILINEAR))
    h, w = rgb.shape[:2]
    scale = max(round(height * 256 / 224) / h, round(width * 256 / 224) / w)
    nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
    top, left = (nh - height) // 2, (nw - width) // 2
    return np.asarray(img.resize((nw, nh), Image.BILINEAR))[top:top + height, left:left + width]


class _TorchScriptModel:
    """A TorchScript archive (code and tensors only; torch.jit.load runs no pickled Python)."""

    def __init__(self, path: str, device: str):
        import torch
        self._torch = torch
        self.device = select_device(device)
        self._model = torch.jit.load(path, map_location=self.device).eval()
        self.input_shape = None  # TorchScript does not declare one

    def __call__(self, x: np.ndarray):
        """Run on one batch; return (list of output arrays, their names or None)."""
        torch = self._torch
        with torch.inference_mode():
            out = self._model(torch.from_numpy(x).to(self.device))
        if isinstance(out, dict):
            names = [str(k) for k in out]
            out = list(out.values())
        else:
            names = None
            out = list(out) if isinstance(out, (tuple, list)) else [out]
        return [o.detach().float().cpu().numpy() for o in out], names


class _OnnxModel:
    """An ONNX model on onnxruntime: CPU, or CUDA when asked for and available."""

    _DTYPES = {'tensor(float)': np.float32, 'tensor(float16)': np.float16}

    def __init__(self, path: str, device: str):
        import onnxruntime as ort
        import torch
        dev = select_device(device)
        providers = ['CPUExecutionProvider']
        if dev.type == 'cuda':
            if 'CUDAExecutionProvider' in ort.get_available_providers():
                providers = [('CUDAExecutionProvider', {'device_id': dev.index or 0}),
                             'CPUExecutionProvider']
            else:
                _LOG.warning("device '%s': this onnxruntime has no CUDAExecutionProvider "
                             '(install onnxruntime-gpu): using cpu', device)
        opts = ort.SessionOptions()
        # Honour the node's num_threads (it sets torch's): the encoders share a small CPU.
        opts.intra_op_num_threads = torch.get_num_threads()
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(path, sess_options=opts, providers=providers)
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f'{path}: the model must take exactly one input, '
                             f'it takes {[i.name for i in inputs]}')
        if inputs[0].type not in self._DTYPES:
            raise ValueError(f'{path}: input type {inputs[0].type} is not supported '
                             f'(float or float16)')
        self._input = inputs[0].name
        self._dtype = self._DTYPES[inputs[0].type]
        self.input_shape = inputs[0].shape
        self._names = [o.name for o in self._session.get_outputs()]

    def __call__(self, x: np.ndarray):
        """Run on one batch; return (list of output arrays, their names)."""
        out = self._session.run(None, {self._input: x.astype(self._dtype, copy=False)})
        return [np.asarray(o, np.float32) for o in out], self._names


def _open_model(runtime: str, model_path: str, device: str):
    if not model_path or not os.path.isfile(model_path):
        raise ValueError(f"model_path '{model_path}' is not a file")
    return (_TorchScriptModel if runtime == 'torchscript' else _OnnxModel)(model_path, device)


def _check_input_shape(model, shape, path: str) -> None:
    """Compare the spec's input shape with the one an ONNX model declares, where fixed."""
    declared = model.input_shape
    if declared is None:
        return
    if len(declared) != len(shape) or any(
            isinstance(d, int) and d > 0 and d != s for d, s in zip(declared, shape)):
        raise ValueError(f'{path}: the model declares input shape {declared}, the spec '
                         f'gives {list(shape)}')


class _Head:
    """Turns a model's outputs into an EncoderOutput as the spec says."""

    def __init__(self, spec: ModelSpec, top_k: int):
        self.spec = spec
        self.top_k = spec.top_k or int(top_k)
        self._checked = False

    @staticmethod
    def _pick(outputs, names, key: OutputKey, what: str) -> np.ndarray:
        if isinstance(key, int):
            if key >= len(outputs):
                raise ValueError(f'output.{what} is {key} but the model has {len(outputs)} '
                                 f'output(s){f" {names}" if names else ""}')
            return outputs[key]
        if not names or key not in names:
            raise ValueError(f"output.{what} '{key}' is not an output name of the model; "
                             f'its outputs: {names or f"{len(outputs)} unnamed"}')
        return outputs[names.index(key)]

    def __call__(self, outputs, names) -> EncoderOutput:
        spec = self.spec
        logits = None
        if spec.logits is not None:
            logits = self._pick(outputs, names, spec.logits, 'logits')[0].reshape(-1)
            if spec.labels is not None and len(spec.labels) != logits.size:
                raise ValueError(f'labels_file has {len(spec.labels)} labels but the logits '
                                 f'output has {logits.size} values')
        if spec.embedding is not None:
            data = self._pick(outputs, names, spec.embedding, 'embedding')[0].reshape(-1)
        else:
            data = logits
        if logits is None:
            return EncoderOutput(data=data.astype(np.float32))
        scores = logits.astype(np.float64)
        if spec.softmax:
            scores = np.exp(scores - scores.max())
            scores /= scores.sum()
        top = np.argsort(-scores, kind='stable')[:self.top_k]
        labels = [spec.labels[i] if spec.labels else f'class_{i}' for i in top]
        return EncoderOutput(data=data.astype(np.float32), labels=labels,
                             scores=scores[top].astype(np.float32))


class _UserVisionEncoder(VisionEncoder):
    runtime = ''

    def __init__(self, model_path: str = '', spec_path: str = '', device: str = 'cpu',
                 top_k: int = 5, **_):
        """Load the spec, then the model; the spec's top_k wins over the `top_k` argument."""
        self.spec = load_spec(spec_path, 'vision')
        self._model = _open_model(self.runtime, model_path, device)
        h, w = self.spec.input_size
        shape = (1, 3, h, w) if self.spec.layout == 'NCHW' else (1, h, w, 3)
        _check_input_shape(self._model, shape, model_path)
        self._head = _Head(self.spec, top_k)
        self.encoder_id = f'{self.runtime}/{os.path.basename(model_path)}'

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """Resize, normalise and lay out one RGB image as the spec says; return a batch."""
        spec = self.spec
        img = resize_to(rgb, *spec.input_size, spec.resize).astype(np.float32)
        if spec.color == 'bgr':
            img = img[..., ::-1]  # before normalising: mean/std are in the model's order
        x = (img / spec.scale - spec.mean) / spec.std
        if spec.layout == 'NCHW':
            x = x.transpose(2, 0, 1)
        return np.ascontiguousarray(x[None], np.float32)

    def encode(self, rgb: np.ndarray, stamp=None) -> EncoderOutput:
        """Run the model on one RGB image (`stamp` is unused)."""
        return self._head(*self._model(self.preprocess(rgb)))


class _UserAudioEncoder(AudioEncoder):
    runtime = ''

    def __init__(self, model_path: str = '', spec_path: str = '', device: str = 'cpu',
                 top_k: int = 5, **_):
        """Load the spec, then the model; window, hop and sample_rate come from the spec."""
        self.spec = load_spec(spec_path, 'audio')
        self.sample_rate, self.window, self.hop = (
            self.spec.sample_rate, self.spec.window, self.spec.hop)
        self._model = _open_model(self.runtime, model_path, device)
        shape = (1, self.window) if self.spec.layout == 'NT' else (1, 1, self.window)
        self._shape = shape
        _check_input_shape(self._model, shape, model_path)
        self._head = _Head(self.spec, top_k)
        self.encoder_id = f'{self.runtime}/{os.path.basename(model_path)}'

    def encode(self, samples: np.ndarray) -> EncoderOutput:
        """Run the model on one window of float32 samples."""
        x = np.zeros(self.window, np.float32)
        s = np.asarray(samples, np.float32).reshape(-1)[:self.window]
        x[:len(s)] = s
        return self._head(*self._model(x.reshape(self._shape)))


@register_vision('torchscript')
class TorchScriptVisionEncoder(_UserVisionEncoder):
    """A TorchScript image model (`model_path`) described by a YAML spec (`spec_path`)."""

    name = 'torchscript'
    runtime = 'torchscript'


@register_vision('onnx')
class OnnxVisionEncoder(_UserVisionEncoder):
    """An ONNX image model (`model_path`) on onnxruntime, described by `spec_path`."""

    name = 'onnx'
    runtime = 'onnx'


@register_audio('torchscript_audio')
class TorchScriptAudioEncoder(_UserAudioEncoder):
    """A TorchScript audio model (`model_path`) described by a YAML spec (`spec_path`)."""

    name = 'torchscript_audio'
    runtime = 'torchscript'


@register_audio('onnx_audio')
class OnnxAudioEncoder(_UserAudioEncoder):
    """An ONNX audio model (`model_path`) on onnxruntime, described by `spec_path`."""

    name = 'onnx_audio'
    runtime = 'onnx'
