# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
fusion_monitor attached to two fusion nodes in two namespaces, over real DDS.

The test feeds /robot7's fusion node audio embeddings at 50 Hz and /robot8's vision
embeddings at 10 Hz, and publishes /diagnostics_agg as diagnostic_aggregator does (group
headers without hardware_id; the nodes' statuses renamed under the analyzers' paths, with
their hardware_id and values) next to a raw /diagnostics that must then be ignored.
"""

import re
import subprocess
import threading
import time

from conftest import diagnostics
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from late_fusion_msgs.msg import Embedding
from late_fusion_ros.bringup import default_params_file, NodeSpec
from late_fusion_ros.bringup.launcher import executable_path
import pytest

pytestmark = pytest.mark.integration


def _status(name, hardware_id, **values):
    return DiagnosticStatus(name=name, hardware_id=hardware_id, level=DiagnosticStatus.OK,
                            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])


@pytest.fixture(scope='module')
def graphs(ros, start_nodes):
    """Two fusion nodes, /robot7 fed audio and /robot8 fed vision, and diagnostics."""
    files = [default_params_file()]
    # Distinct names: the process group tracks its processes by node name.
    start_nodes(NodeSpec('fusion_node', 'fusion7', [('__ns', '/robot7')], files),
                NodeSpec('fusion_node', 'fusion8', [('__ns', '/robot8')], files))
    audio = ros.node.create_publisher(Embedding, '/robot7/audio/embedding', 50)
    vision = ros.node.create_publisher(Embedding, '/robot8/vision/embedding', 50)
    agg = ros.node.create_publisher(DiagnosticArray, '/diagnostics_agg', 10)
    raw = ros.node.create_publisher(DiagnosticArray, '/diagnostics', 10)
    diags = ros.collect(DiagnosticArray, '/diagnostics')
    stop = threading.Event()

    def feed():
        k = 0
        while not stop.is_set():
            now = ros.node.get_clock().now().to_msg()
            msg = Embedding(modality='audio', seq=k, labels=['speech'], scores=[0.9],
                            data=[0.9])
            msg.header.stamp = now
            audio.publish(msg)
            if k % 5 == 0:
                msg = Embedding(modality='vision', seq=k, labels=['cat'], scores=[0.7],
                                data=[0.1, 0.2])
                msg.header.stamp = now
                vision.publish(msg)
            if k % 25 == 0:
                agg.publish(DiagnosticArray(status=[
                    _status('/Late fusion', ''),
                    _status('/Late fusion/Vision encoder', ''),
                    _status('/Late fusion/Vision encoder/ robot8 vision_encoder: encoder',
                            '/robot8/vision_encoder', encoder='efficientnet_lite0/imagenet',
                            encoded=40, dropped=5),
                    _status('/Late fusion/Vision encoder/ robot8 vision_encoder: input',
                            '/robot8/vision_encoder', received=46, lost=2, rejected=1)]))
                raw.publish(DiagnosticArray(status=[
                    _status('/robot8/vision_encoder: encoder', '/robot8/vision_encoder',
                            dropped=1000)]))
            k += 1
            time.sleep(0.02)  # paces the feed at 50 Hz
    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        # The nodes' side: each fusion node counts the feed's arrivals in its diagnostics.
        def taken(fqn, modality):
            values = diagnostics(diags, fqn)
            return sum(int(values.get(f'{modality}.{kind}', 0))
                       for kind in ('received', 'rejected', 'dropped'))
        ros.handshake([audio, vision], their_side=lambda: taken('/robot7/fusion7', 'audio')
                      and taken('/robot8/fusion8', 'vision'))
        yield
    finally:
        stop.set()
        thread.join()


def _monitor(*args):
    run = subprocess.run([executable_path('fusion_monitor'), *args], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0 and 'Traceback' not in run.stdout + run.stderr, run
    return run.stdout.splitlines()


def _last(lines, topic):
    found = [ln for ln in lines if f' {topic}: ' in ln]
    assert found, lines
    return found[-1]


def test_one_line_per_graph_and_second(graphs):
    """Rates, latency, ages, decision, and drops/rejects from /diagnostics_agg."""
    lines = _monitor('--count', '5')
    robot7, robot8 = _last(lines, '/robot7/fusion_output'), _last(lines, '/robot8/fusion_output')
    out7 = float(re.search(r'out +([\d.]+) Hz', robot7).group(1))
    in7 = float(re.search(r'in audio ([\d.]+) Hz', robot7).group(1))
    assert 30 <= out7 <= 60 and 30 <= in7 <= 60, robot7  # 50 Hz, on a busy machine
    assert re.search(r'lat p50 [\d.]+ p99 [\d.]+ ms', robot7), robot7
    assert re.search(r'age audio [\d.]+ vision - s', robot7), robot7  # no vision there
    assert re.search(r'speaking [\d.]+ \(audio #\d+\)', robot7), robot7
    assert robot7.endswith('drops 0 rejects 0'), robot7
    out8 = float(re.search(r'out +([\d.]+) Hz', robot8).group(1))
    assert 5 <= out8 <= 13 and re.search(r'in vision [\d.]+ Hz', robot8), robot8
    # The encoder's drops (5) and losses (2), and its rejects (1), from /diagnostics_agg;
    # the raw /diagnostics (1000 dropped) is not read while the aggregator publishes.
    assert re.search(r'drops 7 rejects 1$', robot8), robot8


def test_namespace_filter(graphs):
    """--namespace keeps one robot's graph."""
    lines = _monitor('--namespace', '/robot8', '--count', '2')
    assert any('/robot8/fusion_output' in ln for ln in lines), lines
    assert not any('/robot7/' in ln for ln in lines), lines
