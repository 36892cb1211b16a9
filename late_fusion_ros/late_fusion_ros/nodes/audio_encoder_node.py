# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Audio encoder node: microphone PCM (audio_common_msgs) in, one Embedding per hop out."""

from collections import Counter, deque
import time
from typing import Optional

from diagnostic_msgs.msg import DiagnosticStatus
from late_fusion_msgs.msg import Embedding

from ..core.audio import Frame
from ..core.encoders import make_audio_encoder
from ..shared.audio_input import AudioInput
from ..shared.diagnostics import processing_values
from ..shared.lifecycle import ManagedNode, spin_node
from ..shared.messages import embedding_msg, now_sec, sec_to_stamp
from ..shared.model_thread import ModelThread
from ..shared.parameters import declare, declare_model_parameters
from ..shared.qos import EMBEDDING_QOS


class AudioEncoderNode(ManagedNode):
    """
    Frame a PCM stream into windows and publish the encoder's output for every hop.

    A managed node (shared.lifecycle): configure loads and warms the model, activate
    subscribes the microphone, deactivate unsubscribes, cleanup frees the model. The
    microphone side (subscriptions adapted to the driver's QoS, decoding, channel,
    resampling, stamping, framing) is one core AudioStream behind AudioInput; this node
    only hands its windows to the model thread, so the executor stays free for parameters,
    transitions and shutdown. If the model falls behind, the oldest pending windows are
    skipped and counted instead of letting latency grow without bound.
    """

    def __init__(self, **node_options):
        """Declare every parameter; `node_options` go to rclpy's Node."""
        super().__init__('audio_encoder', **node_options)
        d = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
        self._model = declare_model_parameters(
            self, 'audio', 'silero_vad', 'silero_vad, resemblyzer, torchscript_audio, onnx_audio',
            'torchscript_audio/onnx_audio', 'the YAML spec')
        self._max_pending = d('max_pending_windows', 16, 'Windows allowed to wait for the '
                              'model; older ones are skipped and counted.', min_value=1,
                              max_value=10000, read_only=True)
        self._input = AudioInput(self, self._on_frames, on_restart=self._on_restart)
        self._encoder = None
        self._worker = None
        self._pub = None

    # ------------------------------------------------------------------ lifecycle
    def configure_node(self):
        """Load and warm up the model, build the stream, create the publisher."""
        self._encoder = enc = self._model.make(make_audio_encoder)
        enc.warmup()
        self._input.configure(enc.window, enc.hop, enc.sample_rate)
        self._skip_reset = False  # a skipped window is a gap for a streaming model
        self._counts = Counter()
        self._seq = 0
        self._processing = deque(maxlen=200)  # seconds per window, recent windows
        self._pub = self.lifecycle_publisher(Embedding, 'embedding', EMBEDDING_QOS)
        # Windows wait here for the model; when it falls behind the oldest are skipped.
        self._worker = ModelThread('audio_encoder', self._encode, self._max_pending)
        self._worker.start()
        self.add_stage('input', self._input.diagnostics)
        self.add_stage('encoder', self._encoder_diagnostics)
        self.add_stage('output', self._output_diagnostics)
        self.get_logger().info(
            f"configured: {enc.encoder_id} on '{self._input.audio.topic}', window "
            f'{enc.window} hop {enc.hop} at {enc.sample_rate} Hz')

    def activate_node(self):
        """Subscribe the microphone."""
        self._input.start()

    def deactivate_node(self):
        """Unsubscribe and drop the windows waiting for the model."""
        self._input.stop()
        if self._worker is not None:
            self._worker.clear()
            self._skip_reset = True  # the stream resumes with a gap

    def cleanup_node(self):
        """Stop the model thread and free the model."""
        if self._worker is not None:
            self._worker.stop(timeout=2.0)
        self._worker = self._encoder = self._pub = None

    def _on_restart(self):
        if self._worker is not None:
            self._worker.clear()

    def _on_frames(self, frames, frame_id, generation):
        for frame in frames:
            if self._worker.put((frame, frame_id, generation)):
                self._counts['skipped_windows'] += 1
                self._skip_reset = True

    # ------------------------------------------------------------------ model side
    @property
    def audio_input(self) -> AudioInput:
        """Return the microphone input (topics, stream, per-message steps)."""
        return self._input

    @property
    def output_topic(self) -> str:
        """Return the resolved embedding topic."""
        return self._pub.topic_name

    @property
    def encoder(self):
        """Return the core AudioEncoder this node runs."""
        return self._encoder

    def encode_frame(self, frame: Frame, frame_id: str,
                     measure: bool = True) -> Optional[Embedding]:
        """
        Encode one window into an Embedding, or None when the model failed (counted).

        Windows must come in stream order: a streaming model's context is reset at a
        restart. The worker encodes through here, and so does fusion_offline, with
        `measure` False (processing time 0: an offline run must not depend on wall time).
        """
        enc = self._encoder
        if frame.restart or self._skip_reset:
            self._skip_reset = False
            enc.reset()
        t0 = time.perf_counter()
        try:
            out = enc.encode(frame.samples)
        except Exception as err:  # noqa: BLE001 - a model failure must not stop the node
            self._input.reject('encoder_error', f'{type(err).__name__}: {err}')
            return None
        processing = time.perf_counter() - t0 if measure else 0.0
        msg = embedding_msg(out, self._model.modality, enc.encoder_id, self._seq,
                            sec_to_stamp(frame.stamp), frame_id,
                            enc.window / enc.sample_rate, processing)
        self._seq += 1
        self._counts['embeddings'] += 1
        return msg

    def _encode(self, item):
        """Model thread: encode one window and publish its Embedding."""
        frame, frame_id, generation = item
        if generation != self._input.stream.generation:
            return  # taken just before a format change: its stream is gone
        pub, worker = self._pub, self._worker  # cleanup may begin during the model run
        msg = self.encode_frame(frame, frame_id)
        if msg is None:
            return
        self._processing.append(msg.processing_seconds)
        if worker.stopping or not pub.is_activated:  # inactive: nothing is published
            self._seq = msg.seq  # and no seq used up: the fusion node counts gaps as losses
            return
        msg.capture_to_publish_latency = now_sec(self) - frame.stamp
        pub.publish(msg)
        self._counts['published'] += 1

    def _encoder_diagnostics(self):
        values = {'encoder': self._encoder.encoder_id,
                  'embeddings': self._counts.get('embeddings', 0),
                  'skipped_windows': self._counts.get('skipped_windows', 0),
                  'pending': len(self._worker),
                  'model_errors': self._input.counts.get('rejected_encoder_error', 0)}
        values.update(processing_values(self._processing))
        if values['model_errors']:
            return DiagnosticStatus.ERROR, 'the model failed', values
        if values['skipped_windows']:
            return DiagnosticStatus.WARN, 'model cannot keep up: windows skipped', values
        return DiagnosticStatus.OK, 'ok', values

    def _output_diagnostics(self):
        return DiagnosticStatus.OK, 'ok', {
            'published': self._counts.get('published', 0), 'topic': self.output_topic,
            'subscribers': self._pub.get_subscription_count()}


def main(args=None):
    """Run the audio encoder node."""
    spin_node(AudioEncoderNode, args)


if __name__ == '__main__':
    main()
