# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
End to end over real DDS: the three node executables as separate processes, real models.

The test process plays the microphone and camera drivers as robots' drivers behave: a
48 kHz stereo microphone publishing audio_common_msgs/AudioDataStamped in 1024-frame chunks
(each when its last sample is captured, stamped on the sample clock) with a latched
AudioInfo, and a 640x480 rgb8 camera publishing reliable at 15 fps. Every node runs with
the shipped defaults: nothing is overridden. The test records every FusionOutput and every
embedding, then stops the nodes with SIGINT as Ctrl-C would.
"""

import os
import time

from audio_common_msgs.msg import AudioDataStamped, AudioInfo
from conftest import diagnostics, RosHarness
from diagnostic_msgs.msg import DiagnosticArray
from late_fusion_msgs.msg import Embedding, FusionOutput
from late_fusion_ros.bringup import node_specs
from late_fusion_ros.bringup.launcher import ProcessGroup
from late_fusion_ros.core.media import camera_frame, scenario, stereo
from late_fusion_ros.shared.messages import sec_to_stamp
import numpy as np
import pytest
import rclpy
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import Image

RATE, CHANNELS, CHUNK = 48000, 2, 1024
PATTERN = 'silence speech silence speech silence'
PHOTOS = ['chelsea', 'coffee', 'astronaut']
FPS = 15.0
WINDOW, MODEL_RATE = 512, 16000


class Driver(RosHarness):
    """The test's own node: publishes audio and images, records outputs with arrival times."""

    def __init__(self, audio: np.ndarray):
        super().__init__('integration_driver')
        self.audio = stereo(audio)
        self.audio_pub = self.node.create_publisher(AudioDataStamped, 'test/mic/audio', 10)
        self.info_pub = self.node.create_publisher(
            AudioInfo, 'test/mic/audio_info',
            QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                       durability=QoSDurabilityPolicy.TRANSIENT_LOCAL))
        # Latched at start-up, as audio drivers do.
        self.info_pub.publish(AudioInfo(channels=CHANNELS, sample_rate=RATE,
                                        sample_format='S16LE', bitrate=RATE * 16 * CHANNELS,
                                        coding_format='wave'))
        self.image_pub = self.node.create_publisher(
            Image, 'test/camera/image_raw',
            QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE))
        self.outputs = self.collect(FusionOutput, 'fusion_output')    # (receive time, msg)
        self.vision = self.collect(Embedding, 'vision/embedding')     # (receive time, msg)
        self.audio_embeddings = self.collect(Embedding, 'audio/embedding')
        self.diag = self.collect(DiagnosticArray, '/diagnostics')
        self.chunk_published = []  # wall time each chunk left the "microphone"
        self.frames_sent = 0
        self.t0 = None

    def wait_ready(self, timeout: float) -> bool:
        """Wait until both encoders (which subscribe after warm-up) and the fusion node match."""
        return self.wait_for(lambda: bool(self.audio_pub.get_subscription_count() and
                                          self.image_pub.get_subscription_count() and
                                          self.node.count_publishers('fusion_output')),
                             timeout, period=0.2)

    def play(self):
        """Publish the whole scenario on schedule: audio chunks and camera frames."""
        frames = []
        for name in PHOTOS:
            rgb = camera_frame(name, 640, 480)
            frames.append(Image(height=480, width=640, encoding='rgb8', step=640 * 3,
                                data=rgb.tobytes()))
        start, self.t0 = time.monotonic(), time.time()
        k = n_frames = 0
        while (k + 1) * CHUNK <= len(self.audio):
            next_chunk = start + (k + 1) * CHUNK / RATE  # its last sample is captured then
            next_frame = start + n_frames / FPS
            time.sleep(max(0.0, min(next_chunk, next_frame) - time.monotonic()))
            if time.monotonic() >= next_frame:
                msg = frames[(n_frames // int(FPS)) % len(frames)]
                msg.header.stamp = sec_to_stamp(time.time())
                msg.header.frame_id = 'camera_optical_frame'
                self.image_pub.publish(msg)
                n_frames += 1
            if time.monotonic() >= next_chunk:
                msg = AudioDataStamped()
                msg.header.stamp = sec_to_stamp(self.t0 + k * CHUNK / RATE)
                msg.header.frame_id = 'microphone'
                msg.audio.data = self.audio[k * CHUNK:(k + 1) * CHUNK].astype('<i2').tobytes()
                self.audio_pub.publish(msg)
                self.chunk_published.append(time.time())
                k += 1
        self.frames_sent = n_frames
        # Let the last embeddings and a fresh diagnostics message through.
        last = self.diag[-1][0] if self.diag else 0.0
        self.wait_for(lambda: self.diag and self.diag[-1][0] > last + 1.0, 5.0)


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """Start the three nodes, play the scenario once, stop the nodes; return what was seen."""
    audio, segments = scenario(PATTERN, rate=RATE)
    log_dir = str(tmp_path_factory.mktemp('node_logs'))
    specs = node_specs(audio_topic='test/mic/audio', audio_info_topic='test/mic/audio_info',
                       image_topic='test/camera/image_raw')
    group = ProcessGroup(log_dir=log_dir)
    rclpy.init()
    driver = Driver(audio)
    try:
        for spec in specs:
            group.start(spec)
        assert driver.wait_ready(120.0), f'nodes did not come up; logs in {log_dir}'
        # The nodes subscribe once they see our publishers, with the QoS these offer, and
        # say so in their diagnostics: then their side of discovery has seen us too.

        def adapted():
            d = _latest_diag(driver)
            return (d.get('audio_encoder', {}).get('qos', '').startswith('reliable') and
                    d['audio_encoder'].get('info_qos', '').startswith('reliable transient') and
                    d['audio_encoder'].get('sample_rate') == str(RATE) and
                    d.get('vision_encoder', {}).get('qos', '').startswith('reliable'))
        assert driver.wait_for(adapted, 30.0), _latest_diag(driver)
        assert all(code is None for code in group.alive().values()), group.alive()
        driver.play()
    finally:
        codes = group.stop()
        driver.close()
        rclpy.try_shutdown()
    logs = {name: open(os.path.join(log_dir, f'{name}.log')).read() for name in codes}
    return {'driver': driver, 'segments': segments, 'codes': codes, 'logs': logs}


def _latest_diag(driver) -> dict:
    """Return {node: {key: value}} from the newest diagnostics of each node."""
    names = ('audio_encoder', 'vision_encoder', 'fusion')
    return {n: diagnostics(driver.diag, n) for n in names}


def _by_trigger(run, modality):
    return [(t, m) for t, m in run['driver'].outputs if m.trigger_modality == modality]


@pytest.mark.integration
def test_outputs_triggered_by_both_modalities(run):
    """Every audio hop and many camera frames each produce a fused output."""
    audio = _by_trigger(run, 'audio')
    vision = _by_trigger(run, 'vision')
    windows = len(run['driver'].chunk_published) * CHUNK * MODEL_RATE // RATE // WINDOW
    assert len(audio) >= 0.98 * windows, f'{len(audio)} audio-triggered outputs, {windows} due'
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
        # Every model run (EfficientNet-Lite0 takes ~10-15 ms a frame on ONNX Runtime here).
        p = emb.processing_time.sec + emb.processing_time.nanosec * 1e-9
        if p > 0.0:
            busy.append((t - p, t))
    busy_total = sum(b - a for a, b in busy)
    assert busy_total > 0.5, f'vision encoder was busy only {busy_total:.2f} s'
    inside = sum(1 for t, _ in _by_trigger(run, 'audio') if any(a <= t <= b for a, b in busy))
    expected = busy_total / (WINDOW / MODEL_RATE)
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


@pytest.mark.integration
def test_every_camera_frame_reaches_the_vision_encoder_with_defaults(run):
    """A reliable 640x480 rgb8 camera: the node receives every frame (default QoS adapts)."""
    diag = _latest_diag(run['driver'])['vision_encoder']
    sent, received = run['driver'].frames_sent, int(diag['received'])
    # The best-effort default this replaced received a third of such frames.
    assert received >= 0.99 * sent, f'{received} of {sent} frames: {diag}'
    assert diag['qos'].startswith('reliable') and diag['resolution'] == '640x480'
    assert int(diag.get('lost', 0)) == 0


@pytest.mark.integration
def test_48k_stereo_microphone_adds_milliseconds_not_a_filter_delay(run):
    """Node-added latency at 48 kHz stereo: arrival of a window's last chunk -> embedding."""
    driver = run['driver']
    published, t0 = np.array(driver.chunk_published), driver.t0
    added = []
    for receipt, emb in driver.audio_embeddings:
        stamp = emb.header.stamp.sec + emb.header.stamp.nanosec * 1e-9
        k = int(np.floor((stamp + (WINDOW - 1) / MODEL_RATE - t0) * RATE / CHUNK + 1e-9))
        if 0 <= k < len(published):
            added.append(receipt - published[k])
    added = np.array(added)
    assert len(added) >= 0.98 * len(published) * CHUNK * MODEL_RATE // RATE // WINDOW
    # Measured on a quiet machine: p50 ~4 ms; soxr's HQ stream filter, the former default,
    # made it ~25 ms. Generous for a busy CI machine, still failing on that.
    assert np.median(added) < 0.012, f'node-added p50 {np.median(added) * 1e3:.1f} ms'
    diag = _latest_diag(driver)['audio_encoder']
    assert diag['sample_rate'] == '48000' and diag['channels'] == '2'
    assert int(diag['lost_samples']) == 0 and int(diag.get('skipped_windows', 0)) == 0
