# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Launch the audio encoder, vision encoder, transcription and fusion nodes onto driver topics.

ros2 launch late_fusion_ros late_fusion.launch.py \
    audio_topic:=/mic/audio_stamped audio_info_topic:=/mic/audio_info \
    image_topic:=/camera/image_raw

Multi-robot: `namespace:=robot1` (or include this file under PushRosNamespace). Every node
gets the section of params_file that applies to it, matched as rcl matches keys and also by
the node's role, so a node renamed by a remapping (e.g. SetRemap('fusion:__node',
'fusion_left') in an including launch file) keeps its configuration; sections that
configure no node are reported at start-up.
"""

import os
import tempfile

from late_fusion_ros.bringup import (default_params_file, EXECUTABLE_NODE_NAMES, node_specs,
                                     PACKAGE, transcription_available, unmatched_sections,
                                     write_parameters)
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
import launch.logging
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.utilities import make_namespace_absolute, prefix_namespace

ARGUMENTS = {
    'audio_topic': ('audio_stamped', 'AudioDataStamped topic (AudioData with the audio '
                    'encoder parameter stamped: false)'),
    'audio_info_topic': ('audio_info', 'audio_common_msgs/AudioInfo topic'),
    'image_topic': ('image', 'sensor_msgs/Image topic'),
    'params_file': (default_params_file(), 'YAML parameters of the nodes'),
    'namespace': ('', 'Namespace of the nodes'),
    'use_sim_time': ('false', 'Use /clock (rosbag play --clock)'),
    'face': ('false', 'Also run the face/mouth-movement encoder and fuse its cues'),
    'transcribe': ('true' if transcription_available() else 'false',
                   'Run the speech-to-text node (Whisper) and fuse what is said as the speech '
                   'modality (default: true when faster-whisper and its model are installed)'),
}


def _remapped_name(code_name: str, remaps) -> str:
    """Return the name rcl gives a node named `code_name` in code under these remaps."""
    for src, dst in remaps:
        target, _, what = src.rpartition(':')
        if what in ('__node', '__name') and target in ('', code_name):
            return dst  # rcl applies the first matching node-name rule
    return code_name


def _params_dir() -> str:
    try:  # beside this launch's logs, where a user looks for what was started
        directory = os.path.join(launch.logging.launch_config.log_dir, 'late_fusion_params')
        os.makedirs(directory, exist_ok=True)
        return directory
    except OSError:
        return tempfile.mkdtemp(prefix='late_fusion_params_')


def _nodes(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    # The namespace the nodes end up in, as launch_ros computes it (PushRosNamespace too).
    namespace = make_namespace_absolute(prefix_namespace(
        context.launch_configurations.get('ros_namespace'), arg['namespace'] or None)) or ''
    specs = node_specs(arg['audio_topic'], arg['audio_info_topic'], arg['image_topic'],
                       arg['params_file'], arg['use_sim_time'].lower() == 'true',
                       face=arg['face'].lower() == 'true',
                       transcribe=arg['transcribe'].lower() == 'true', namespace=namespace)
    remaps = context.launch_configurations.get('ros_remaps') or []
    launch_names = []
    for s in specs:
        # A node keeps the name it has in code (so that a node-name remapping from an
        # including launch file can rename it) unless the spec names it differently.
        code_name = EXECUTABLE_NODE_NAMES.get(s.executable)
        launch_names.append(None if code_name == s.name else s.name)
        if code_name == s.name:
            s.name = _remapped_name(code_name, remaps)
    logger = launch.logging.get_logger(PACKAGE)
    for line in unmatched_sections(specs):
        logger.warning(line)
    directory = _params_dir()
    nodes = []
    for s, name in zip(specs, launch_names):
        nodes.append(Node(package=PACKAGE, executable=s.executable, name=name,
                          namespace=arg['namespace'] or None, remappings=s.remappings,
                          parameters=[write_parameters(s, directory)], output='screen',
                          emulate_tty=True))
    return nodes


def generate_launch_description():
    """Declare the launch arguments and start the nodes."""
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=desc)
         for name, (default, desc) in ARGUMENTS.items()] + [OpaqueFunction(function=_nodes)])
