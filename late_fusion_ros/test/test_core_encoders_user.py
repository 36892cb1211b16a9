# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
The user's own models: TorchScript and ONNX files with a YAML spec, and entry-point plugins.

Real torch modules are exported in a temporary directory and the loaded encoders must give
the module's own outputs; EfficientNet-Lite0 exported to TorchScript must agree with the
built-in encoder.
"""

import logging
import textwrap
import warnings

from late_fusion_ros.core import media
from late_fusion_ros.core.encoders import (AudioEncoder, EncoderOutput, make_audio_encoder,
                                           make_vision_encoder, plugin_names, VisionEncoder)
from late_fusion_ros.core.encoders.efficientnet import imagenet_class_names
from late_fusion_ros.core.encoders.user_model import load_spec, parse_spec
import numpy as np
import pytest
import torch
from torch import nn

LABELS = ['cat', 'dog', 'robot', 'cup']
WINDOW = 800


class TinyCnn(nn.Module):
    """A small image model: 8-d pooled embedding and 4 logits."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.head = nn.Linear(8, len(LABELS))

    def forward(self, x):
        emb = torch.relu(self.conv(x)).mean(dim=(2, 3))
        return emb, self.head(emb)


class TinyAudio(nn.Module):
    """A small audio model over (1, window) samples, with named outputs."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv1d(1, 6, 25, stride=10)
        self.head = nn.Linear(6, len(LABELS))

    def forward(self, x):
        emb = torch.tanh(self.conv(x.unsqueeze(1))).mean(dim=2)
        return {'embedding': emb, 'logits': self.head(emb)}


class TinyAudioTuple(TinyAudio):
    """The same audio model returning a tuple, for the ONNX exporter."""

    def forward(self, x):
        out = super().forward(x)
        return out['embedding'], out['logits']


def export_onnx(module, example, path, names):
    """Export with the TorchScript-based exporter (needs only the onnx package)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(module.eval(), (example,), str(path), input_names=['input'],
                          output_names=names, dynamo=False)
    return str(path)


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    """Export the tiny models to TorchScript and ONNX, with specs and a labels file."""
    d = tmp_path_factory.mktemp('models')
    (d / 'labels.txt').write_text('\n'.join(LABELS) + '\n')
    cnn, audio = TinyCnn().eval(), TinyAudio().eval()
    torch.jit.save(torch.jit.script(cnn), str(d / 'cnn.pt'))
    torch.jit.save(torch.jit.script(audio), str(d / 'audio.pt'))
    paths = {
        'cnn': cnn, 'audio': audio, 'dir': d,
        'cnn.pt': str(d / 'cnn.pt'), 'audio.pt': str(d / 'audio.pt'),
        'cnn.onnx': export_onnx(cnn, torch.zeros(1, 3, 32, 40), d / 'cnn.onnx',
                                ['embedding', 'logits']),
        'audio.onnx': export_onnx(TinyAudioTuple().eval(), torch.zeros(1, WINDOW),
                                  d / 'audio.onnx', ['embedding', 'logits']),
    }
    vision_spec = """\
        input_size: [32, 40]
        resize: stretch
        scale: 255
        mean: [0.5, 0.4, 0.3]
        std: [0.25, 0.2, 0.3]
        layout: NCHW
        color: rgb
        output: {embedding: %s, logits: %s}
        labels_file: labels.txt
        top_k: 3
        softmax: true
        """
    paths['cnn.pt.yaml'] = write(d / 'cnn_ts.yaml', vision_spec % (0, 1))
    paths['cnn.onnx.yaml'] = write(d / 'cnn_onnx.yaml', vision_spec % ('embedding', 'logits'))
    audio_spec = f"""\
        sample_rate: 16000
        window: {WINDOW}
        hop: 400
        layout: NT
        output: {{embedding: embedding, logits: logits}}
        labels_file: labels.txt
        top_k: 2
        """
    paths['audio.yaml'] = write(d / 'audio.yaml', audio_spec)
    return paths


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


@pytest.mark.parametrize('runtime', ['pt', 'onnx'])
def test_vision_model_gives_the_modules_outputs(models, runtime):
    name = {'pt': 'torchscript', 'onnx': 'onnx'}[runtime]
    enc = make_vision_encoder(name, model_path=models[f'cnn.{runtime}'],
                              spec_path=models[f'cnn.{runtime}.yaml'], device='cpu', top_k=5)
    enc.warmup()
    for photo in ('astronaut', 'chelsea', 'coffee'):
        rgb = media.photo(photo)
        x = enc.preprocess(rgb)
        assert x.shape == (1, 3, 32, 40) and x.dtype == np.float32
        with torch.inference_mode():
            emb, logits = (t[0].numpy() for t in models['cnn'](torch.from_numpy(x)))
        out = enc.encode(rgb, stamp=1.0)
        np.testing.assert_allclose(out.data, emb, rtol=1e-4, atol=1e-5)
        probs = softmax(logits.astype(np.float64))
        top = np.argsort(-probs)[:3]  # the spec's top_k wins over the argument
        assert out.labels == [LABELS[i] for i in top]
        np.testing.assert_allclose(out.scores, probs[top], rtol=1e-4, atol=1e-6)
    assert enc.encoder_id == f'{name}/cnn.{runtime}'


@pytest.mark.parametrize('name,runtime', [('torchscript_audio', 'pt'), ('onnx_audio', 'onnx')])
def test_audio_model_gives_the_modules_outputs(models, name, runtime):
    enc = make_audio_encoder(name, model_path=models[f'audio.{runtime}'],
                             spec_path=models['audio.yaml'], device='cpu')
    assert (enc.sample_rate, enc.window, enc.hop) == (16000, WINDOW, 400)
    enc.warmup()
    x = media.speech('hello robot')[:WINDOW].astype(np.float32) / 32768
    with torch.inference_mode():
        ref = models['audio'](torch.from_numpy(x)[None])
    out = enc.encode(x)
    np.testing.assert_allclose(out.data, ref['embedding'][0].numpy(), rtol=1e-4, atol=1e-5)
    probs = softmax(ref['logits'][0].numpy().astype(np.float64))
    top = np.argsort(-probs)[:2]
    assert out.labels == [LABELS[i] for i in top]
    np.testing.assert_allclose(out.scores, probs[top], rtol=1e-4, atol=1e-6)


def test_preprocessing_follows_the_spec(models, tmp_path):
    spec = write(tmp_path / 'nhwc.yaml', """\
        input_size: [32, 40]
        resize: stretch
        scale: 1
        mean: [10, 20, 30]
        std: 2
        layout: NHWC
        color: bgr
        output: {logits: 0}
        """)
    enc = make_vision_encoder('torchscript', model_path=models['cnn.pt'], spec_path=spec)
    x = enc.preprocess(np.full((7, 9, 3), (100, 150, 200), np.uint8))
    assert x.shape == (1, 32, 40, 3)
    # bgr: (200, 150, 100), then (x - mean) / std with the spec's channel order
    np.testing.assert_allclose(x[0, 5, 5], [(200 - 10) / 2, (150 - 20) / 2, (100 - 30) / 2])


def test_efficientnet_exported_to_torchscript_matches_the_builtin(tmp_path):
    builtin = make_vision_encoder('efficientnet_lite0', device='cpu', top_k=5)
    model = builtin._model

    class Lite0(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, x):
            pooled = self.m._avg_pooling(self.m.extract_features(x)).flatten(1)
            return pooled, self.m._fc(pooled)

    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        # check_trace would run the model twice more (~2 s) to compare what we compare below.
        traced = torch.jit.trace(Lite0().eval(), torch.zeros(1, 3, 224, 224),
                                 check_trace=False)
    torch.jit.save(traced, str(tmp_path / 'lite0.pt'))
    (tmp_path / 'imagenet.txt').write_text('\n'.join(imagenet_class_names()) + '\n')
    spec = write(tmp_path / 'lite0.yaml', """\
        # EfficientNet-Lite was trained on (x - 127) / 128 of ImageNet centre crops
        input_size: [224, 224]
        resize: center_crop
        scale: 1
        mean: 127
        std: 128
        output: {embedding: 0, logits: 1}
        labels_file: imagenet.txt
        """)
    mine = make_vision_encoder('torchscript', model_path=str(tmp_path / 'lite0.pt'),
                               spec_path=spec, top_k=5)
    cat = media.photo('chelsea')
    ref, out = builtin.encode(cat), mine.encode(cat)
    assert out.labels[0] == ref.labels[0]
    assert imagenet_class_names().index(out.labels[0]) in range(281, 286)  # a cat class
    assert out.labels == ref.labels
    np.testing.assert_allclose(out.scores, ref.scores, atol=1e-4)
    np.testing.assert_allclose(out.data, ref.data, atol=1e-3)


def test_onnx_on_cuda_falls_back_to_cpu(models, caplog):
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    with caplog.at_level(logging.WARNING):
        enc = make_vision_encoder('onnx', model_path=models['cnn.onnx'],
                                  spec_path=models['cnn.onnx.yaml'], device='cuda')
    assert 'using cpu' in caplog.text
    assert enc.encode(media.photo('coffee')).data.shape == (8,)


# ---------------------------------------------------------------- spec validation

GOOD = {'input_size': [224, 224], 'output': {'logits': 0}}


@pytest.mark.parametrize('change,match', [
    ({'input_size': 224}, r'input_size must be \[height, width\]'),
    ({'input_size': [224, 0]}, 'input_size entries must be a positive integer'),
    ({'output': None}, "'output' must be a mapping"),
    ({'output': {'logit': 0}}, "'output' must be a mapping"),
    ({'output': {'embedding': None}}, 'names neither an embedding nor logits'),
    ({'output': {'logits': -1}}, 'output.logits must be an output index'),
    ({'output': {'logits': [0]}}, 'output.logits must be an output index'),
    ({'mean': [0.1, 0.2]}, 'mean must be a number or a list of 1 or 3 numbers'),
    ({'std': [1, 0, 1]}, 'std must not contain 0'),
    ({'scale': 0}, 'scale must be a positive number'),
    ({'layout': 'CHW'}, r"layout must be one of \['NCHW', 'NHWC'\]"),
    ({'color': 'gray'}, 'color must be one of'),
    ({'resize': 'pad'}, 'resize must be one of'),
    ({'top_k': 0}, 'top_k must be a positive integer'),
    ({'top_k': True}, 'top_k must be a positive integer'),
    ({'softmax': 'yes'}, 'softmax must be true or false'),
    ({'labels_file': 'missing.txt'}, 'labels_file .*missing.txt does not exist'),
    ({'input_sise': [224, 224]}, r"unknown vision spec keys \['input_sise'\]"),
    ({'window': 512}, r"unknown vision spec keys \['window'\]"),
])
def test_bad_vision_specs_are_explained(change, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        parse_spec({**GOOD, **change}, 'vision', str(tmp_path))


@pytest.mark.parametrize('raw,match', [
    ({'output': {'logits': 0}}, 'needs window'),
    ({'window': 512, 'hop': 1024, 'output': {'logits': 0}}, r'hop \(1024\) must not exceed'),
    ({'window': 512, 'sample_rate': 0, 'output': {'logits': 0}}, 'sample_rate must be'),
    ({'window': 512, 'layout': 'NCHW', 'output': {'logits': 0}}, 'layout must be one of'),
    ({'window': 512, 'input_size': [1, 1], 'output': {'logits': 0}}, 'unknown audio spec'),
])
def test_bad_audio_specs_are_explained(raw, match):
    with pytest.raises(ValueError, match=match):
        parse_spec(raw, 'audio')


def test_spec_files_and_model_files_are_checked(models, tmp_path):
    assert load_spec(models['cnn.pt.yaml'], 'vision').labels == LABELS
    with pytest.raises(ValueError, match='is not a file'):
        load_spec(str(tmp_path / 'none.yaml'), 'vision')
    bad = write(tmp_path / 'bad.yaml', 'input_size: [224, 224\n')
    with pytest.raises(ValueError, match='not valid YAML'):
        load_spec(bad, 'vision')
    # safe_load: a Python object tag is refused, never constructed
    evil = write(tmp_path / 'evil.yaml', 'output: !!python/object/apply:os.getcwd []\n')
    with pytest.raises(ValueError, match='not valid YAML'):
        load_spec(evil, 'vision')
    listing = write(tmp_path / 'list.yaml', '- 1\n- 2\n')
    with pytest.raises(ValueError, match=f'{listing}: the spec must be a mapping'):
        load_spec(listing, 'vision')
    with pytest.raises(ValueError, match="model_path '.*nope.pt' is not a file"):
        make_vision_encoder('torchscript', model_path=str(tmp_path / 'nope.pt'),
                            spec_path=models['cnn.pt.yaml'])


def test_model_and_spec_must_agree(models, tmp_path):
    d = models['dir']
    wrong_size = write(d / 'wrong_size.yaml', 'input_size: [64, 64]\noutput: {logits: 1}\n')
    with pytest.raises(ValueError, match=r'declares input shape \[1, 3, 32, 40\]'):
        make_vision_encoder('onnx', model_path=models['cnn.onnx'], spec_path=wrong_size)
    for output, match in [('{logits: 2}', r'output.logits is 2 but the model has 2 output'),
                          ('{logits: scores}', "output.logits 'scores' is not an output name"),
                          ('{embedding: 0, logits: 0}', 'labels_file has 4 labels but the '
                                                        'logits output has 8 values')]:
        spec = write(d / 'mismatch.yaml', f'input_size: [32, 40]\noutput: {output}\n'
                     'labels_file: labels.txt\n')
        enc = make_vision_encoder('torchscript', model_path=models['cnn.pt'], spec_path=spec)
        with pytest.raises(ValueError, match=match):
            enc.warmup()
    # Without labels the classes are numbered, and an embedding-only model has no scores.
    spec = write(d / 'plain.yaml', 'input_size: [32, 40]\noutput: {logits: 1}\ntop_k: 2\n')
    out = make_vision_encoder('onnx', model_path=models['cnn.onnx'], spec_path=spec,
                              top_k=9).encode(media.photo('coffee'))
    assert len(out.labels) == 2 and all(x.startswith('class_') for x in out.labels)
    assert out.data.shape == (4,)  # no embedding named: data carries the logits
    spec = write(d / 'emb.yaml', 'input_size: [32, 40]\noutput: {embedding: 0}\n')
    out = make_vision_encoder('onnx', model_path=models['cnn.onnx'],
                              spec_path=spec).encode(media.photo('coffee'))
    assert out.data.shape == (8,) and out.labels == [] and out.scores.size == 0


# ---------------------------------------------------------------- plugins

class ConstantVision(VisionEncoder):
    """A plugin encoder: always the same score."""

    name = 'constant'

    def __init__(self, value=0.5, **_):
        self.value = float(value)
        self.encoder_id = 'constant/1'

    def encode(self, rgb, stamp=None):
        return EncoderOutput(np.array([self.value], np.float32), ['constant'],
                             np.array([self.value], np.float32))


@pytest.fixture
def plugin_dist(tmp_path, monkeypatch):
    """Install a distribution that registers two encoder plugins (metadata on sys.path)."""
    dist = tmp_path / 'lf_test_plugins-1.0.dist-info'
    dist.mkdir()
    (dist / 'METADATA').write_text('Metadata-Version: 2.1\nName: lf-test-plugins\n'
                                   'Version: 1.0\n')
    (dist / 'entry_points.txt').write_text(
        '[late_fusion_ros.encoders]\n'
        'constant = test_core_encoders_user:ConstantVision\n'
        'not_an_encoder = builtins:dict\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    return dist


def test_plugins_load_from_installed_entry_points(plugin_dist):
    assert {'constant', 'not_an_encoder'} <= set(plugin_names())
    enc = make_vision_encoder('plugin:constant', device='cpu', top_k=5, value=0.25)
    assert isinstance(enc, ConstantVision) and enc.encode(media.photo('coffee')).scores[0] == 0.25
    with pytest.raises(TypeError, match='expected an instance of AudioEncoder'):
        make_audio_encoder('plugin:constant')
    with pytest.raises(TypeError, match="plugin 'not_an_encoder' built a dict"):
        make_vision_encoder('plugin:not_an_encoder')


def test_only_registered_plugins_load(plugin_dist):
    # A module path is just an unknown plugin name: nothing gets imported from it.
    for name in ('plugin:os:system', 'plugin:test_core_encoders_user:ConstantVision',
                 'plugin:'):
        with pytest.raises(ValueError, match='no encoder plugin .* is installed'):
            make_vision_encoder(name)
    assert issubclass(ConstantVision, VisionEncoder) and not issubclass(ConstantVision,
                                                                        AudioEncoder)
