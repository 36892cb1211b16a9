# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
A seeded fuzz of every input topic over real DDS, with exact counters.

At least 10,000 messages (LATE_FUSION_FUZZ_MESSAGES) go to the audio encoders
(AudioDataStamped, headerless AudioData, AudioInfo), the vision encoders (Image,
CompressedImage) and the fusion node (Embedding), each either valid or carrying exactly one
defect whose rejection reason the fuzzer knows: sizes, encodings, steps, sample formats,
NaN/Inf, empty arrays, huge declared sizes, foreign modality names, stamps in the past,
the future and zero, repeated and wrapped sequence numbers. The plan is drawn from one
seed (LATE_FUSION_FUZZ_SEED), so a failure repeats. At the end no node has died, every
node's counters equal what was sent, reason by reason, and the valid traffic interleaved
with the fuzz produced exactly the outputs it should.

Exact counts need every message delivered: the fuzzed subscriptions keep all history
(`qos_overrides.<topic>.subscription.history: keep_all`), so that a burst waits in the
middleware instead of being overwritten in a depth-N queue; the defaults are what the
other tests exercise.
"""

from collections import Counter
import io
import math
import os
import random
import time
import zlib

from audio_common_msgs.msg import AudioData, AudioDataStamped, AudioInfo
from conftest import diagnostics
from diagnostic_msgs.msg import DiagnosticArray
from late_fusion_msgs.msg import Embedding, FusionOutput
from late_fusion_ros.bringup import default_params_file, NodeSpec
from late_fusion_ros.shared.messages import sec_to_stamp
import numpy as np
from PIL import Image as PILImage
import pytest
from rclpy.qos import QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

pytestmark = pytest.mark.integration

SEED = int(os.environ.get('LATE_FUSION_FUZZ_SEED', '7'))
MESSAGES = int(os.environ.get('LATE_FUSION_FUZZ_MESSAGES', '10000'))
KEEP_ALL = QoSProfile(history=QoSHistoryPolicy.KEEP_ALL,
                      reliability=QoSReliabilityPolicy.RELIABLE)
# Topic -> node: the fuzzer is the only publisher of each.
TOPICS = {
    'audio': ('fz/mic/audio_stamped', AudioDataStamped),
    'audio_info': ('fz/mic/audio_info', AudioInfo),
    'raw_audio': ('fz/raw/audio', AudioData),
    'raw_info': ('fz/raw/audio_info', AudioInfo),
    'image': ('fz/cam/image', Image),
    'compressed': ('fz/cam2/image/compressed', CompressedImage),
    'emb_audio': ('audio/embedding', Embedding),
    'emb_vision': ('vision/embedding', Embedding),
}
DIMS = {'audio': 1, 'vision': 1280}  # config/late_fusion.yaml


def _keep_all(*topics):
    return {f'qos_overrides./{t}.subscription.history': 'keep_all' for t in topics}


@pytest.fixture(scope='module')
def graph(ros, start_nodes):
    """Five nodes whose inputs only the fuzzer publishes; outputs and diagnostics recorded."""
    files = [default_params_file()]
    group = start_nodes(
        NodeSpec('audio_encoder_node', 'fz_audio', [
            ('audio_stamped', TOPICS['audio'][0]), ('audio_info', TOPICS['audio_info'][0]),
            ('embedding', 'fz/out/audio')], files,
            _keep_all(TOPICS['audio'][0], TOPICS['audio_info'][0])),
        NodeSpec('audio_encoder_node', 'fz_raw', [
            ('audio', TOPICS['raw_audio'][0]), ('audio_info', TOPICS['raw_info'][0]),
            ('embedding', 'fz/out/raw')], files,
            {'stamped': False, **_keep_all(TOPICS['raw_audio'][0], TOPICS['raw_info'][0])}),
        NodeSpec('vision_encoder_node', 'fz_vision', [
            ('image', TOPICS['image'][0]), ('embedding', 'fz/out/vision')], files,
            _keep_all(TOPICS['image'][0])),
        NodeSpec('vision_encoder_node', 'fz_vision_c', [
            ('image', 'fz/cam2/image'), ('embedding', 'fz/out/vision_c')], files,
            {'image_transport': 'compressed', **_keep_all(TOPICS['compressed'][0])}),
        NodeSpec('fusion_node', 'fusion', [], files,
                 _keep_all('audio/embedding', 'vision/embedding')))
    pubs = {k: ros.node.create_publisher(t, name, KEEP_ALL) for k, (name, t) in TOPICS.items()}
    outputs = ros.collect(FusionOutput, 'fusion_output', KEEP_ALL)
    diag = ros.collect(DiagnosticArray, '/diagnostics', QoSProfile(depth=100))
    # Every node subscribes once it sees its publisher, and then says so in its diagnostics.
    assert ros.wait_for(lambda: all(p.get_subscription_count() for p in pubs.values()), 120.0), \
        {k: p.get_subscription_count() for k, p in pubs.items()}
    assert ros.wait_for(lambda: all(_diag(diag, n).get('publishers', '0') != '0' for n in (
        'fz_audio', 'fz_raw', 'fz_vision', 'fz_vision_c')), 30.0)
    return {'group': group, 'pubs': pubs, 'out': outputs, 'diag': diag}


def _diag(diag, node) -> dict:
    return diagnostics(diag, node)


def _png(width, height, rng):
    buf = io.BytesIO()
    PILImage.fromarray(rng.integers(0, 256, (height, width, 3), np.uint8)).save(buf, 'PNG')
    return buf.getvalue()


class Fuzzer:
    """Draws the next message for each topic and knows what the node must make of it."""

    def __init__(self, seed):
        self.r = random.Random(seed)
        self.np = np.random.default_rng(seed)
        self.expected = Counter()   # (node, counter key) -> count
        self.valid = Counter()
        self.audio_clock = 1000.0   # the stamped microphone's sample clock (16 kHz mono)
        self.odd_stamp = False
        self.emb = {m: {'seq': 0, 'stamp': 0.0, 'far_back': 0} for m in DIMS}
        self.speech = []             # (seq, score) of each valid audio Embedding, in order
        self.vision_seq = 0
        self.bomb = _png(2, 2, self.np)
        self.small_png = _png(32, 24, self.np)

    def expect(self, node, key, n=1):
        """Record that `node` must count `key` once more."""
        self.expected[(node, key)] += n

    # ------------------------------------------------------------------ audio chunks
    def audio_chunk(self):
        """Return an AudioDataStamped on the sample clock, or with one defect."""
        msg = AudioDataStamped()
        frames = 512
        kind = self.r.choices(['valid', 'odd_byte_count', 'empty', 'too_large', 'past',
                               'future', 'zero'], [70, 6, 4, 1, 3, 3, 3])[0]
        if kind in ('past', 'future', 'zero') and self.odd_stamp:
            kind = 'valid'  # an odd stamp is always followed by a good one
        data = self.np.integers(-3000, 3000, frames, np.int16).astype('<i2').tobytes()
        stamp = self.audio_clock
        if kind == 'odd_byte_count':
            data = data[:self.r.choice([1, 3, 511, 1023])]
        elif kind == 'empty':
            data = b''
        elif kind == 'too_large':
            data = bytes(2 * 16000 * 11)  # 11 s of 16 kHz S16LE: above max_chunk_seconds
        elif kind in ('past', 'future', 'zero'):
            stamp = {'past': stamp - self.r.uniform(5, 500), 'zero': 0.0,
                     'future': stamp + self.r.uniform(5, 500)}[kind]
        msg.header.stamp = sec_to_stamp(stamp)
        msg.audio.data = data
        if kind in ('valid', 'past', 'future', 'zero'):
            self.audio_clock += frames / 16000
            self.expect('fz_audio', 'chunks')
            self.odd_stamp = kind != 'valid'
            if self.odd_stamp:
                # The odd stamp breaks the stream one way (back: a clock jump; ahead by more
                # than a second: a pause), the next good chunk breaks it back the other way.
                self.expect('fz_audio', 'clock_jumps')
                self.expect('fz_audio', 'pauses')
        else:
            self.expect('fz_audio', 'chunks')
            self.expect('fz_audio', 'rejected')
            self.expect('fz_audio', f'rejected_{kind}')
        return msg, kind

    def raw_chunk(self):
        """Return a headerless AudioData, or with one defect."""
        kind = self.r.choices(['valid', 'odd_byte_count', 'empty'], [80, 12, 8])[0]
        data = self.np.integers(-3000, 3000, 512, np.int16).astype('<i2').tobytes()
        data = {'valid': data, 'odd_byte_count': data[:self.r.choice([1, 777])],
                'empty': b''}[kind]
        self.expect('fz_raw', 'chunks')
        if kind != 'valid':
            self.expect('fz_raw', 'rejected')
            self.expect('fz_raw', f'rejected_{kind}')
        return AudioData(data=data), kind

    # ------------------------------------------------------------------ images
    def image(self):
        """Return a small Image with one defect in its geometry or encoding, or valid."""
        h, w = 24, 32
        kind = self.r.choices(['valid', 'unknown_encoding', 'empty', 'odd_width', 'odd_height',
                               'step_too_small', 'truncated', 'too_large'],
                              [30, 10, 10, 10, 8, 12, 12, 8])[0]
        enc, step, data = 'rgb8', w * 3, self.np.integers(0, 256, h * w * 3, np.uint8)
        msg = Image(height=h, width=w, encoding=enc, step=step)
        if kind == 'unknown_encoding':
            msg.encoding = self.r.choice(['32FC1', 'h264', '', 'RGB', 'bayer_xyz8', '8UC3'])
        elif kind == 'empty':
            msg.height = 0 if self.r.random() < 0.5 else h
            msg.width = 0 if msg.height else w
        elif kind == 'odd_width':
            msg.encoding, msg.width, msg.step = self.r.choice(['yuv422_yuy2', 'uyvy']), 31, 62
        elif kind == 'odd_height':
            msg.encoding, msg.height, msg.step = self.r.choice(['nv12', 'nv21']), 23, w
        elif kind == 'step_too_small':
            msg.step = self.r.randint(0, w * 3 - 1)
        elif kind == 'truncated':
            data = data[:self.r.randint(0, h * step - 1)]
        elif kind == 'too_large':  # declared, not carried: refused before any allocation
            msg.height, msg.width = self.r.choice([(100_000, 100_000), (60_000, 40_000),
                                                   (2**31 - 1, 1)])
            msg.step = msg.width * 3
        msg.data = data.tobytes()
        msg.header.stamp = sec_to_stamp(time.time())
        self.expect('fz_vision', 'received')
        if kind != 'valid':
            self.expect('fz_vision', 'rejected')
            self.expect('fz_vision', f'rejected_{kind}')
        return msg, kind

    def compressed(self):
        """Return a CompressedImage: valid png, or empty, garbage, depth or a bomb."""
        kind = self.r.choices(['valid', 'empty', 'garbage', 'depth', 'bomb'],
                              [40, 15, 20, 10, 15])[0]
        fmt, data = 'png', self.small_png
        if kind == 'empty':
            data = b''
        elif kind == 'garbage':
            data = self.np.integers(0, 256, self.r.randint(1, 3000), np.uint8).tobytes()
        elif kind == 'depth':
            fmt = '16UC1; compressedDepth'
        elif kind == 'bomb':
            # A 2x2 PNG whose (checksummed) header claims 100000 x 100000 pixels.
            data = bytearray(self.bomb)
            data[16:24] = (100000).to_bytes(4, 'big') * 2
            data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, 'big')
            data = bytes(data)
        msg = CompressedImage(format=fmt, data=data)
        msg.header.stamp = sec_to_stamp(time.time())
        self.expect('fz_vision_c', 'received')
        if kind != 'valid':
            reason = {'empty': 'bad_compressed', 'garbage': 'bad_compressed',
                      'depth': 'bad_compressed', 'bomb': 'too_large'}[kind]
            self.expect('fz_vision_c', 'rejected')
            self.expect('fz_vision_c', f'rejected_{reason}')
        return msg, kind

    # ------------------------------------------------------------------ embeddings
    def embedding(self, modality):
        """Return an Embedding for `modality`'s topic: valid or with exactly one defect."""
        st = self.emb[modality]
        kinds = ['valid', 'non_finite', 'empty', 'length_mismatch', 'wrong_dimension',
                 'too_large', 'foreign_modality', 'future_stamp', 'late', 'far_back', 'zero',
                 'duplicate_seq', 'wrapped']
        weights = [50, 6, 4, 5, 5, 1, 5, 4, 4, 3, 3, 5, 1]
        kind = self.r.choices(kinds, weights)[0]
        if kind in ('far_back', 'zero') and st['far_back'] >= 1:
            kind = 'valid'  # never REWIND_CONFIRM far-back stamps in a row: that is a rewind
        if kind == 'wrapped' and st['seq'] in (0, 1):
            kind = 'valid'
        if kind in ('late', 'far_back', 'zero', 'duplicate_seq') and not st['seq']:
            kind = 'valid'  # nothing accepted yet to be late against or to repeat
        now = time.time()
        stamp = max(now - 0.01, st['stamp'] + 1e-4)
        seq = st['seq'] + 1
        p = self.r.random()
        if modality == 'audio':
            labels, scores, data = ['speech'], [p], [p]
        else:
            labels, scores = ['cat', 'dog'], [p, 1 - p]
            data = self.np.standard_normal(DIMS['vision']).astype(np.float32)
        name = modality
        if kind == 'non_finite':
            bad = self.r.choice([math.nan, math.inf, -math.inf])
            if self.r.random() < 0.5:
                scores = [bad] + list(scores[1:])
            else:
                data = np.array(data, np.float32)
                data[self.r.randrange(len(data))] = bad
        elif kind == 'empty':
            labels, scores, data = [], [], []
        elif kind == 'length_mismatch':
            labels = labels + ['extra']
        elif kind == 'wrong_dimension':
            data = [0.5] * self.r.choice([2, 3, 1279, 1281, 100])
        elif kind == 'too_large':
            data = np.zeros(70000 + self.r.randint(0, 10), np.float32)
        elif kind == 'foreign_modality':
            name = self.r.choice(['face', 'lidar', 'vision' if modality == 'audio' else 'audio',
                                  'AUDIO', 'x' * 300])
        elif kind == 'future_stamp':
            stamp = now + self.r.uniform(10, 1e6)
        elif kind == 'late':
            stamp = st['stamp'] - self.r.uniform(1e-3, 0.9)
        elif kind == 'far_back':
            stamp = st['stamp'] - self.r.uniform(5, 1e5)
        elif kind == 'zero':
            stamp = 0.0
        elif kind == 'duplicate_seq':
            seq = st['seq']
        elif kind == 'wrapped':
            seq = self.r.choice([0, 1])  # an encoder restarted: lower seq, newer stamp: valid
        msg = Embedding(modality=name, seq=seq, labels=labels,
                        scores=[float(s) for s in scores],
                        data=np.asarray(data, np.float32).tolist())
        msg.header.stamp = sec_to_stamp(stamp)
        node_key = modality
        if kind in ('valid', 'wrapped'):
            st.update(seq=seq, stamp=stamp, far_back=0)
            self.expect('fusion', f'{node_key}.received')
            self.valid['fusion'] += 1
            if modality == 'audio':
                self.speech.append((seq, p))
            return msg, 'valid'
        reason, counter = {
            'late': ('out_of_order', 'dropped'), 'far_back': ('out_of_order', 'dropped'),
            'zero': ('out_of_order', 'dropped'), 'duplicate_seq': ('duplicate_seq', 'dropped'),
        }.get(kind, (kind, 'rejected'))
        # Far-back stamps in a row could confirm a rewind; only inputs that reach the
        # ordering checks (not the ones rejected before them) break such a row.
        if kind in ('far_back', 'zero'):
            st['far_back'] += 1
        elif kind in ('late', 'duplicate_seq'):
            st['far_back'] = 0
        self.expect('fusion', f'{node_key}.{counter}')
        self.expect('fusion', f'{node_key}.{reason}')
        return msg, kind


def test_ten_thousand_fuzzed_messages_are_counted_exactly(ros, graph):
    """No node dies; every reject is counted under its reason; valid traffic still fuses."""
    fz, pubs, out = Fuzzer(SEED), graph['pubs'], graph['out']
    # AudioInfo first: each kind of bad AudioInfo is counted; a valid one restores the format.
    for key, node in (('audio_info', 'fz_audio'), ('raw_info', 'fz_raw')):
        for info, reason in ((AudioInfo(sample_rate=0, channels=1), 'bad_audio_info'),
                             (AudioInfo(sample_rate=16000, channels=0), 'bad_audio_info'),
                             (AudioInfo(sample_rate=10**7, channels=1), 'bad_audio_info'),
                             (AudioInfo(sample_rate=16000, channels=1,
                                        sample_format='S24LE'), 'unknown_sample_format')):
            info.coding_format = 'wave'
            pubs[key].publish(info)
            fz.expect(node, 'rejected')
            fz.expect(node, f'rejected_{reason}')
        pubs[key].publish(AudioInfo(sample_rate=16000, channels=1, sample_format='S16LE',
                                    coding_format='wave'))
    for node in ('fz_audio', 'fz_raw'):
        assert ros.wait_for(lambda: int(_diag(graph['diag'], node).get(
            'rejected_unknown_sample_format', 0)) == 1, 10.0), _diag(graph['diag'], node)
    plan = (['emb_audio'] * 32 + ['emb_vision'] * 12 + ['audio'] * 30 + ['raw_audio'] * 8 +
            ['image'] * 12 + ['compressed'] * 6)
    sent = Counter()
    outputs_before = len(out)
    for k in range(MESSAGES):
        topic = fz.r.choice(plan)
        if topic == 'emb_audio':
            msg, kind = fz.embedding('audio')
        elif topic == 'emb_vision':
            msg, kind = fz.embedding('vision')
        elif topic == 'audio':
            msg, kind = fz.audio_chunk()
        elif topic == 'raw_audio':
            msg, kind = fz.raw_chunk()
        elif topic == 'image':
            msg, kind = fz.image()
        else:
            msg, kind = fz.compressed()
        pubs[topic].publish(msg)
        sent[(topic, kind)] += 1
        if k % 200 == 199:
            time.sleep(0.05)  # let the 2-core machine breathe; keep_all bounds nothing
    print(f'fuzz seed {SEED}: {MESSAGES} messages: ' +
          ', '.join(f'{t}/{k} {n}' for (t, k), n in sorted(sent.items())))
    assert sum(sent.values()) >= MESSAGES

    def counts_match():
        for (node, key), n in fz.expected.items():
            if int(_diag(graph['diag'], node).get(key, 0)) != n:
                return False
        return len(out) - outputs_before >= fz.valid['fusion']
    ros.wait_for(counts_match, 60.0, period=0.5)
    mismatches = {f'{node}.{key}': (n, _diag(graph['diag'], node).get(key, '0'))
                  for (node, key), n in fz.expected.items()
                  if int(_diag(graph['diag'], node).get(key, 0)) != n}
    assert not mismatches, f'expected vs counted: {mismatches}'
    assert all(code is None for code in graph['group'].alive().values()), \
        graph['group'].alive()
    # No reason the fuzzer did not cause: the per-reason counters sum to the totals.
    for node in ('fz_audio', 'fz_raw', 'fz_vision', 'fz_vision_c'):
        d = _diag(graph['diag'], node)
        reasons = sum(int(v) for k, v in d.items() if k.startswith('rejected_'))
        assert reasons == int(d.get('rejected', 0)), d
    fused = _diag(graph['diag'], 'fusion')
    for m in DIMS:
        reasons = sum(int(fused.get(f'{m}.{r}', 0)) for r in (
            'non_finite', 'empty', 'length_mismatch', 'wrong_dimension', 'too_large',
            'foreign_modality', 'future_stamp'))
        assert reasons == int(fused[f'{m}.rejected']), fused
        # Keep-all queues lose nothing: no gap in the encoders' seq may count as lost.
        assert int(fused.get(f'{m}.lost', 0)) == 0, fused
    assert int(fused.get('<unknown>.rejected', 0)) == 0
    # Valid traffic interleaved with the fuzz fused as it should: one output per valid
    # Embedding, and every audio-triggered decision follows its speech score (vision gives
    # speaking_to_robot no cue here).
    new = [m for _, m in out[outputs_before:]]
    assert len(new) == fz.valid['fusion']
    audio = [m for m in new if m.trigger_modality == 'audio']
    assert [m.trigger_seq for m in audio] == [seq for seq, _ in fz.speech]
    for m, (_, p) in zip(audio, fz.speech):
        audio_state = next(s for s in m.modalities if s.modality == 'audio')
        # Under heavy load an output can come later than audio's max_age: then it is stale
        # and rightly decides nothing.
        if abs(p - 0.5) > 1e-3 and not audio_state.stale:
            assert m.decision == ('speaking' if p > 0.5 else 'not_speaking'), (p, m)
    # The valid camera frames were encoded (or superseded) and the valid audio framed.
    assert int(_diag(graph['diag'], 'fz_vision').get('encoded', 0)) > 0
    assert int(_diag(graph['diag'], 'fz_audio').get('embeddings', 0)) > 0
