# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
The bring-up spec shared by the launch file and the ROS-free launcher.

`ros2 launch` (launch_ros) is not installable from PyPI; the launch file builds its Node
actions from the same `node_specs` that the demo and the integration tests start, so what
is tested here is what the launch file starts. Where launch_ros is installed, the launch
description itself is loaded and checked too.
"""

import os
import py_compile

from late_fusion_ros.bringup import default_params_file, node_specs, ros_args
import pytest
import yaml

LAUNCH_FILE = os.path.join(os.path.dirname(__file__), '..', 'launch', 'late_fusion.launch.py')


def test_specs_wire_driver_topics_to_the_fusion_node():
    """Driver topics are remapped onto the encoders; encoders feed <modality>/embedding."""
    specs = {s.name: s for s in node_specs('/mic/audio_stamped', '/mic/audio_info',
                                           '/camera/image_raw', use_sim_time=True)}
    assert set(specs) >= {'audio_encoder', 'vision_encoder', 'fusion'}
    assert dict(specs['audio_encoder'].remappings) == {
        'audio_stamped': '/mic/audio_stamped', 'audio': '/mic/audio_stamped',
        'audio_info': '/mic/audio_info', 'embedding': 'audio/embedding'}
    assert dict(specs['vision_encoder'].remappings)['image'] == '/camera/image_raw'
    params = yaml.safe_load(open(default_params_file()))
    modalities = params['fusion']['ros__parameters']['modalities']
    published = {dict(s.remappings).get('embedding') for s in specs.values()}
    assert {f'{m}/embedding' for m in modalities} <= published
    assert all(s.parameters['use_sim_time'] is True for s in specs.values())


def test_face_adds_an_encoder_and_a_modality():
    """face=True starts the face encoder and tells the fusion node to use its cues."""
    specs = {s.name: s for s in node_specs(face=True)}
    assert dict(specs['face_encoder'].remappings)['embedding'] == 'face/embedding'
    fusion = specs['fusion'].parameters
    assert fusion['modalities'] == ['audio', 'vision', 'face']
    assert fusion['strategy_params.speaking_to_robot.vision'] == 'face'
    assert '-p' in ros_args(specs['fusion'])
    assert 'modalities:=[audio,vision,face]' in ros_args(specs['fusion'])


def test_transcribe_adds_the_transcription_node_on_the_same_microphone():
    """transcribe=True: the transcription node hears the audio encoder's topics; + speech."""
    specs = {s.name: s for s in node_specs('/mic/audio_stamped', '/mic/audio_info',
                                           face=True, transcribe=True)}
    audio, speech = dict(specs['audio_encoder'].remappings), \
        dict(specs['transcription'].remappings)
    for topic in ('audio_stamped', 'audio', 'audio_info'):
        assert speech[topic] == audio[topic]
    assert speech['embedding'] == 'speech/embedding'
    assert speech['transcript'] == 'speech/transcript'  # what fusion_node subscribes
    assert specs['fusion'].parameters['modalities'] == ['audio', 'vision', 'face', 'speech']
    assert list(specs)[-1] == 'fusion'
    plain = {s.name: s for s in node_specs(transcribe=False)}
    assert 'transcription' not in plain and 'modalities' not in plain['fusion'].parameters


def test_transcribe_is_opt_in_here_and_on_by_default_where_installed():
    """node_specs() keeps a caller's graph; launch and demo default to what is installed."""
    from late_fusion_ros.bringup import transcription_available
    assert 'transcription' not in {s.name for s in node_specs()}
    assert transcription_available()  # set-up installs them (scripts/setup.sh py_deps)
    launch = open(LAUNCH_FILE).read()
    assert "'true' if transcription_available() else 'false'" in launch


def test_ros_args_are_what_ros2_run_takes():
    """Remaps, params files and parameters become one --ros-args block."""
    spec = node_specs('a', 'b', 'c', params_file='/p.yaml')[0]
    args = ros_args(spec)
    assert args[:3] == ['--ros-args', '-r', '__node:=audio_encoder']
    assert '-r' in args and 'audio_stamped:=a' in args
    assert args[args.index('--params-file') + 1] == '/p.yaml'
    assert 'use_sim_time:=false' in args


def test_every_node_in_the_params_file_is_started():
    """Each section of config/late_fusion.yaml configures a node the launch file starts."""
    params = yaml.safe_load(open(default_params_file()))
    assert set(params) <= {s.name for s in node_specs(face=True, transcribe=True)}


def test_launch_file_declares_transcribe():
    """The launch file offers transcribe:=true|false and passes it on to node_specs."""
    text = open(LAUNCH_FILE).read()
    assert "'transcribe':" in text and "transcribe=arg['transcribe']" in text


def test_launch_file_compiles_and_loads_where_launch_ros_exists(tmp_path):
    """The launch file is valid Python; with launch_ros installed it yields the nodes."""
    py_compile.compile(LAUNCH_FILE, cfile=str(tmp_path / 'launch.pyc'), doraise=True)
    launch_ros = pytest.importorskip('launch_ros', reason='launch_ros has no PyPI wheel')
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch import LaunchContext
    description = PythonLaunchDescriptionSource(LAUNCH_FILE).get_launch_description(
        LaunchContext())
    assert description.entities and launch_ros is not None
