# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Audio encoder node: microphone PCM (audio_common_msgs) in, one Embedding per hop out."""

from collections import Counter
import threading
import time

from diagnostic_msgs.msg import DiagnosticStatus
from late_fusion_msgs.msg import Embedding
from rclpy.node import Node

from .audio_input import AudioInput
from .core.encoders import make_audio_encoder
from .core.handover import Mailbox
from .ros_common import (declare, Diagnostics, embedding_msg, EMBEDDING_QOS, sec_to_stamp,
                         spin_node)


class AudioEncoderNode(Node):
    """
    Frame a PCM stream into windows and publish the encoder's output for every hop.

    The microphone side (subscriptions adapted to the driver's QoS, decoding, channel,
    resampling, stamping, framing) is one core AudioStream behind AudioInput; this node
    only hands its windows to a worker thread that runs the model, so the executor stays
    free for parameters and shutdown. If the model falls behind, the oldest pending windows
    are skipped and counted instead of letting latency grow without bound.
    """

    def __init__(self):
        super().__init__('audio_encoder')
        d = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
        self._modality = d('modality', 'audio', 'Modality name put in each Embedding.',
                           read_only=True)
        encoder_name = d('encoder', 'silero_vad', 'Audio model: silero_vad, resemblyzer, '
                         'torchscript_audio, onnx_audio, or plugin:<entry point name>.',
                         read_only=True)
        model_path = d('model_path', '', 'torchscript_audio/onnx_audio: the model file.',
                       read_only=True)
        spec_path = d('spec_path', '', 'torchscript_audio/onnx_audio: the YAML spec.',
                      read_only=True)
        device = d('device', 'cpu', 'Torch device: cpu, cuda or cuda:N (falls back to cpu).',
                   read_only=True)
        threads = d('num_threads', 1, 'Torch intra-op threads for this encoder.',
                    read_only=True, min_value=1, max_value=64)
        max_pending = d('max_pending_windows', 16, 'Windows allowed to wait for the model; '
                        'older ones are skipped and counted.', min_value=1, max_value=10000,
                        read_only=True)

        import torch
        torch.set_num_threads(threads)
        files = {k: v for k, v in (('model_path', model_path), ('spec_path', spec_path)) if v}
        self._encoder = make_audio_encoder(encoder_name, device=device, **files)
        self._encoder.warmup()
        # Windows wait here for the model; when it falls behind the oldest are skipped.
        self._pending = Mailbox(max_pending)
        self._skip_reset = False  # a skipped window is a gap for a streaming model
        self._counts = Counter()
        self._seq = 0

        self._pub = self.create_publisher(Embedding, 'embedding', EMBEDDING_QOS)
        enc = self._encoder
        self._input = AudioInput(self, enc.window, enc.hop, enc.sample_rate, self._on_frames,
                                 on_restart=self._pending.clear)
        self._diag = Diagnostics(self)
        self._diag.add('audio encoder', self._diagnostics)
        self._worker = threading.Thread(target=self._work, name='audio_encoder', daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: {enc.encoder_id} on '{self._input.audio.topic}', window {enc.window} hop "
            f'{enc.hop} at {enc.sample_rate} Hz')

    def _on_frames(self, frames, frame_id, generation):
        for frame in frames:
            if self._pending.put((frame, frame_id, generation)):
                self._counts['skipped_windows'] += 1
                self._skip_reset = True

    # ------------------------------------------------------------------ model side
    def _work(self):
        enc = self._encoder
        while (item := self._pending.get()) is not None:
            frame, frame_id, generation = item
            if generation != self._input.stream.generation:
                continue  # taken just before a format change: its stream is gone
            if frame.restart or self._skip_reset:
                self._skip_reset = False
                enc.reset()
            t0 = time.perf_counter()
            try:
                out = enc.encode(frame.samples)
            except Exception as err:  # noqa: BLE001 - a model failure must not stop the node
                self._input.reject('encoder_error', f'{type(err).__name__}: {err}')
                continue
            msg = embedding_msg(out, self._modality, enc.encoder_id, self._seq,
                                sec_to_stamp(frame.stamp), frame_id,
                                enc.window / enc.sample_rate, time.perf_counter() - t0)
            self._seq += 1
            self._counts['embeddings'] += 1
            if not self._pending.closed:  # close() may have begun during the model run
                self._pub.publish(msg)

    def _diagnostics(self):
        level, message, values = self._input.diagnostics()
        values.update(self._counts)
        if level == DiagnosticStatus.OK and self._counts.get('skipped_windows', 0):
            level, message = DiagnosticStatus.WARN, 'model cannot keep up: windows skipped'
        values.update(encoder=self._encoder.encoder_id, pending=len(self._pending))
        return level, message, values

    def close(self):
        """Stop the worker thread (called before destroy_node)."""
        self._pending.close()
        self._worker.join(timeout=2.0)


def main(args=None):
    """Run the audio encoder node."""
    spin_node(AudioEncoderNode, args)


if __name__ == '__main__':
    main()
