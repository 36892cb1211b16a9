# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Sim time that jumps: a bag-style /clock going backwards (a loop) and forwards (a skip).

The three nodes run with use_sim_time:=true, fed by a microphone and a camera stamping on
the simulated clock (fault_player.Player). After each jump every node must carry on, and
the fused outputs must hold only state from after the jump.
"""


from conftest import node_log
from fault_player import Player
from late_fusion_msgs.msg import FusionOutput
from late_fusion_ros.bringup import node_specs
import pytest

pytestmark = pytest.mark.integration

PREFIX = 'simfaults'


def _sec(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


@pytest.fixture(scope='module')
def graph(ros, start_nodes):
    """Start the nodes on sim time and the drivers on a jumpable /clock."""
    player = Player(ros.node, PREFIX, sim_time=True)
    group = start_nodes(*node_specs(f'{PREFIX}/mic/audio_stamped', f'{PREFIX}/mic/audio_info',
                                    f'{PREFIX}/camera/image_raw', use_sim_time=True))
    outputs = ros.collect(FusionOutput, 'fusion_output')
    player.start_mic()
    player.start_camera()
    assert ros.wait_for(lambda: {m.trigger_modality for _, m in outputs[-50:]} >=
                        {'audio', 'vision'}, 120.0), f'no outputs: {group.alive()}'
    yield {'group': group, 'out': outputs, 'player': player}
    player.close()


@pytest.mark.parametrize('jump', [-100.0, 60.0])
def test_clock_jump_resets_and_outputs_hold_only_post_jump_state(ros, graph, jump):
    """Back (a bag loop) or forward: outputs after the jump use only post-jump inputs."""
    out, player = graph['out'], graph['player']
    before = player.now()
    player.jump(jump)
    target = before + jump
    received = len(out)
    # Outputs from inputs stamped after the jump, once the driver's stamps follow it.
    assert ros.wait_for(lambda: sum(1 for _, m in out[received:]
                                    if target - 0.2 <= _sec(m.header.stamp) < target + 50)
                        > 60, 20.0), 'no outputs after the jump'
    after = [m for _, m in out[received:] if target - 0.2 <= _sec(m.header.stamp) < target + 50]
    for m in after[20:]:  # past the few outputs in flight when the clock jumped
        for state in m.modalities:
            if state.present and not state.stale:
                assert _sec(state.stamp) >= target - 0.5, (jump, state)
    assert any(all(s.present and not s.stale for s in m.modalities) for m in after), \
        'vision and audio never both fresh after the jump'
    if jump < 0:
        log = lambda: node_log(graph['group'], 'fusion')  # noqa: E731
        assert ros.wait_for(lambda: 'time jumped backwards' in log(), 5.0)
    assert all(code is None for code in graph['group'].alive().values())
