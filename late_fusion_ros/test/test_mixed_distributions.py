# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Mixed distributions: a driver on one ROS 2 release, the nodes on the other.

Robot stacks mix releases: a Jazzy driver stack feeding nodes built on Kilted, or the
reverse. This runs the media player (a driver publishing real speech and photos) with one
distribution's environment and the three nodes with the other's, both ways, over real DDS
(Fast DDS 2.14 of the Jazzy wheels against 3.2 of the Kilted wheels), and checks that
fused outputs of both triggers flow. It needs both sets set up (`make setup` and
`ROS_DISTRO=jazzy make setup`; CI does both); otherwise it skips and says so.
"""

import os
import subprocess

from conftest import ROOT
from late_fusion_msgs.msg import FusionOutput
from late_fusion_ros.bringup import node_specs, NodeSpec
from late_fusion_ros.bringup.launcher import ProcessGroup
import pytest

pytestmark = pytest.mark.integration

DISTROS = ('jazzy', 'kilted')
# What a fresh login shell has; the distribution's setup.bash adds the rest.
BASE_ENV = ('HOME', 'LANG', 'LC_ALL', 'TMPDIR', 'USER', 'ROS_DOMAIN_ID',
            'ROS_AUTOMATIC_DISCOVERY_RANGE', 'PYTHONUNBUFFERED')


def _rclpy_major(env) -> int:
    out = subprocess.run(
        ['python', '-c', 'import os, ament_index_python.packages as p, xml.etree.ElementTree '
         'as E; print(E.parse(os.path.join(p.get_package_share_directory("rclpy"), '
         '"package.xml")).find("version").text)'],
        env=env, capture_output=True, text=True, timeout=120, check=True).stdout
    return int(out.split('.')[0])


def _environment(distro: str):
    """Return the environment of `distro`'s install folder, or None where it is not set up."""
    install = subprocess.run(['bash', str(ROOT / 'scripts' / 'distro.sh'), 'install'],
                             env={**os.environ, 'ROS_DISTRO': distro}, capture_output=True,
                             text=True, check=True).stdout.strip()
    setup = ROOT / install / 'setup.bash'
    if not setup.exists():
        return None
    base = {k: os.environ[k] for k in BASE_ENV if k in os.environ}
    base['PATH'] = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    out = subprocess.run(['bash', '-c', f'source "{setup}" >/dev/null && env -0'], env=base,
                         capture_output=True, check=True, timeout=60).stdout
    return dict(item.split('=', 1) for item in out.decode().split('\0') if '=' in item)


@pytest.fixture(scope='module')
def environments():
    """Both distributions' environments, keyed by name; skip where one is not set up."""
    envs = {d: _environment(d) for d in DISTROS}
    missing = [d for d, env in envs.items() if env is None]
    if missing:
        pytest.skip(f'{", ".join(missing)} not set up here: run `ROS_DISTRO={missing[0]} '
                    'make setup` to test mixed distributions')
    majors = {d: _rclpy_major(env) for d, env in envs.items()}
    assert majors == {'jazzy': 7, 'kilted': 9}, majors  # really two different releases
    return envs


@pytest.mark.parametrize('driver, nodes', [('jazzy', 'kilted'), ('kilted', 'jazzy')])
def test_driver_on_one_distribution_nodes_on_the_other(ros, environments, tmp_path,
                                                       driver, nodes):
    """Outputs triggered by the microphone and by the camera arrive across releases."""
    namespace = f'/mixed_{driver}_{nodes}'
    outputs = ros.collect(FusionOutput, f'{namespace}/fusion_output')
    player = ProcessGroup(env=environments[driver], log_dir=str(tmp_path / driver))
    graph = ProcessGroup(env=environments[nodes], log_dir=str(tmp_path / nodes))
    try:
        player.start(NodeSpec('media_player_node', 'media_player', namespace=namespace,
                              parameters={'fps': 5.0}))
        assert graph.start_all(node_specs(namespace=namespace)) == []

        def fused(trigger):  # an output of this trigger with both modalities present
            return any(m.trigger_modality == trigger and all(s.present for s in m.modalities)
                       for _, m in list(outputs))

        assert ros.wait_for(lambda: fused('audio') and fused('vision'), 120, 0.5), (
            f'{driver} driver -> {nodes} nodes: {len(outputs)} outputs, triggers '
            f'{sorted({m.trigger_modality for _, m in outputs})}')
    finally:
        codes = {**graph.stop(), **player.stop()}
    assert set(codes.values()) == {0}, codes
