# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
The package in a real ROS stack: `ros2 launch`, `ros2 node|topic|param` and message_filters.

Every tool runs in its own process as a user runs it, on the run's isolated ROS_DOMAIN_ID
(scripts/run_tests.sh). The driver is `ros2 run late_fusion_ros media_player_node`: espeak-ng
speech as a 48 kHz stereo microphone and photos as a 1280x720 reliable camera, published
on its own topics the way robot drivers publish them, which `ros2 launch` remaps the nodes
onto. What the README promises is then read back with the CLI, and Ctrl-C (SIGINT to
`ros2 launch`) must end every node with exit code 0.
"""

import os
import time

from builtin_interfaces.msg import Time
from conftest import (assert_clean_sigint, assert_parameters_applied, echo_once, PLAYER,
                      RosHarness, yaml_parameters)
from late_fusion_msgs.msg import Embedding, FusionOutput
from late_fusion_ros.bringup import default_params_file, NodeSpec
from late_fusion_ros.bringup.launcher import ProcessGroup
from late_fusion_ros.core.fusion import STRATEGIES
import pytest
from rosgraph_msgs.msg import Clock
import yaml

pytestmark = pytest.mark.integration

LAUNCH = ['launch', 'late_fusion_ros', 'late_fusion.launch.py']


def driver(prefix: str):
    """
    Return (player remappings, launch topic arguments) for a driver under `prefix`.

    The player publishes audio_stamped, audio_info and image: remapped like a real driver's
    (/mic/..., /camera/...). Each graph of this module has its own prefix, so a player
    still running from an earlier graph can never feed a later one.
    """
    topics = {'audio_topic': f'{prefix}/mic/audio_stamped',
              'audio_info_topic': f'{prefix}/mic/audio_info',
              'image_topic': f'{prefix}/camera/image_raw'}
    remaps = ['-r', f'audio_stamped:={topics["audio_topic"]}',
              '-r', f'audio_info:={topics["audio_info_topic"]}',
              '-r', f'image:={topics["image_topic"]}']
    return remaps, topics


# The launch file's defaults: transcription runs where its model is installed (it is here).
NODES = ('audio_encoder', 'vision_encoder', 'transcription', 'fusion')
# The face and sim-time graph leaves transcription out: it is about face:= and /clock.
SIM_NODES = ('audio_encoder', 'vision_encoder', 'fusion', 'face_encoder')


def launch_args(**args) -> list:
    """Return `name:=value` launch arguments."""
    return [f'{k}:={v}' for k, v in args.items()]


# ---------------------------------------------------------------------- one graph, root
@pytest.fixture(scope='module')
def graph(ros_tools, tmp_path_factory):
    """
    Start the player and `ros2 launch` onto its remapped topics, with a user's params file.

    The file is the package's YAML plus two mistakes a user makes: a misspelt node section
    and a misspelt parameter, which must be reported at start-up.
    """
    tmp = tmp_path_factory.mktemp('graph')
    with open(default_params_file()) as f:
        doc = yaml.safe_load(f)
    doc['/**/fusion']['ros__parameters']['modality_params']['audio']['max_agee'] = 0.7
    doc['/**/fusoin'] = {'ros__parameters': {'strategy': 'log_linear'}}
    params = tmp / 'my_params.yaml'
    params.write_text(yaml.safe_dump(doc))
    remaps, topics = driver('')
    player = ros_tools.start(PLAYER + remaps, tmp / 'player.log')
    launch = ros_tools.start(
        LAUNCH + launch_args(params_file=params, **topics), tmp / 'launch.log')
    ros_tools.wait_for_nodes([f'/{n}' for n in NODES] + ['/media_player'])
    yield {'launch': launch, 'player': player, 'params': params}
    launch.stop()
    player.stop(group=True)


def test_launch_onto_remapped_driver_topics_fuses_both_modalities(ros_tools, graph):
    """`ros2 topic echo` sees FusionOutputs triggered by the microphone and by the camera."""
    for trigger in ('audio', 'vision'):
        msg = echo_once(ros_tools, '/fusion_output', 'late_fusion_msgs/msg/FusionOutput',
                        f'm.trigger_modality == "{trigger}" and m.valid and '
                        'm.modalities[0].present and m.modalities[1].present')
        assert msg['header']['frame_id'] == 'base_link'
        assert msg['strategy'] == 'speaking_to_robot'
        assert msg['decision'] in ('speaking', 'not_speaking')
        assert [m['modality'] for m in msg['modalities']] == ['audio', 'vision', 'speech']
        assert msg['modalities'][0]['present'] and msg['modalities'][1]['present']


def test_node_list_and_topic_info_show_the_readme_graph(ros_tools, graph):
    """Four nodes; encoders on the remapped driver topics feed <modality>/embedding."""
    nodes = ros_tools.node_list()
    assert {f'/{n}' for n in NODES} <= set(nodes), nodes
    counts = ros_tools.topic_counts()
    for topic, pubs_subs in (('/mic/audio_stamped', (1, 2)), ('/camera/image_raw', (1, 1)),
                             ('/audio/embedding', (1, 1)), ('/vision/embedding', (1, 1)),
                             ('/speech/embedding', (1, 1)), ('/speech/transcript', (1, 1)),
                             ('/fusion_output', (1, 0))):
        assert counts.get(topic, (0, 0)) == pubs_subs, (topic, counts)
    info = ros_tools.ros2('topic', 'info', '/fusion_output', '--no-daemon',
                          '--spin-time', '5').stdout
    assert 'Type: late_fusion_msgs/msg/FusionOutput' in info, info


def test_every_parameter_of_the_file_is_applied(ros_tools, graph):
    """`ros2 param dump` of each node shows every value of its section of params_file."""
    dumps = ros_tools.param_dumps([f'/{node}' for node in NODES])
    for node in NODES:
        expected = yaml_parameters(graph['params'], node)
        expected.pop('modality_params.audio.max_agee', None)  # the user's typo, see below
        if node == 'fusion':
            # transcribe:=true (the default here) adds the speech modality on top of the file.
            expected['modalities'] = expected['modalities'] + ['speech']
        assert_parameters_applied(ros_tools, f'/{node}', expected, dumps[f'/{node}'])
    get = ros_tools.ros2('param', 'get', '/fusion', 'modality_params.audio.max_age',
                         '--no-daemon', '--timeout', '30').stdout
    assert 'Double value is: 0.5' in get


def test_unknown_section_and_parameter_are_reported_at_start_up(ros_tools, graph):
    """A section that configures no node (launch) and an undeclared parameter (node) warn."""
    launch = graph['launch']
    assert launch.wait_for_output("section '/**/fusoin' configures none of the nodes", 30), \
        launch.output()[-3000:]
    assert launch.wait_for_output('modality_params.audio.max_agee', 30), launch.output()[-3000:]
    line = next(ln for ln in launch.output().splitlines() if 'max_agee' in ln)
    assert 'WARN' in line and 'not declared' in line and '[fusion_node-' in line, line
    # The package's own face section is not a mistake: explained at info level only.
    assert "modality 'face' is not in modalities" in launch.output()


def test_strategy_options_are_declared_listable_and_settable(ros_tools, graph):
    """Every option of every strategy is a declared parameter, validated when set."""
    # 2 s of discovery, repeated until the node is found (one call with 5 s took 10.6 s).
    out = ['']

    def listed_now():
        out[0] = ros_tools.ros2('param', 'list', '/fusion', '--no-daemon', '--spin-time', '2',
                                check=False).stdout
        return 'strategy_params.' in out[0]

    assert RosHarness.wait_for(listed_now, 60, 0.5), out[0]
    listed = out[0]
    names = {line.strip() for line in listed.splitlines()}
    for strategy, cls in STRATEGIES.items():
        for option in cls.PARAMS:
            assert f'strategy_params.{strategy}.{option}' in names, listed
    desc = ros_tools.ros2('param', 'describe', '/fusion', 'strategy_params.log_linear.eps',
                          '--no-daemon', '--timeout', '30').stdout
    assert 'Type: double' in desc and 'log_linear' in desc, desc

    def param_set(name, value):
        run = ros_tools.ros2('param', 'set', '/fusion', name, value, '--no-daemon',
                             '--timeout', '30', check=False)
        return run.stdout + run.stderr

    assert 'Set parameter successful' in param_set('strategy_params.log_linear.eps', '0.01')
    assert 'Setting parameter failed: log_linear: eps' in param_set(
        'strategy_params.log_linear.eps', '0.7')
    assert 'Setting parameter failed' in param_set('policy', 'sync')  # read-only
    get = ros_tools.ros2('param', 'get', '/fusion', 'strategy_params.log_linear.eps',
                         '--no-daemon', '--timeout', '30').stdout
    assert 'Double value is: 0.01' in get
    assert 'Set parameter successful' in param_set(
        'strategy_params.speaking_to_robot.threshold', '0.6')


def test_diagnostics_echo(ros_tools, graph):
    """`ros2 topic echo /diagnostics` shows the fusion node's status."""
    msg = echo_once(ros_tools, '/diagnostics', 'diagnostic_msgs/msg/DiagnosticArray',
                    'any("fusion" in s.name for s in m.status)')
    status = next(s for s in msg['status'] if 'fusion' in s['name'])
    assert status['hardware_id'] and status['values']


def test_sigint_to_ros2_launch_ends_every_node_with_exit_code_0(graph):
    """Ctrl-C: SIGINT to the launch process alone; it passes it on, every node exits 0."""
    assert_clean_sigint(graph['launch'], sorted(f'{n}_node' for n in NODES))
    assert graph['player'].stop(group=True) == 0  # Ctrl-C in the driver's terminal


# ---------------------------------------------------------------------- face and sim time
@pytest.fixture(scope='module')
def sim_graph(ros, ros_tools, tmp_path_factory):
    """`face:=true use_sim_time:=true` with a player on sim time and a /clock at 50 Hz."""
    tmp = tmp_path_factory.mktemp('sim_graph')
    start = time.monotonic()
    clock = ros.node.create_publisher(Clock, '/clock', 10)
    sim0 = 1000.0  # far from wall time: a wall-clock stamp anywhere would stand out

    def tick():
        t = sim0 + time.monotonic() - start
        clock.publish(Clock(clock=Time(sec=int(t), nanosec=int((t % 1) * 1e9))))

    timer = ros.node.create_timer(0.02, tick)
    remaps, topics = driver('/sim')
    player = ros_tools.start(PLAYER + ['-p', 'use_sim_time:=true'] + remaps, tmp / 'player.log')
    # In its own namespace too: nothing of the first graph can answer for this one.
    launch = ros_tools.start(LAUNCH + launch_args(face='true', use_sim_time='true',
                                                  transcribe='false', namespace='sim',
                                                  **topics), tmp / 'launch.log')
    ros_tools.wait_for_nodes([f'/sim/{n}' for n in SIM_NODES])
    yield {'launch': launch, 'player': player, 'sim0': sim0, 'start': start}
    launch.stop()
    player.stop(group=True)
    ros.node.destroy_timer(timer)


def test_face_true_adds_the_face_encoder_and_its_modality(ros_tools, sim_graph):
    """face:=true: a face encoder with its YAML section; the fusion node fuses face cues."""
    assert_parameters_applied(ros_tools, '/sim/face_encoder',
                              yaml_parameters(default_params_file(), 'face_encoder'))
    get = ros_tools.ros2('param', 'get', '/sim/fusion', 'modalities', '--no-daemon',
                         '--timeout', '30').stdout
    assert "['audio', 'vision', 'face']" in get, get
    msg = echo_once(ros_tools, '/sim/fusion_output', 'late_fusion_msgs/msg/FusionOutput',
                    'm.trigger_modality == "face"')
    assert [m['modality'] for m in msg['modalities']] == ['audio', 'vision', 'face']


def test_use_sim_time_true_runs_every_node_on_clock(ros_tools, sim_graph):
    """use_sim_time:=true reaches every node, and outputs carry /clock time, not wall time."""
    dumps = ros_tools.param_dumps([f'/sim/{node}' for node in SIM_NODES])
    for node, dump in dumps.items():
        assert dump['use_sim_time'] is True, node
    msg = echo_once(ros_tools, '/sim/fusion_output', 'late_fusion_msgs/msg/FusionOutput',
                    'm.trigger_modality == "audio" and 1000 < m.header.stamp.sec < 10**6')
    sim_now = sim_graph['sim0'] + time.monotonic() - sim_graph['start']
    stamp = msg['header']['stamp']['sec'] + msg['header']['stamp']['nanosec'] * 1e-9
    assert sim_graph['sim0'] < stamp <= sim_now + 1.0, (stamp, sim_now)
    assert 0.0 <= msg['capture_to_output_latency'] < 2.0, msg['capture_to_output_latency']


def test_sigint_ends_the_face_and_sim_time_graph_cleanly(sim_graph):
    """The four nodes of face:=true exit 0 on Ctrl-C too; no input was refused meanwhile."""
    assert_clean_sigint(sim_graph['launch'], ['audio_encoder_node', 'fusion_node',
                                              'vision_encoder_node', 'vision_encoder_node'])
    # On /clock, stamps and the nodes' clocks agree: nothing is 'from the future'.
    assert 'future_stamp' not in sim_graph['launch'].output()


# ---------------------------------------------------------------------- message_filters
def test_policy_sync_runs_on_the_real_message_filters(ros, ros_tools, tmp_path):
    """policy:=sync uses message_filters.ApproximateTimeSynchronizer where it is installed."""
    group = ProcessGroup(env=ros_tools.env, log_dir=str(tmp_path))
    remaps = [(f'{m}/embedding', f'mf/{m}/embedding') for m in ('audio', 'vision')]
    group.start(NodeSpec('fusion_node', 'fusion_mf', remaps + [('fusion_output',
                                                                'mf/fusion_output')],
                         [default_params_file()], {'policy': 'sync', 'sync_slop': 0.1},
                         role='fusion'))
    try:
        pubs = {m: ros.node.create_publisher(Embedding, f'mf/{m}/embedding', 50)
                for m in ('audio', 'vision')}
        box = ros.collect(FusionOutput, 'mf/fusion_output')
        ros.handshake(pubs, timeout=60.0)
        log = os.path.join(tmp_path, 'fusion_mf.log')
        assert RosHarness.wait_for(lambda: 'synchroniser' in open(log).read(), 30)
        assert 'synchroniser: message_filters.ApproximateTimeSynchronizer' in open(log).read()

        def emb(modality, seq, t):
            # As the default encoders make them: the YAML checks their dimensions.
            msg = Embedding(modality=modality, seq=seq, labels=['speech' if modality == 'audio'
                                                                else 'face'], scores=[0.9],
                            data=[0.9] if modality == 'audio' else [0.1] * 1280)
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int((t % 1) * 1e9)
            return msg

        # Until a complete set arrives nothing is fused; discovery may drop the first ones,
        # so sets are sent until one comes back.
        sets = iter(range(100))  # seqs below the test's 100; 20 s of probes are ~40

        def probe():
            k, t = next(sets), time.time() - 0.2
            pubs['audio'].publish(emb('audio', k, t))
            pubs['vision'].publish(emb('vision', k, t + 0.05))  # within sync_slop
        ros.handshake(pubs, probe=probe, their_side=lambda: box, timeout=20.0)
        # Outputs of sets sent during discovery may still be on their way.
        assert ros.wait_quiet(lambda: len(box), 0.5, 10.0), 'outputs keep coming'
        n = len(box)
        t = time.time()
        pubs['audio'].publish(emb('audio', 100, t))  # alone: no set, so no output ...
        # Alone for a while on purpose (a synchroniser fuses complete sets, not on a timeout);
        # that the node took it shows below, in the set's output.
        time.sleep(1.0)
        assert len(box) == n, 'an audio embedding without a vision partner was fused'
        pubs['vision'].publish(emb('vision', 100, t + 0.05))  # ... until its partner comes
        assert ros.wait_for(lambda: len(box) > n, 10.0), 'the completed set was not fused'
        # One publisher, in order: an output of the audio alone would have come before the
        # set's, and nothing may follow it.
        assert ros.wait_quiet(lambda: len(box), 0.5, 10.0), 'outputs keep coming'
        assert len(box) == n + 1, 'an audio embedding without a vision partner was fused'
        out = box[n][1]
        assert out.trigger_modality == 'vision'  # the newer member completes the set
        assert {m.modality: m.seq for m in out.modalities} == {'audio': 100, 'vision': 100}
        assert all(m.present for m in out.modalities)
    finally:
        codes = group.stop()
    assert codes == {'fusion_mf': 0}, codes
