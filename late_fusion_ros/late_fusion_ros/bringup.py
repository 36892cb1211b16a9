# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
What the launch file starts, as plain data, shared by launch and the ROS-free launcher.

`launch/late_fusion.launch.py` turns these specs into launch_ros Node actions on a real ROS
install; `late_fusion_ros.launcher` turns the same specs into processes where launch_ros is
not installed (and in the integration tests), so both paths start exactly the same graph.
"""

from dataclasses import dataclass, field
import os
from typing import Dict, List, Optional, Tuple

PACKAGE = 'late_fusion_ros'


@dataclass
class NodeSpec:
    """One node to start: executable, node name, remappings and parameters."""

    executable: str
    name: str
    remappings: List[Tuple[str, str]] = field(default_factory=list)
    params_files: List[str] = field(default_factory=list)
    parameters: Dict[str, object] = field(default_factory=dict)


def default_params_file() -> str:
    """Return config/late_fusion.yaml from the install share (or the source tree)."""
    try:
        from ament_index_python.packages import get_package_share_directory
        share = get_package_share_directory(PACKAGE)
    except Exception:  # noqa: BLE001 - not installed: running from the source tree
        share = os.path.join(os.path.dirname(__file__), '..')
    return os.path.join(share, 'config', 'late_fusion.yaml')


def transcription_available() -> bool:
    """Return True when faster-whisper and the default Whisper model's wheel are installed."""
    from .core.transcription import model_available
    return model_available()


def node_specs(audio_topic: str = 'audio_stamped', audio_info_topic: str = 'audio_info',
               image_topic: str = 'image', params_file: Optional[str] = None,
               use_sim_time: bool = False, extra_params: Optional[Dict] = None,
               face: bool = False, transcribe: bool = False) -> List[NodeSpec]:
    """
    Return the nodes of late_fusion_ros wired onto the given driver topics.

    The encoders publish `audio/embedding` and `vision/embedding`, which are the topics the
    fusion node subscribes for its default modalities `audio` and `vision`. With `face`, a
    second vision encoder (the face/mouth-movement model) publishes `face/embedding` and the
    fusion node adds the `face` modality, whose cues the default speaking_to_robot
    strategy then uses. With `transcribe` the transcription node listens to the same
    microphone, publishes `speech/transcript` and `speech/embedding`, and the fusion node
    adds the `speech` modality. The launch file and the demo turn it on by default when
    transcription_available(); here it is opt-in, so that a caller's graph never changes
    with what happens to be installed.
    """
    files = [params_file or default_params_file()]
    params = {'use_sim_time': use_sim_time, **(extra_params or {})}
    specs = [
        NodeSpec('audio_encoder_node', 'audio_encoder',
                 # `audio_topic` serves either input: AudioDataStamped (default) or, with
                 # stamped:=false, headerless AudioData; the node subscribes only one.
                 [('audio_stamped', audio_topic), ('audio', audio_topic),
                  ('audio_info', audio_info_topic), ('embedding', 'audio/embedding')],
                 files, dict(params)),
        NodeSpec('vision_encoder_node', 'vision_encoder',
                 [('image', image_topic), ('embedding', 'vision/embedding')], files,
                 dict(params)),
        NodeSpec('fusion_node', 'fusion', [], files, dict(params)),
    ]
    modalities = ['audio', 'vision']
    if face:
        specs.insert(2, NodeSpec('vision_encoder_node', 'face_encoder',
                                 [('image', image_topic), ('embedding', 'face/embedding')],
                                 files, dict(params)))
        modalities.append('face')
        specs[-1].parameters['strategy_params.speaking_to_robot.vision'] = 'face'
    if transcribe:
        # The same microphone topics as the audio encoder; its own process, so that a
        # decode never competes with the VAD embeddings for one interpreter.
        specs.insert(-1, NodeSpec('transcription_node', 'transcription',
                                  [('audio_stamped', audio_topic), ('audio', audio_topic),
                                   ('audio_info', audio_info_topic),
                                   ('embedding', 'speech/embedding'),
                                   ('transcript', 'speech/transcript')],
                                  files, dict(params)))
        modalities.append('speech')
    if len(modalities) > 2:
        specs[-1].parameters['modalities'] = modalities
    return specs


def ros_args(spec: NodeSpec) -> List[str]:
    """Return the `--ros-args ...` command-line arguments that start `spec`."""
    args = ['--ros-args', '-r', f'__node:={spec.name}']
    for src, dst in spec.remappings:
        args += ['-r', f'{src}:={dst}']
    for f in spec.params_files:
        args += ['--params-file', f]
    for key, value in spec.parameters.items():
        if isinstance(value, bool):
            value = 'true' if value else 'false'
        elif isinstance(value, (list, tuple)):
            value = '[' + ','.join(str(v) for v in value) + ']'  # YAML flow sequence
        args += ['-p', f'{key}:={value}']
    return args
