# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Launch the audio encoder, vision encoder, transcription and fusion nodes onto driver topics.

ros2 launch late_fusion_ros late_fusion.launch.py \
    audio_topic:=/mic/audio_stamped audio_info_topic:=/mic/audio_info \
    image_topic:=/camera/image_raw

Managed (lifecycle) nodes: `managed:=true` starts every node as a launch_ros
LifecycleNode, unconfigured; with `autostart:=true` (the default) launch configures and
activates each one (through launch_ros' own `autostart` where the distribution's launch_ros
has it, else through ChangeState events), with `autostart:=false` they wait for a lifecycle
manager or `ros2 lifecycle set`. `managed:=false` (the default) starts plain nodes that
configure and activate themselves, as before.

Multi-robot: `namespace:=robot1` (or include this file under PushRosNamespace). Every node
gets the section of params_file that applies to it, matched as rcl matches keys and also by
the node's role, so a node renamed by a remapping (e.g. SetRemap('fusion:__node',
'fusion_left') in an including launch file) keeps its configuration; sections that
configure no node are reported at start-up.
"""

import inspect
import os
import tempfile

from late_fusion_ros.bringup import (default_params_file, EXECUTABLE_NODE_NAMES, node_specs,
                                     PACKAGE, transcription_available, unmatched_sections,
                                     write_parameters)
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessStart
import launch.events
import launch.logging
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.utilities import make_namespace_absolute, prefix_namespace
import lifecycle_msgs.msg

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
    'nodes': ('all', 'Comma-separated nodes to start on this computer (audio_encoder, '
              'vision_encoder, face_encoder, transcription, fusion); all: the whole graph. '
              'Splits the graph across computers, e.g. nodes:=vision_encoder on a GPU box'),
    'managed': ('false', 'Start the nodes as lifecycle nodes, unconfigured, driven by launch '
                '(autostart) or a lifecycle manager; false: plain nodes that configure and '
                'activate themselves'),
    'autostart': ('true', 'With managed:=true, configure and activate every node at launch; '
                  'false leaves them unconfigured for your lifecycle manager'),
}
# launch_ros' LifecycleNode takes `autostart` from 0.26.7 (Jazzy) and 0.28.1 (Kilted) on; with
# an older launch_ros this file drives the transitions with ChangeState events itself.
NATIVE_AUTOSTART = 'autostart' in inspect.signature(LifecycleNode.__init__).parameters


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
    managed, autostart = (arg[k].lower() == 'true' for k in ('managed', 'autostart'))
    specs = node_specs(arg['audio_topic'], arg['audio_info_topic'], arg['image_topic'],
                       arg['params_file'], arg['use_sim_time'].lower() == 'true',
                       face=arg['face'].lower() == 'true',
                       transcribe=arg['transcribe'].lower() == 'true', namespace=namespace,
                       managed=managed, only=None if arg['nodes'].strip() in ('', 'all') else
                       [n.strip() for n in arg['nodes'].split(',') if n.strip()])
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
    actions = []
    for s, name in zip(specs, launch_names):
        common = {'package': PACKAGE, 'executable': s.executable, 'remappings': s.remappings,
                  'parameters': [write_parameters(s, directory)], 'output': 'screen',
                  'emulate_tty': True}
        if not managed:
            actions.append(Node(name=name, namespace=arg['namespace'] or None, **common))
            continue
        # A LifecycleNode needs its name: the one the node ends up with (remaps applied).
        if NATIVE_AUTOSTART:
            actions.append(LifecycleNode(name=s.name, namespace=arg['namespace'],
                                         autostart=autostart, **common))
            continue
        node = LifecycleNode(name=s.name, namespace=arg['namespace'], **common)
        actions.append(node)
        if autostart:
            actions += _autostart(node)
    return actions


def _change_state(node, transition: int) -> EmitEvent:
    return EmitEvent(event=ChangeState(
        lifecycle_node_matcher=launch.events.matches_action(node), transition_id=transition))


def _autostart(node):
    """
    Configure `node` once its process runs, and activate it once configured, at launch only.

    Both handlers fire once: a node that a user deactivates or cleans up later is not driven
    back to active.
    """
    return [
        RegisterEventHandler(OnProcessStart(
            target_action=node, handle_once=True,
            on_start=[_change_state(node, lifecycle_msgs.msg.Transition.TRANSITION_CONFIGURE)])),
        RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=node, start_state='configuring', goal_state='inactive',
            handle_once=True,
            entities=[_change_state(node, lifecycle_msgs.msg.Transition.TRANSITION_ACTIVATE)])),
    ]


def generate_launch_description():
    """Declare the launch arguments and start the nodes."""
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=desc)
         for name, (default, desc) in ARGUMENTS.items()] + [OpaqueFunction(function=_nodes)])
