# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Multi-robot: two graphs side by side in two namespaces, and nodes renamed by remapping.

With `ros2 launch` (robot1 with `namespace:=robot1`; robot2 through a user's launch file
that includes ours under PushRosNamespace and renames the fusion node with SetRemap) and
with the project's bring-up (bringup.node_specs + launcher.ProcessGroup; robot3 as is,
robot4 with every node renamed), every node must run with every parameter of its section
of the package's YAML, read back with `ros2 param dump`; each robot fuses its own driver.
The launched robots run without the transcription node (transcribe:=false): eight model
processes at once would starve a 2-core machine, and test_launch.py runs the launch file's
full default graph, transcription included.
"""

from conftest import (assert_clean_sigint, assert_parameters_applied, echo_once, PLAYER,
                      yaml_parameters)
from late_fusion_ros.bringup import default_params_file, node_specs
from late_fusion_ros.bringup.launcher import ProcessGroup
import pytest

pytestmark = pytest.mark.integration

ROBOT2_LAUNCH = """
# A user's bring-up: our launch file included under a namespace, the fusion node renamed.
from launch import LaunchDescription
from launch.actions import GroupAction, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import PushRosNamespace, SetRemap
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    late_fusion = PathJoinSubstitution(
        [FindPackageShare('late_fusion_ros'), 'launch', 'late_fusion.launch.py'])
    return LaunchDescription([GroupAction([
        PushRosNamespace('robot2'),
        SetRemap(src='fusion:__node', dst='fusion_left'),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(late_fusion),
                                 launch_arguments={'transcribe': 'false'}.items()),
    ])])
"""
# (fully qualified name, role) of every node of the two launched graphs
LAUNCHED = [('/robot1/audio_encoder', 'audio_encoder'), ('/robot1/vision_encoder',
                                                         'vision_encoder'),
            ('/robot1/fusion', 'fusion'), ('/robot2/audio_encoder', 'audio_encoder'),
            ('/robot2/vision_encoder', 'vision_encoder'), ('/robot2/fusion_left', 'fusion')]


@pytest.fixture(scope='module')
def robots(ros_tools, tmp_path_factory):
    """Two robots, each with its own player (driver) in its namespace, launched two ways."""
    tmp = tmp_path_factory.mktemp('robots')
    (tmp / 'robot2.launch.py').write_text(ROBOT2_LAUNCH)
    players = [ros_tools.start(PLAYER + ['-r', f'__ns:=/{r}'], tmp / f'player_{r}.log')
               for r in ('robot1', 'robot2')]
    launches = [ros_tools.start(['launch', 'late_fusion_ros', 'late_fusion.launch.py',
                                 'namespace:=robot1', 'transcribe:=false'],
                                tmp / 'launch_robot1.log'),
                ros_tools.start(['launch', str(tmp / 'robot2.launch.py')],
                                tmp / 'launch_robot2.log')]
    ros_tools.wait_for_nodes([fqn for fqn, _ in LAUNCHED])
    yield launches
    for proc in launches + players:
        proc.stop(group=proc in players)


def test_two_launched_robots_apply_every_yaml_parameter(ros_tools, robots):
    """namespace:=robot1, and PushRosNamespace + a renamed node: the same YAML applies."""
    nodes = ros_tools.node_list()
    assert not {'/fusion', '/audio_encoder', '/vision_encoder'} & set(nodes), nodes
    dumps = ros_tools.param_dumps([fqn for fqn, _ in LAUNCHED])
    for fqn, role in LAUNCHED:
        assert_parameters_applied(ros_tools, fqn, yaml_parameters(default_params_file(), role),
                                  dumps[fqn])


def test_each_robot_fuses_its_own_driver(ros_tools, robots):
    """Relative topics stay in each namespace: one publisher, one subscriber per robot."""
    for robot in ('robot1', 'robot2'):
        msg = echo_once(ros_tools, f'/{robot}/fusion_output',
                        'late_fusion_msgs/msg/FusionOutput', 'm.trigger_modality == "vision"')
        assert [m['modality'] for m in msg['modalities']] == ['audio', 'vision']
    counts = ros_tools.topic_counts()
    for robot in ('robot1', 'robot2'):
        for topic in ('audio_stamped', 'image', 'audio/embedding', 'vision/embedding'):
            assert counts.get(f'/{robot}/{topic}') == (1, 1), (robot, topic, counts)
        assert counts.get(f'/{robot}/fusion_output', (0, 0))[0] == 1, counts


def test_the_package_yaml_reports_nothing_in_a_namespace(robots):
    """No section of the package's YAML is reported unused, no parameter undeclared."""
    for launch in robots:
        out = launch.output()
        assert 'configures none of the nodes' not in out, out[-3000:]
        assert 'not declared' not in out, out[-3000:]


def test_sigint_ends_both_robots_cleanly(robots):
    """Ctrl-C to each ros2 launch: every node of both robots exits 0."""
    for launch in robots:
        assert_clean_sigint(launch, ['audio_encoder_node', 'fusion_node',
                                     'vision_encoder_node'])


def test_bringup_two_namespaces_and_renamed_nodes_apply_every_yaml_parameter(
        ros_tools, tmp_path):
    """The project's bring-up: robot3 as is, robot4 with every node renamed."""
    robot3 = node_specs(namespace='robot3')
    robot4 = node_specs(namespace='/robot4')
    for spec, name in zip(robot4, ('mic_encoder', 'camera_encoder', 'fusion_left')):
        spec.name = name  # role (and so its YAML section) unchanged
    group = ProcessGroup(log_dir=str(tmp_path))
    try:
        assert group.start_all(robot3 + robot4) == []
        ros_tools.wait_for_nodes([s.fqn for s in robot3 + robot4])
        dumps = ros_tools.param_dumps([s.fqn for s in robot3 + robot4])
        for spec in robot3 + robot4:
            assert_parameters_applied(ros_tools, spec.fqn,
                                      yaml_parameters(default_params_file(), spec.role),
                                      dumps[spec.fqn])
    finally:
        codes = group.stop()
    assert set(codes.values()) == {0}, codes
    for key in codes:
        log = open(tmp_path / f'{key}.log').read()
        assert 'not declared' not in log and 'Traceback' not in log, log[-2000:]
