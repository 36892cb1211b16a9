# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Launch the audio encoder, vision encoder, transcription and fusion nodes onto driver topics.

ros2 launch late_fusion_ros late_fusion.launch.py \
    audio_topic:=/mic/audio_stamped audio_info_topic:=/mic/audio_info \
    image_topic:=/camera/image_raw
"""

from late_fusion_ros.bringup import (default_params_file, node_specs, PACKAGE,
                                     transcription_available)
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

ARGUMENTS = {
    'audio_topic': ('audio_stamped', 'AudioDataStamped topic (AudioData with the audio '
                    'encoder parameter stamped: false)'),
    'audio_info_topic': ('audio_info', 'audio_common_msgs/AudioInfo topic'),
    'image_topic': ('image', 'sensor_msgs/Image topic'),
    'params_file': (default_params_file(), 'YAML parameters of the three nodes'),
    'namespace': ('', 'Namespace of the three nodes'),
    'use_sim_time': ('false', 'Use /clock (rosbag play --clock)'),
    'face': ('false', 'Also run the face/mouth-movement encoder and fuse its cues'),
    'transcribe': ('true' if transcription_available() else 'false',
                   'Run the speech-to-text node (Whisper) and fuse what is said as the speech '
                   'modality (default: true when faster-whisper and its model are installed)'),
}


def _nodes(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    specs = node_specs(arg['audio_topic'], arg['audio_info_topic'], arg['image_topic'],
                       arg['params_file'], arg['use_sim_time'].lower() == 'true',
                       face=arg['face'].lower() == 'true',
                       transcribe=arg['transcribe'].lower() == 'true')
    return [Node(package=PACKAGE, executable=s.executable, name=s.name,
                 namespace=arg['namespace'], remappings=s.remappings,
                 parameters=s.params_files + [s.parameters], output='screen',
                 emulate_tty=True)
            for s in specs]


def generate_launch_description():
    """Declare the topic arguments and start the nodes."""
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=desc)
         for name, (default, desc) in ARGUMENTS.items()] + [OpaqueFunction(function=_nodes)])
