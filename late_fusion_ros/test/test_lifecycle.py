# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Managed nodes under the real `ros2 launch`, driven by the real `ros2 lifecycle`.

`ros2 launch late_fusion_ros late_fusion.launch.py managed:=true autostart:=false` starts
the default graph unconfigured; the tests then drive it as a user or a lifecycle manager
would, with `ros2 lifecycle nodes|get|list|set`, while a driver (the media player: a 48 kHz
stereo microphone and a reliable 1280x720 camera, its own process) streams. The encoders
are brought up before the fusion node (the order a manager may well choose), the vision
encoder goes through every transition, is deactivated while audio-triggered outputs go
on, and is measured for CPU while inactive under a 30 fps 1280x720 camera. Further tests:
a failing configure, Ctrl-C in every state and the shutdown transition, the model memory
that cleanup frees, and `managed:=true` with launch-time autostart in a namespace.
"""

import re
import time

from conftest import assert_clean_sigint, diagnostic_status, diagnostics, PLAYER, RosHarness
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from late_fusion_msgs.msg import Embedding, FusionOutput
import pytest

pytestmark = pytest.mark.integration

LAUNCH = ['launch', 'late_fusion_ros', 'late_fusion.launch.py']
# The launch file's default graph (transcription is installed here).
NODES = ('audio_encoder', 'vision_encoder', 'transcription', 'fusion')
EXECUTABLES = sorted(f'{n}_node' for n in NODES)
# The encoders first (together), the fusion node last: it must cope with either order.
ENCODERS = ('audio_encoder', 'transcription', 'vision_encoder')


def pids(launch) -> dict:
    """Return {executable: pid} of the processes `ros2 launch` reported as started."""
    found = re.findall(r'\[INFO\] \[([\w]+)-\d+\]: process started with pid \[(\d+)\]',
                       launch.output())
    return {exe: int(pid) for exe, pid in found}


def cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system, seconds) a process has used so far."""
    import os
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def cpu_share(pid: int, seconds: float) -> float:
    """Return the share of one core a process uses over the next `seconds`."""
    start, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - start) / (time.monotonic() - t0)


def rss_mib(pid: int) -> float:
    """Return a process's resident set size in MiB."""
    with open(f'/proc/{pid}/status') as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith('VmRSS:'))
    return kb / 1024


def remaps(prefix: str) -> list:
    """Return the player's remappings onto `<prefix>/mic/...` and `<prefix>/camera/...`."""
    return ['-r', f'audio_stamped:={prefix}/mic/audio_stamped',
            '-r', f'audio_info:={prefix}/mic/audio_info',
            '-r', f'image:={prefix}/camera/image_raw']


def topics(prefix: str) -> list:
    """Return the launch arguments that put the encoders on the player's topics."""
    return [f'audio_topic:={prefix}/mic/audio_stamped',
            f'audio_info_topic:={prefix}/mic/audio_info',
            f'image_topic:={prefix}/camera/image_raw']


@pytest.fixture(scope='module')
def managed(ros_tools, ros, tmp_path_factory):
    """Start the player and `ros2 launch ... managed:=true autostart:=false`; collect outputs."""
    tmp = tmp_path_factory.mktemp('managed')
    outputs = ros.collect(FusionOutput, '/fusion_output')
    vision = ros.collect(Embedding, '/vision/embedding')
    diag = ros.collect(DiagnosticArray, '/diagnostics')
    player = ros_tools.start(PLAYER + remaps('/lc'), tmp / 'player.log')
    launch = ros_tools.start(LAUNCH + ['managed:=true', 'autostart:=false'] + topics('/lc'),
                             tmp / 'launch.log')
    ros_tools.wait_for_nodes([f'/{n}' for n in NODES] + ['/media_player'])
    yield {'launch': launch, 'outputs': outputs, 'vision': vision, 'diag': diag, 'tmp': tmp}
    player.stop(group=True)
    assert_clean_sigint(launch, EXECUTABLES)


def test_managed_nodes_start_unconfigured_and_publish_nothing(ros_tools, ros, managed):
    """`ros2 lifecycle nodes` lists the graph, every node unconfigured, no output yet."""
    listed = []
    assert ros.wait_for(lambda: {f'/{n}' for n in NODES} <= set(
        listed.extend(ros_tools.lifecycle('nodes').stdout.split()) or listed), 30), listed
    states = ros_tools.lifecycle_states([f'/{n}' for n in NODES])
    assert set(states.values()) == {'unconfigured'}, states
    # /diagnostics says so too, for each node (a plain publisher: it reports in every state).
    assert ros.wait_for(lambda: all(
        diagnostic_status(managed['diag'], node, 'lifecycle') is not None
        for node in NODES), 15)
    for node in NODES:
        status = diagnostic_status(managed['diag'], node, 'lifecycle')
        assert status.message == 'unconfigured' and status.level == DiagnosticStatus.OK
    assert not managed['outputs']


def test_bring_up_encoders_first_then_fusion(ros_tools, ros, managed):
    """Configure and activate in the order encoders, fusion: outputs, nothing lost or aged."""
    up = ros_tools.lifecycle_sequences({f'/{n}': ['configure', 'activate'] for n in ENCODERS})
    assert all(up.values()), up
    assert ros_tools.lifecycle_sequences({'/fusion': ['configure', 'activate']})['/fusion']
    states = ros_tools.lifecycle_states([f'/{n}' for n in NODES])
    assert set(states.values()) == {'active'}, states
    outputs = managed['outputs']
    assert ros.wait_for(lambda: any(m.trigger_modality == 'vision' for _, m in outputs), 60)
    assert ros.wait_for(lambda: len(outputs) > 30, 30)
    first = outputs[0][1]
    audio = next(s for s in first.modalities if s.modality == 'audio')
    # The first outputs fuse fresh state: ages are the capture-to-arrival time, not the
    # time the encoders ran before the fusion node came up.
    assert audio.age < 0.5, first
    ros.wait_for(lambda: diagnostics(managed['diag'], 'fusion').get('audio.received'), 10)
    values = diagnostics(managed['diag'], 'fusion')
    for modality in ('audio', 'vision'):
        assert int(values.get(f'{modality}.lost', 0)) == 0, values
        assert int(values.get(f'{modality}.rejected', 0)) == 0, values
    status = diagnostic_status(managed['diag'], 'vision_encoder', 'lifecycle')
    assert status.message == 'active', status


def test_vision_deactivated_and_activated_while_audio_outputs_go_on(ros_tools, ros, managed):
    """Inactive vision publishes nothing and turns stale; audio outputs never stop."""
    outputs, vision = managed['outputs'], managed['vision']
    listed = ros_tools.lifecycle('list', '/vision_encoder').stdout
    assert 'deactivate' in listed and 'shutdown' in listed, listed
    assert ros_tools.lifecycle_set('/vision_encoder', 'deactivate')
    since = time.time()
    frames_before = len(vision)
    time.sleep(4.0)  # the inactive period under test: longer than vision's max_age (2 s)
    assert ros_tools.lifecycle_state('/vision_encoder') == 'inactive'
    # At most one embedding that was already on its way when the transition came.
    assert len(vision) - frames_before <= 1
    during = [(t, m) for t, m in outputs if t > since + 0.5]
    audio = [t for t, m in during if m.trigger_modality == 'audio']
    assert len(audio) > 30, f'{len(audio)} audio-triggered outputs while vision was inactive'
    assert max(b - a for a, b in zip(audio, audio[1:])) < 0.5
    stale = [m for t, m in during if t > since + 2.0 + 0.5]
    assert stale and all(
        next(s for s in m.modalities if s.modality == 'vision').stale for m in stale)
    assert ros_tools.lifecycle_set('/vision_encoder', 'activate')
    back = time.time()
    assert ros.wait_for(lambda: any(
        t > back and not next(s for s in m.modalities if s.modality == 'vision').stale
        for t, m in outputs), 30), 'vision never contributed again'
    # Nothing published while inactive is counted as lost by the fusion node.
    ros.wait_for(lambda: False, 1.5)  # one more /diagnostics period
    values = diagnostics(managed['diag'], 'fusion')
    assert int(values.get('vision.lost', 0)) == 0, values


def test_inactive_encoder_takes_no_cpu_under_a_streaming_camera(ros_tools, ros, managed):
    """A 30 fps 1280x720 camera streams at the inactive vision encoder: it idles."""
    camera = ros_tools.start(
        ['run', 'late_fusion_ros', 'media_player_node', '--ros-args', '-r',
         '__node:=camera30', '-p', 'fps:=30.0', '-r', 'image:=/lc/camera/image_raw',
         '-r', 'audio_stamped:=/cam30/audio', '-r', 'audio_info:=/cam30/audio_info'],
        managed['tmp'] / 'camera30.log')
    pid = pids(managed['launch'])['vision_encoder_node']
    try:
        ros_tools.wait_for_nodes(['/camera30'])
        assert ros_tools.lifecycle_set('/vision_encoder', 'deactivate')
        frames = len(managed['vision'])
        time.sleep(1.0)
        inactive = cpu_share(pid, 6.0)
        assert len(managed['vision']) - frames <= 1
        assert ros_tools.lifecycle_set('/vision_encoder', 'activate')
        time.sleep(1.0)
        active = cpu_share(pid, 6.0)
    finally:
        camera.stop(group=True)
    print(f'vision encoder CPU under 1280x720 at 30 fps: inactive {inactive:.1%}, '
          f'active {active:.1%} of a core')
    assert inactive < 0.05, f'inactive vision encoder used {inactive:.1%} of a core'
    assert active > 4 * inactive, (inactive, active)


def test_cleanup_frees_the_model_and_configure_loads_it_again(ros_tools, ros, managed):
    """Cleanup releases the model (RSS drops); configure and activate work again."""
    pid = pids(managed['launch'])['vision_encoder_node']
    assert ros_tools.lifecycle_set('/vision_encoder', 'deactivate')
    configured = rss_mib(pid)
    assert ros_tools.lifecycle_set('/vision_encoder', 'cleanup')
    assert ros_tools.lifecycle_state('/vision_encoder') == 'unconfigured'
    cleaned = rss_mib(pid)
    print(f'vision encoder RSS: configured {configured:.1f} MiB, after cleanup '
          f'{cleaned:.1f} MiB')
    assert configured - cleaned > 10.0, (configured, cleaned)
    assert ros_tools.lifecycle_set('/vision_encoder', 'configure')
    assert ros_tools.lifecycle_set('/vision_encoder', 'activate')
    back = time.time()
    assert ros.wait_for(lambda: any(t > back for t, _ in managed['vision']), 30)


def test_failing_configure_stays_unconfigured_with_one_line(ros_tools, ros, tmp_path):
    """A missing model file or a bad parameter fails configure: one ERROR line, no crash."""
    cases = {'missing_model': ['-p', 'encoder:=onnx', '-p', 'model_path:=/nonexistent.onnx',
                               '-p', 'spec_path:=/nonexistent.yaml'],
             'bad_transport': ['-p', 'image_transport:=theora']}
    procs = {}
    for name, args in cases.items():
        procs[name] = ros_tools.start(
            ['run', 'late_fusion_ros', 'vision_encoder_node', '--ros-args', '-r',
             f'__node:={name}', '-p', 'autostart:=false'] + args, tmp_path / f'{name}.log')
    diag = ros.collect(DiagnosticArray, '/diagnostics')
    ros_tools.wait_for_nodes([f'/{n}' for n in cases])
    for name, proc in procs.items():
        assert not ros_tools.lifecycle_set(f'/{name}', 'configure'), name
        assert ros_tools.lifecycle_state(f'/{name}') == 'unconfigured'
        errors = [ln for ln in proc.output().splitlines() if 'ERROR' in ln]
        assert len(errors) == 1 and 'configure failed' in errors[0], proc.output()
        assert ros.wait_for(lambda: (diagnostic_status(diag, name, 'lifecycle') or
                                     DiagnosticStatus()).level == DiagnosticStatus.ERROR, 10)
        assert 'configure failed' in diagnostic_status(diag, name, 'lifecycle').message
    assert 'theora' in procs['bad_transport'].output()
    assert 'nonexistent' in procs['missing_model'].output()
    for proc in procs.values():
        assert proc.stop(group=True) == 0  # Ctrl-C in a terminal: `ros2 run` and its node
        assert 'Traceback' not in proc.output(), proc.output()


def test_sigint_in_every_state_and_the_shutdown_transition(ros_tools, tmp_path):
    """Ctrl-C ends a node cleanly whatever its state; `shutdown` ends the process too."""
    states = {'in_unconfigured': [], 'in_inactive': ['configure'],
              'in_active': ['configure', 'activate'], 'shut_down': ['configure', 'activate']}
    procs = {name: ros_tools.start(
        ['run', 'late_fusion_ros', 'audio_encoder_node', '--ros-args', '-r',
         f'__node:={name}', '-p', 'autostart:=false'], tmp_path / f'{name}.log')
        for name in states}
    ros_tools.wait_for_nodes([f'/{n}' for n in states])
    done = ros_tools.lifecycle_sequences({f'/{n}': t for n, t in states.items()})
    assert all(done.values()), done
    assert ros_tools.lifecycle_set('/shut_down', 'shutdown')
    proc = procs.pop('shut_down')
    assert RosHarness.wait_for(lambda: proc.proc.poll() is not None, 15), 'still running'
    assert proc.proc.returncode == 0 and 'Traceback' not in proc.output(), proc.output()
    for name, proc in procs.items():
        assert proc.stop(group=True) == 0, (name, proc.output())
        assert 'Traceback' not in proc.output(), proc.output()


def test_launch_time_autostart_in_a_namespace(ros_tools, ros, tmp_path):
    """managed:=true (autostart by default) in /robot1: all active, fused, Ctrl-C clean."""
    outputs = ros.collect(FusionOutput, '/robot1/fusion_output')
    player = ros_tools.start(PLAYER + remaps('/robot1'), tmp_path / 'player.log')
    launch = ros_tools.start(
        LAUNCH + ['managed:=true', 'namespace:=robot1', 'transcribe:=false'] +
        topics('/robot1'), tmp_path / 'launch.log')
    nodes = ('audio_encoder', 'vision_encoder', 'fusion')
    try:
        ros_tools.wait_for_nodes([f'/robot1/{n}' for n in nodes])
        assert ros.wait_for(lambda: any(m.trigger_modality == 'vision' and
                                        m.modalities[1].present for _, m in outputs), 90)
        states = ros_tools.lifecycle_states([f'/robot1/{n}' for n in nodes])
        assert set(states.values()) == {'active'}, states
        # Launch drives the transitions once: a node deactivated later stays inactive.
        assert ros_tools.lifecycle_set('/robot1/vision_encoder', 'deactivate')
        time.sleep(2.0)
        assert ros_tools.lifecycle_state('/robot1/vision_encoder') == 'inactive'
    except BaseException:
        # A failed test must not leave /robot1 running into the next module's graph.
        launch.stop(group=True)
        raise
    finally:
        player.stop(group=True)
    assert_clean_sigint(launch, sorted(f'{n}_node' for n in nodes))
