# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
The fusion node as a separate process over real DDS, driven with Embedding messages.

Covers what only the node can show: an output per accepted arrival, bad input rejected and
counted without touching state, staleness, run-time parameter changes validated and
applied, diagnostics, and time going backwards under use_sim_time.
"""

from collections import Counter
import math
import time

from builtin_interfaces.msg import Time as TimeMsg
from conftest import diagnostics, node_log
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from late_fusion_msgs.msg import Embedding, FusionOutput
from late_fusion_ros.bringup import default_params_file, NodeSpec
import pytest
from rosgraph_msgs.msg import Clock

pytestmark = pytest.mark.integration


def _stamp(t: float) -> TimeMsg:
    return TimeMsg(sec=int(t), nanosec=int(round((t % 1) * 1e9)) % 1_000_000_000)


def _emb(modality, seq, t, labels=(), scores=(), data=()):
    msg = Embedding(modality=modality, seq=seq, labels=list(labels),
                    scores=[float(s) for s in scores], data=[float(x) for x in data])
    msg.header.stamp = _stamp(t)
    return msg


@pytest.fixture(scope='module')
def fusion(ros, start_nodes):
    """Start a fusion node (vision dim checked) and a second one on sim time."""
    files = [default_params_file()]
    group = start_nodes(
        NodeSpec('fusion_node', 'fusion', params_files=files,
                 parameters={'modality_params.vision.dim': 4}),
        NodeSpec('fusion_node', 'fusion_sim', [('audio/embedding', 'sim/audio/embedding'),
                                               ('vision/embedding', 'sim/vision/embedding'),
                                               ('fusion_output', 'sim/fusion_output')],
                 files, {'use_sim_time': True}))
    pubs = {t: ros.node.create_publisher(Embedding, t, 50) for t in (
        'audio/embedding', 'vision/embedding', 'sim/audio/embedding')}
    clock = ros.node.create_publisher(Clock, '/clock', 10)
    outputs = ros.collect(FusionOutput, 'fusion_output')
    sim_outputs = ros.collect(FusionOutput, 'sim/fusion_output')
    diags = ros.collect(DiagnosticArray, '/diagnostics')
    ros.handshake(list(pubs.values()) + [clock])
    # The node's side: a probe on each audio topic comes back as an output. Probes are
    # older than any test input.
    for topic, box, stamp in (('audio/embedding', outputs, time.time() - 100),
                              ('sim/audio/embedding', sim_outputs, 0.5)):
        seqs = iter(range(10**6, 10**7))

        def probe(topic=topic, stamp=stamp, seqs=seqs):
            pubs[topic].publish(_emb('audio', next(seqs), stamp, ['speech'], [0.5], [0.5]))
        ros.handshake([pubs[topic]], probe=probe, their_side=lambda box=box: len(box) > 0)
    return {'group': group, 'pubs': pubs, 'out': outputs, 'sim_out': sim_outputs,
            'clock': clock, 'diag': diags}


def _counter(fusion, key):
    """
    Return the fusion node's count `key` (e.g. 'vision.rejected') as last reported.

    Its /diagnostics and its latest output both report it, late at worst: with each input
    waited for before the next, the larger of the two is exact.
    """
    modality, kind = key.split('.')
    count = int(diagnostics(fusion['diag'], 'fusion').get(key, 0))
    if fusion['out']:
        count = max(count, getattr(_state(fusion['out'][-1][1], modality), kind))
    return count


def _send_and_wait(ros, fusion, topic, msg, timeout=5.0):
    box = fusion['out']
    before = len(box)
    fusion['pubs'][topic].publish(msg)
    assert ros.wait_for(lambda: len(box) > before, timeout), f'no output for {msg}'
    return box[-1][1]


def _send_refused(ros, fusion, refused, timeout=5.0):
    """
    Send inputs the node must refuse, (topic, msg, counter) each; assert none has an output.

    The node has taken them all once each counter (a key of _counter) has grown by the
    number of them sent (its diagnostics come at 1 Hz): only then is no output a result.
    """
    box = fusion['out']
    before = len(box)
    expected = Counter(key for _, _, key in refused)
    start = {key: _counter(fusion, key) for key in expected}
    for topic, msg, _ in refused:
        fusion['pubs'][topic].publish(msg)

    def counted():
        return {key: _counter(fusion, key) - start[key] for key in expected}
    assert ros.wait_for(lambda: all(n >= expected[k] for k, n in counted().items()),
                        timeout), f'counted {counted()} of {dict(expected)}'
    assert len(box) == before, \
        f'a rejected input produced an output: {[m for _, m in box[before:]]}'


def _state(out, modality):
    return next(m for m in out.modalities if m.modality == modality)


def _node_time(fusion, fqn):
    """Return the newest /diagnostics stamp of node `fqn`: its clock, sim time included."""
    for _, arr in reversed(fusion['diag']):
        if any(st.hardware_id == fqn for st in arr.status):
            return arr.header.stamp
    return None


def test_output_on_every_arrival_and_absent_modality_reported(ros, fusion):
    """Audio alone yields outputs at once; vision, never seen, is reported absent."""
    t = time.time()
    before = _state(fusion['out'][-1][1], 'audio').received  # the fixture's probes
    outs = [_send_and_wait(ros, fusion, 'audio/embedding',
                           _emb('audio', k, t + 0.032 * k, ['speech'], [0.9], [0.9]))
            for k in range(5)]
    for k, out in enumerate(outs):
        assert out.trigger_modality == 'audio' and out.trigger_seq == k
        assert out.valid and out.decision == 'speaking'
        assert not _state(out, 'vision').present
        assert _state(out, 'audio').received == before + k + 1
        # The output keeps the trigger's capture stamp.
        assert abs(out.header.stamp.sec + out.header.stamp.nanosec * 1e-9 -
                   (t + 0.032 * k)) < 1e-6


def test_bad_input_rejected_counted_and_state_untouched(ros, fusion):
    """NaN, wrong dimension, empty, length mismatch, too large, foreign modality, duplicates."""
    t = time.time()
    good = _send_and_wait(ros, fusion, 'vision/embedding',
                          _emb('vision', 100, t, ['face', 'mouth_moving'], [0.9, 0.8],
                               [1, 2, 3, 4]))
    assert _state(good, 'vision').seq == 100
    bad = [
        _emb('vision', 101, t + 0.1, ['face'], [math.nan], [1, 2, 3, 4]),          # NaN
        _emb('vision', 102, t + 0.2, ['face'], [0.5], [1, 2, 3]),                 # dimension
        _emb('vision', 103, t + 0.3),                                             # empty
        _emb('vision', 104, t + 0.4, ['face', 'mouth_moving'], [0.5], [1, 2, 3, 4]),  # lengths
        _emb('vision', 105, t + 0.5, ['face'], [math.inf], [1, 2, 3, 4]),         # Inf
    ]
    _send_refused(ros, fusion, [('vision/embedding', msg, 'vision.rejected') for msg in bad] + [
        ('vision/embedding',  # duplicate sequence number
         _emb('vision', 100, t + 0.6, ['face'], [0.1], [1, 2, 3, 4]), 'vision.dropped'),
        ('vision/embedding',  # older than the current state
         _emb('vision', 99, t - 1.0, ['face'], [0.1], [1, 2, 3, 4]), 'vision.dropped'),
        ('vision/embedding',  # more values than max_embedding_size
         _emb('vision', 106, t + 0.55, data=[0.5] * 70000), 'vision.rejected'),
        ('audio/embedding',   # a modality the node was not given
         _emb('lidar', 7, t, ['speech'], [0.5], [0.5]), 'audio.rejected'),
        ('audio/embedding',   # vision's name on audio's topic
         _emb('vision', 8, t + 0.8, ['face'], [0.5], [1, 2, 3, 4]), 'audio.rejected')])
    after = _send_and_wait(ros, fusion, 'audio/embedding',
                           _emb('audio', 50, t + 0.7, ['speech'], [0.9], [0.9]))
    vision = _state(after, 'vision')
    assert vision.seq == 100, 'a rejected input changed the state'
    assert vision.rejected == 6 and vision.dropped == 2
    # A reject belongs to the topic it arrived on: both foreign names count under audio.
    assert _state(after, 'audio').rejected == 2
    # Diagnostics carry the same counters, per modality and per reason.
    assert ros.wait_for(lambda: any(
        kv.key == 'vision.rejected' and kv.value == '6'
        for _, arr in fusion['diag'] for st in arr.status if st.name == '/fusion: input'
        for kv in st.values), 5.0)
    log = node_log(fusion['group'], 'fusion')
    for reason in ('non_finite', 'wrong_dimension', 'empty', 'length_mismatch', 'too_large',
                   'foreign_modality', 'duplicate_seq', 'out_of_order'):
        assert reason in log, f'no log line for {reason}'


def test_stale_modality_contributes_nothing(ros, fusion):
    """Past max_age (audio: 0.5 s) a modality is reported stale with weight 0."""
    # Audio must be stamped now and after the newest audio stamp the node holds, which a
    # test before may have set ahead of the wall clock (by up to 0.7 s): wait past it.
    held = _state(fusion['out'][-1][1], 'audio').stamp
    assert ros.wait_for(lambda: time.time() > held.sec + held.nanosec * 1e-9, 2.0), held
    t = time.time()
    _send_and_wait(ros, fusion, 'audio/embedding',
                   _emb('audio', 200, t, ['speech'], [0.95], [0.95]))
    time.sleep(0.8)  # wall time passes on purpose: audio ages past its max_age
    out = _send_and_wait(ros, fusion, 'vision/embedding',
                         _emb('vision', 300, time.time(), ['face', 'mouth_moving'],
                              [0.9, 0.1], [1, 2, 3, 4]))
    audio = _state(out, 'audio')
    assert audio.present and audio.stale and audio.weight == 0.0
    assert audio.age > 0.5


def _input_status(fusion, since):
    """Return the fusion node's latest input status published after `since`, or None."""
    found = [st for t, arr in fusion['diag'] if t > since for st in arr.status
             if st.name == '/fusion: input']
    return found[-1] if found else None


def test_arrivals_lost_before_the_callback_warn_in_diagnostics(ros, fusion):
    """Gaps in an encoder's seq count as lost, WARN in /diagnostics, and the log says why."""
    base = 50_000_000  # far from every seq before: a new source, not a gap
    t = time.time()
    _send_and_wait(ros, fusion, 'vision/embedding',
                   _emb('vision', base, t, ['face'], [0.5], [1, 2, 3, 4]))
    since = time.time()
    assert ros.wait_for(lambda: _input_status(fusion, since) is not None, 10.0)
    before = int({kv.key: kv.value for kv in _input_status(fusion, since).values}.get(
        'vision.lost', 0))
    for k in (1, 4):  # base + 2 and base + 3 never arrive
        _send_and_wait(ros, fusion, 'vision/embedding',
                       _emb('vision', base + k, t + 0.01 * k, ['face'], [0.5], [1, 2, 3, 4]))
    since = time.time()

    def lost():
        status = _input_status(fusion, since)
        values = {} if status is None else {kv.key: kv.value for kv in status.values}
        return status, int(values.get('vision.lost', 0))
    assert ros.wait_for(lambda: lost()[1] == before + 2, 10.0), lost()
    status = lost()[0]
    assert status.level == DiagnosticStatus.WARN, status
    # Then the other problems of the moment, if any (the tests' stamps run ahead of the
    # node's clock, so clock offsets and staleness may follow).
    assert status.message.split('; ')[0] == 'arrivals lost before the callback', status
    log = node_log(fusion['group'], 'fusion')
    assert log.count('embeddings lost before the fusion callback') == 1, log
    assert 'subscription.depth' in log


def test_bytes_that_are_no_embedding_rejected_and_counted(ros, fusion):
    """The node reads its inputs' bytes itself: an Embedding cut short is refused, counted."""
    from rclpy.serialization import serialize_message
    data = serialize_message(_emb('audio', 700, time.time(), ['speech'], [0.5], [0.5]))
    # (Cut at a multiple of 4 bytes: RTPS pads a payload to one, with zeros.)
    _send_refused(ros, fusion, [('audio/embedding', data[:40], 'audio.rejected'),
                                ('audio/embedding', data[:-4], 'audio.rejected')])
    assert 'malformed' in node_log(fusion['group'], 'fusion')
    # Whole (and fresh), bytes are fused as any Embedding.
    data = serialize_message(_emb('audio', 701, time.time(), ['speech'], [0.9], [0.9]))
    out = _send_and_wait(ros, fusion, 'audio/embedding', data)
    assert out.trigger_seq == 701 and out.valid and out.decision == 'speaking'


def test_deactivated_node_publishes_nothing_and_resumes(ros, fusion):
    """Lifecycle: inactive, arrivals make no output; active again, outputs resume."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    def change(transition):
        response = ros.call(ChangeState, '/fusion/change_state',
                            ChangeState.Request(transition=Transition(id=transition)))
        assert response.success, transition
    box = fusion['out']
    change(Transition.TRANSITION_DEACTIVATE)
    try:
        before = len(box)
        held = _state(box[-1][1], 'audio').stamp
        t = max(time.time(), held.sec + held.nanosec * 1e-9 + 0.01)
        for k in range(5):
            fusion['pubs']['audio/embedding'].publish(
                _emb('audio', 800 + k, t + 0.001 * k, ['speech'], [0.9], [0.9]))
        time.sleep(1.0)
        assert len(box) == before, [m for _, m in box[before:]]
    finally:
        change(Transition.TRANSITION_ACTIVATE)
    # Subscribed again: the probe handshake of a fresh subscription, then an output.
    seqs = iter(range(900, 1000))
    ros.handshake([fusion['pubs']['audio/embedding']], probe=lambda: fusion['pubs'][
        'audio/embedding'].publish(_emb('audio', next(seqs), time.time(), ['speech'], [0.9],
                                        [0.9])), their_side=lambda: len(box) > before)
    assert box[-1][1].trigger_modality == 'audio'


def test_parameters_validated_and_applied_at_run_time(ros, fusion):
    """An unknown strategy or out-of-range value is refused; a valid change applies."""
    with ros.parameters_restored('fusion', 'strategy', 'modality_params.audio.max_age',
                                 'policy'):
        results = ros.set_parameters('fusion', strategy='no_such_strategy')
        assert not results[0].successful and 'no_such_strategy' in results[0].reason
        results = ros.set_parameters('fusion', **{'modality_params.audio.max_age': -1.0})
        assert not results[0].successful
        results = ros.set_parameters('fusion', policy='sync')
        assert not results[0].successful  # read-only: subscriptions are made at start
        results = ros.set_parameters('fusion', strategy='weighted_average')
        assert results[0].successful
        out = _send_and_wait(ros, fusion, 'audio/embedding',
                             _emb('audio', 400, time.time(), ['speech'], [0.8], [0.8]))
        assert out.strategy == 'weighted_average'
        assert dict(zip(out.labels, out.scores))['speech'] == pytest.approx(0.8, abs=1e-6)


def test_sim_time_and_time_going_backwards(ros, fusion):
    """Under use_sim_time a /clock jump backwards resets state once, outputs go on."""
    pub, clock, box = fusion['pubs']['sim/audio/embedding'], fusion['clock'], fusion['sim_out']

    def step(t, seq):
        # /clock is best effort: sent until the node's clock shows it, in the stamp of its
        # diagnostics (1 Hz).
        ros.handshake([clock], probe=lambda: clock.publish(Clock(clock=_stamp(t))),
                      their_side=lambda: _node_time(fusion, '/fusion_sim') == _stamp(t),
                      timeout=10.0)
        before = len(box)
        pub.publish(_emb('audio', seq, t, ['speech'], [0.9], [0.9]))
        assert ros.wait_for(lambda: len(box) > before, 5.0), f'no output at sim time {t}'
        return box[-1][1]

    for k in range(3):
        out = step(1000.0 + k, k)
        assert _state(out, 'audio').age == pytest.approx(0.0, abs=0.2)  # sim, not wall time
    out = step(10.0, 3)  # a bag loop: time goes back
    assert out.valid and _state(out, 'audio').seq == 3
    out = step(11.0, 4)
    assert out.valid
    log = node_log(fusion['group'], 'fusion_sim')
    assert log.count('time jumped backwards') == 1


def test_strategy_option_changed_at_run_time(ros, fusion):
    """strategy_params.<strategy>.<option> is a parameter like any other."""
    t = time.time()
    threshold = 'strategy_params.speaking_to_robot.threshold'
    with ros.parameters_restored('fusion', threshold):
        assert ros.set_parameters('fusion', **{threshold: 0.99})[0].successful
        out = _send_and_wait(ros, fusion, 'audio/embedding',
                             _emb('audio', 500, t, ['speech'], [0.9], [0.9]))
        assert out.decision == 'not_speaking'  # P is about 0.9, under the new threshold
        bad = ros.set_parameters('fusion', **{threshold: 7.0})
        assert not bad[0].successful
        assert ros.set_parameters('fusion', **{threshold: 0.5})[0].successful
        out = _send_and_wait(ros, fusion, 'audio/embedding',
                             _emb('audio', 501, t + 0.032, ['speech'], [0.9], [0.9]))
        assert out.decision == 'speaking'


def test_attention_model_file_switched_in_and_weights_reported(ros, fusion, tmp_path):
    """A trained attention head is loaded at run time; its attention shows per modality."""
    import numpy as np
    from late_fusion_ros.core.fusion.training import train_attention
    rng = np.random.default_rng(0)
    samples, labels = [], []
    for k in range(200):
        speaking = k % 2 == 0
        audio = rng.normal(1.0 if speaking else -1.0, 0.3, 1).astype(np.float32)
        vision = rng.normal(0.0, 1.0, 4).astype(np.float32)  # uninformative
        samples.append({'audio': audio, 'vision': vision})
        labels.append('speaking' if speaking else 'not_speaking')
    path = train_attention(samples, labels, str(tmp_path / 'attention.pt'), epochs=150)
    # Restored in reverse: the strategy first, then the model it no longer uses.
    with ros.parameters_restored('fusion', 'model_path'), \
            ros.parameters_restored('fusion', 'strategy'):
        assert ros.set_parameters('fusion', model_path=path)[0].successful
        assert ros.set_parameters('fusion', strategy='attention')[0].successful
        t = time.time()
        _send_and_wait(ros, fusion, 'vision/embedding',
                       _emb('vision', 600, t, ['face'], [0.5], [0.1, -0.2, 0.3, 0.0]))
        out = _send_and_wait(ros, fusion, 'audio/embedding',
                             _emb('audio', 601, t + 0.01, ['speech'], [0.9], [1.1]))
        assert out.strategy == 'attention' and out.decision == 'speaking'
        attention = {m.modality: m.attention for m in out.modalities}
        assert sum(attention.values()) == pytest.approx(1.0, abs=1e-4)
        assert all(a > 0 for a in attention.values())


@pytest.mark.parametrize('bad', ['policy:=foo', 'strategy:=nope',
                                 'modality_params.audio.max_age:=-1.0'])
def test_bad_configuration_refuses_to_start_with_one_clear_line(bad):
    """An impossible configuration exits 1 with a FATAL line naming it, no traceback."""
    import subprocess
    from late_fusion_ros.bringup.launcher import executable_path
    run = subprocess.run([executable_path('fusion_node'), '--ros-args', '-r',
                          '__node:=fusion_bad', '-p', bad], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 1
    assert 'cannot start' in run.stderr + run.stdout
    assert 'Traceback' not in run.stderr + run.stdout
    assert bad.split(':=')[1].strip('-') in run.stderr + run.stdout
