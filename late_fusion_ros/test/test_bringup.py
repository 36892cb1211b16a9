# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
The bring-up spec shared by the launch file and the ROS-free launcher.

The launch file builds its Node actions from the same `node_specs` that the demo and the
integration tests start. Here the real launch description is loaded with launch_ros (the
system's, or the one built from ../shared/vendor) and what it would start is compared with
what the bring-up starts; the parameters-file matching both rely on is checked against
rcl's rules, and the package's YAML against the nodes that exist.
"""

import inspect
import os
import re
import sys

from late_fusion_ros.bringup import (default_params_file, EXECUTABLE_NODE_NAMES, key_matches,
                                     node_specs, NodeSpec, read_sections, resolved_parameters,
                                     ROLES, ros_args, unmatched_sections, write_parameters)
import pytest
import yaml

LAUNCH_FILE = os.path.join(os.path.dirname(__file__), '..', 'launch', 'late_fusion.launch.py')
README = os.path.join(os.path.dirname(__file__), '..', '..', 'README.md')


def test_specs_wire_driver_topics_to_the_fusion_node():
    """Driver topics are remapped onto the encoders; encoders feed <modality>/embedding."""
    specs = {s.name: s for s in node_specs('/mic/audio_stamped', '/mic/audio_info',
                                           '/camera/image_raw', use_sim_time=True)}
    assert set(specs) >= {'audio_encoder', 'vision_encoder', 'fusion'}
    assert dict(specs['audio_encoder'].remappings) == {
        'audio_stamped': '/mic/audio_stamped', 'audio': '/mic/audio_stamped',
        'audio_info': '/mic/audio_info', 'embedding': 'audio/embedding'}
    assert dict(specs['vision_encoder'].remappings)['image'] == '/camera/image_raw'
    modalities = _values(resolved_parameters(specs['fusion']))['modalities']
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
    """Name, namespace, remaps and the resolved parameters file become one --ros-args block."""
    spec = node_specs('a', 'b', 'c', params_file='/p.yaml', namespace='robot1')[0]
    args = ros_args(spec, '/tmp/resolved.yaml')
    assert args[:5] == ['--ros-args', '-r', '__node:=audio_encoder', '-r', '__ns:=/robot1']
    assert 'audio_stamped:=a' in args
    assert args[-2:] == ['--params-file', '/tmp/resolved.yaml']


def test_launch_file_declares_transcribe():
    """The launch file offers transcribe:=true|false and passes it on to node_specs."""
    text = open(LAUNCH_FILE).read()
    assert "'transcribe':" in text and "transcribe=arg['transcribe']" in text


@pytest.mark.parametrize('key, fqn, expected', [
    ('/**/fusion', '/fusion', True), ('/**/fusion', '/robot1/fusion', True),
    ('/**/fusion', '/a/b/fusion', True), ('/**/fusion', '/robot1/fusion_left', False),
    ('fusion', '/fusion', True), ('fusion', '/robot1/fusion', False),
    ('/*/fusion', '/robot1/fusion', True), ('/*/fusion', '/fusion', False),
    ('/**', '/robot1/fusion', True), ('robot1/fusion', '/robot1/fusion', True),
    ('/robot1/*', '/robot1/fusion', True), ('/robot2/fusion', '/robot1/fusion', False)])
def test_keys_match_nodes_as_rcl_matches_them(key, fqn, expected):
    """`/**` any namespaces, `*` one token, a bare name the root namespace only."""
    assert key_matches(key, fqn) is expected


def _values(params: dict) -> dict:
    return {k: yaml.safe_load(yaml.serialize(v)) for k, v in params.items()}


def test_every_role_in_every_namespace_and_under_any_name_gets_its_section(tmp_path):
    """The package's YAML configures each role in the root namespace, /robot1, renamed."""
    sections = {s.key: s for s in read_sections(default_params_file())}
    assert set(sections) == {f'/**/{r}' for r in ROLES}
    for namespace in ('', 'robot1', '/a/b'):
        for spec in node_specs(face=True, transcribe=True, namespace=namespace):
            spec.name = f'{spec.name}_left'  # renamed, as by remapping; the role stays
            written = yaml.safe_load(open(write_parameters(spec, str(tmp_path))))
            expected = _values(sections[f'/**/{spec.role}'].params)
            expected.update(spec.parameters)
            assert written == {'/**': {'ros__parameters': expected}}, spec.fqn
        assert unmatched_sections(node_specs(namespace=namespace)) == []


def test_resolved_file_keeps_the_users_scalars(tmp_path):
    """Values are handed on as written (rcl types them), later sections override earlier."""
    user = tmp_path / 'user.yaml'
    user.write_text('/**:\n  ros__parameters:\n    frame_id: map\n'
                    '/**/fusion:\n  ros__parameters:\n    strategy_params:\n'
                    "      log_linear: {eps: 1e-6}\n    model_path: ''\n    frame_id: odom\n")
    spec = NodeSpec('fusion_node', 'fusion', params_files=[str(user)],
                    parameters={'use_sim_time': True})
    text = open(write_parameters(spec, str(tmp_path / 'out'))).read()
    assert 'strategy_params.log_linear.eps: 1e-6' in text  # a double to rcl, not a string
    assert "model_path: ''" in text and 'frame_id: odom' in text and 'map' not in text
    assert 'use_sim_time: true' in text


def test_sections_that_configure_no_node_are_reported(tmp_path):
    """A typo, a bare key in a namespace, another robot's section; not a role not started."""
    user = tmp_path / 'user.yaml'
    user.write_text('/**/fusoin:\n  ros__parameters: {a: 1}\n'
                    'fusion:\n  ros__parameters: {b: 1}\n'
                    '/robot2/fusion:\n  ros__parameters: {c: 1}\n'
                    '/**/face_encoder:\n  ros__parameters: {d: 1}\n'
                    '/**:\n  ros__parameters: {e: 1}\n')
    lines = unmatched_sections(node_specs(params_file=str(user), namespace='robot1'))
    assert len(lines) == 3, lines
    assert "'/**/fusoin'" in lines[0]
    assert "'fusion'" in lines[1] and "'/**/fusion' for every namespace" in lines[1]
    assert "'/robot2/fusion'" in lines[2]


def test_readme_launch_arguments_are_the_launch_files(launch_api):
    """The README's table of launch arguments lists exactly what the launch file declares."""
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch import LaunchContext
    description = PythonLaunchDescriptionSource(LAUNCH_FILE).get_launch_description(
        LaunchContext())
    declared = {a.name for a in description.get_launch_arguments()}
    text = open(README).read()
    table = text[text.index('### Launch arguments'):]
    table = table[:table.index('\n\n', table.index('|'))]
    documented = set(re.findall(r'^\| `(\w+)` \|', table, re.M))
    assert declared == documented


@pytest.fixture(scope='module')
def launch_api(ros_tools):
    """Make launch and launch_ros importable here: the system's or the ones built for tests."""
    for path in reversed(ros_tools.site):
        if path not in sys.path:
            sys.path.insert(0, path)
    import launch_ros
    return launch_ros


def _launched_nodes(args: dict):
    """Load the real launch description with `args` and return (context, Node actions)."""
    from launch import LaunchContext
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch.actions import RegisterEventHandler
    from launch_ros.actions import Node
    context = LaunchContext()
    context.launch_configurations.update(args)  # as `ros2 launch ... name:=value` does
    description = PythonLaunchDescriptionSource(LAUNCH_FILE).get_launch_description(context)
    nodes, handlers, pending = [], [], list(description.entities)
    while pending:  # what LaunchService does, short of starting processes
        entity = pending.pop(0)
        if isinstance(entity, Node):
            nodes.append(entity)
        elif isinstance(entity, RegisterEventHandler):
            handlers.append(entity.event_handler)
        else:
            pending[:0] = entity.visit(context) or []
    return context, nodes, handlers


@pytest.mark.integration
@pytest.mark.parametrize('args', [
    {},
    {'namespace': 'robot1', 'face': 'true', 'use_sim_time': 'true', 'transcribe': 'false',
     'audio_topic': '/mic/audio_stamped', 'audio_info_topic': '/mic/audio_info',
     'image_topic': '/camera/image_raw'},
    {'managed': 'true'},
    {'managed': 'true', 'autostart': 'false', 'namespace': 'robot1', 'face': 'true'},
    {'nodes': 'vision_encoder, face_encoder', 'face': 'true'},
    {'nodes': 'audio_encoder,transcription,fusion', 'managed': 'true'}])
def test_launch_file_starts_what_the_bringup_starts(launch_api, args, tmp_path):
    """Executables, names, namespaces, remappings and resolved parameters are the same."""
    from late_fusion_ros.bringup import transcription_available
    from launch.utilities import perform_substitutions
    from launch_ros.actions import LifecycleNode, Node
    context, nodes, handlers = _launched_nodes(args)
    defaults = {'audio_topic': 'audio_stamped', 'audio_info_topic': 'audio_info',
                'image_topic': 'image', 'namespace': '', 'face': 'false',
                'use_sim_time': 'false', 'managed': 'false', 'autostart': 'true',
                'nodes': 'all',
                'transcribe': 'true' if transcription_available() else 'false'}
    a = {**defaults, **args}
    managed = a['managed'] == 'true'
    specs = node_specs(a['audio_topic'], a['audio_info_topic'], a['image_topic'],
                       use_sim_time=a['use_sim_time'] == 'true', face=a['face'] == 'true',
                       transcribe=a['transcribe'] == 'true',
                       namespace=f"/{a['namespace']}" if a['namespace'] else '',
                       managed=managed, only=None if a['nodes'] == 'all' else
                       [n.strip() for n in a['nodes'].split(',')])
    assert [n.node_executable for n in nodes] == [s.executable for s in specs]
    # Managed: lifecycle nodes (their `autostart` parameter false, see the resolved files
    # below), driven by two launch event handlers each (configure, then activate) unless
    # autostart:=false or launch_ros autostarts them itself.
    assert all(isinstance(n, LifecycleNode) == managed for n in nodes)
    native = 'autostart' in inspect.signature(LifecycleNode.__init__).parameters
    driven = managed and a['autostart'] == 'true' and not native
    assert len(handlers) == (2 * len(nodes) if driven else 0)
    for node, spec in zip(nodes, specs):
        # launch_ros's own expansion of names, namespace, remappings and parameters
        # (what Node.execute does before it starts the process).
        node._perform_substitutions(context)
        assert node.node_package == 'late_fusion_ros'
        namespace = node.expanded_node_namespace
        root = (Node.UNSPECIFIED_NODE_NAMESPACE, '/')  # a LifecycleNode names the root '/'
        assert (namespace if namespace not in root else '') == spec.namespace
        if managed:
            assert node.node_name == spec.fqn  # a LifecycleNode is addressed by its name
        elif EXECUTABLE_NODE_NAMES[spec.executable] == spec.name:
            assert not node.is_node_name_fully_specified()  # renamable by a remapping
        else:  # before execute() an unset namespace reads as a placeholder
            assert node.node_name.replace(Node.UNSPECIFIED_NODE_NAMESPACE, '') == spec.fqn
        assert (node.expanded_remapping_rules or []) == spec.remappings
        cmd = []
        for part in node.cmd:
            try:
                cmd.append(perform_substitutions(context, part))
            except Exception:  # noqa: BLE001 - the __node/__ns placeholders need execute()
                cmd.append('?')
        params = [cmd[i + 1] for i, c in enumerate(cmd) if c == '--params-file']
        assert len(params) == 1, cmd
        launched = yaml.safe_load(open(params[0]))
        assert launched == yaml.safe_load(open(write_parameters(spec, str(tmp_path))))


def test_players_load_the_large_frames_profile_unless_dds_is_configured():
    """bag_play and the media player use the 32 MiB segment profile, never over the user's."""
    from late_fusion_ros.bringup.dds import profile_path, use_large_frames_profile
    assert os.path.isfile(profile_path())
    with open(profile_path()) as f:
        assert '<segment_size>33554432</segment_size>' in f.read()
    env = {}
    assert use_large_frames_profile(env) == env
    (name, path), = env.items()
    # Fast DDS 3 (Kilted: rclpy 9) reads the new name, Fast DDS 2 (Jazzy: rclpy 7) the old one.
    from ament_index_python.packages import get_package_share_directory
    with open(os.path.join(get_package_share_directory('rclpy'), 'package.xml')) as f:
        rclpy_major = int(re.search(r'<version>(\d+)\.', f.read())[1])
    assert name == ('FASTDDS_DEFAULT_PROFILES_FILE' if rclpy_major >= 9
                    else 'FASTRTPS_DEFAULT_PROFILES_FILE')
    assert path == profile_path()
    for user in ({'FASTDDS_DEFAULT_PROFILES_FILE': '/mine.xml'},
                 {'FASTRTPS_DEFAULT_PROFILES_FILE': '/mine.xml'},
                 {'FASTDDS_BUILTIN_TRANSPORTS': 'UDPv4'},
                 {'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}):
        env = dict(user)
        assert use_large_frames_profile(env) == {} and env == user


def test_nodes_selects_roles_of_the_same_graph():
    """`only` keeps the graph's wiring for the roles asked; an unknown role is an error."""
    whole = {s.role: s for s in node_specs(face=True, transcribe=True)}
    part = node_specs(face=True, transcribe=True, only=['fusion', 'vision_encoder'])
    assert [s.role for s in part] == ['vision_encoder', 'fusion']
    for spec in part:
        assert spec.remappings == whole[spec.role].remappings
        assert spec.parameters == whole[spec.role].parameters
    with pytest.raises(ValueError, match='face_encoder'):
        node_specs(only=['face_encoder'])
