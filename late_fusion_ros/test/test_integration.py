# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
End to end over real DDS: the three node executables as separate processes, real models.

The test process plays the microphone and camera drivers: espeak-ng speech and silence as
audio_common_msgs/AudioDataStamped in 32 ms chunks in real time, with AudioInfo, and
scikit-image photos as sensor_msgs/Image at 10 fps. It records every FusionOutput and every
vision Embedding, then stops the nodes with SIGINT as Ctrl-C would.
"""

import os
import time

from audio_common_msgs.msg import AudioDataStamped, AudioInfo
from conftest import RosHarness
from late_fusion_msgs.msg import Embedding, FusionOutput
from late_fusion_ros.bringup import node_specs
from late_fusion_ros.core.media import photo, scenario
from late_fusion_ros.launcher import ProcessGroup
import numpy as np
import pytest
import rclpy
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import Image

RATE, CHUNK = 16000, 512
PATTERN = 'silence speech silence speech silence'
PHOTOS = ['chelsea', 'coffee', 'astronaut']
FPS = 10.0


class Driver(RosHarness):
    """The test's own node: publishes audio and images, records outputs with arrival times."""

    def __init__(self, audio: np.ndarray):
        super().__init__('integration_driver')
        self.audio = audio
        self.audio_pub = self.node.create_publisher(AudioDataStamped, 'test/mic/audio', 10)
        self.info_pub = self.node.create_publisher(AudioInfo, 'test/mic/audio_info', 10)
        self.image_pub = self.node.create_publisher(
            Image, 'test/camera/image_raw',
            QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE))
        self.outputs = self.collect(FusionOutput, 'fusion_output')    # (receive time, msg)
        self.vision = self.collect(Embedding, 'vision/embedding')     # (receive time, msg)
        self.chunks_sent = 0
        self.t0 = None

    def wait_ready(self, timeout: float) -> bool:
        """Wait until both encoders (which subscribe after warm-up) and the fusion node match."""
        return self.wait_for(lambda: bool(self.audio_pub.get_subscription_count() and
                                          self.image_pub.get_subscription_count() and
                                          self.node.count_publishers('fusion_output')),
                             timeout, period=0.2)

    def play(self):
        """Publish the whole scenario in real time: audio chunks and camera frames."""
        photos = [photo(n) for n in PHOTOS]
        self.info_pub.publish(AudioInfo(channels=1, sample_rate=RATE, sample_format='S16LE',
                                        bitrate=RATE * 16, coding_format='wave'))
        self.t0 = time.time()
        next_image, pos, k = self.t0, 0, 0
        while pos + CHUNK <= len(self.audio):
            now = time.time()
            if now >= next_image:
                rgb = photos[k % len(photos)]
                msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding='rgb8',
                            step=rgb.shape[1] * 3, data=rgb.tobytes())
                msg.header.stamp = self.node.get_clock().now().to_msg()
                msg.header.frame_id = 'camera'
                self.image_pub.publish(msg)
                next_image += 1.0 / FPS
                k += 1
            due = int((now - self.t0) * RATE)
            while pos + CHUNK <= min(due, len(self.audio)):
                msg = AudioDataStamped()
                t = self.t0 + pos / RATE
                msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int((t % 1) * 1e9)
                msg.header.frame_id = 'microphone'
                msg.audio.data = self.audio[pos:pos + CHUNK].astype('<i2').tobytes()
                self.audio_pub.publish(msg)
                pos += CHUNK
                self.chunks_sent += 1
            if pos % (RATE * 2) < CHUNK:
                self.info_pub.publish(AudioInfo(channels=1, sample_rate=RATE,
                                                sample_format='S16LE', bitrate=RATE * 16,
                                                coding_format='wave'))
            time.sleep(0.004)
        time.sleep(1.5)  # let the last embeddings through


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """Start the three nodes, play the scenario once, stop the nodes; return what was seen."""
    audio, segments = scenario(PATTERN)
    log_dir = str(tmp_path_factory.mktemp('node_logs'))
    specs = node_specs(audio_topic='test/mic/audio', audio_info_topic='test/mic/audio_info',
                       image_topic='test/camera/image_raw')
    # Large images between processes need a reliable subscription (see shared perf notes).
    specs[1].parameters['qos_overrides./test/camera/image_raw.subscription.reliability'] = \
        'reliable'
    group = ProcessGroup(log_dir=log_dir)
    rclpy.init()
    driver = Driver(audio)
    try:
        for spec in specs:
            group.start(spec)
        assert driver.wait_ready(120.0), f'nodes did not come up; logs in {log_dir}'
        time.sleep(1.0)  # let the nodes' side of discovery see our publishers too
        assert all(code is None for code in group.alive().values()), group.alive()
        driver.play()
    finally:
        codes = group.stop()
        driver.close()
        rclpy.try_shutdown()
    logs = {name: open(os.path.join(log_dir, f'{name}.log')).read() for name in codes}
    return {'driver': driver, 'segments': segments, 'codes': codes, 'logs': logs}


def _by_trigger(run, modality):
    return [(t, m) for t, m in run['driver'].outputs if m.trigger_modality == modality]


@pytest.mark.integration
def test_outputs_triggered_by_both_modalities(run):
    """Every audio hop and many camera frames each produce a fused output."""
    audio = _by_trigger(run, 'audio')
    vision = _by_trigger(run, 'vision')
    sent = run['driver'].chunks_sent
    assert len(audio) >= 0.95 * sent, f'{len(audio)} audio-triggered outputs for {sent} chunks'
    assert len(vision) >= 5, f'only {len(vision)} vision-triggered outputs'
    last = audio[-1][1]
    names = [m.modality for m in last.modalities]
    assert names == ['audio', 'vision']
    assert all(m.present for m in last.modalities)
    for _, m in audio[-20:]:
        assert m.valid and m.decision
        assert 0.0 <= m.confidence <= 1.0
        assert 0.0 <= m.capture_to_output_latency < 5.0
        assert 0.0 <= m.arrival_to_publish_latency < 1.0


@pytest.mark.integration
def test_audio_keeps_flowing_while_vision_encoder_is_busy(run):
    """Audio-triggered outputs arrive during every EfficientNet run, at audio rate."""
    busy = []
    for t, emb in run['driver'].vision:
        p = emb.processing_time.sec + emb.processing_time.nanosec * 1e-9
        if p > 0.02:
            busy.append((t - p, t))
    busy_total = sum(b - a for a, b in busy)
    assert busy_total > 0.5, f'vision encoder was busy only {busy_total:.2f} s'
    inside = sum(1 for t, _ in _by_trigger(run, 'audio') if any(a <= t <= b for a, b in busy))
    expected = busy_total / (CHUNK / RATE)
    assert inside >= 0.5 * expected, (
        f'{inside} audio outputs while vision busy {busy_total:.2f} s (~{expected:.0f} due)')


@pytest.mark.integration
def test_speech_raises_speaking_score_and_silence_lowers_it(run):
    """The fused 'speaking' score follows the real speech in the audio."""
    t0 = run['driver'].t0
    score = {'speech': [], 'silence': []}
    for _, m in _by_trigger(run, 'audio'):
        t = m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 - t0
        for seg in run['segments']:
            if seg.start + 0.3 <= t <= seg.end - 0.3 and seg.kind in score:
                score[seg.kind].append(dict(zip(m.labels, m.scores)).get('speaking', 0.0))
    speech, silence = np.mean(score['speech']), np.mean(score['silence'])
    assert len(score['speech']) > 20 and len(score['silence']) > 20
    assert speech > 0.5, f'mean speaking score during speech {speech:.2f}'
    assert silence < 0.2, f'mean speaking score during silence {silence:.2f}'
    assert speech - silence > 0.4


@pytest.mark.integration
def test_clean_shutdown_on_sigint(run):
    """Ctrl-C (SIGINT) ends every node with exit code 0 and no traceback."""
    assert all(code == 0 for code in run['codes'].values()), run['codes']
    for name, log in run['logs'].items():
        assert 'Traceback' not in log, f'{name}:\n{log[-3000:]}'
