# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Audio encoder node: microphone PCM (audio_common_msgs) in, one Embedding per hop out."""

from collections import Counter
import threading
import time

from audio_common_msgs.msg import AudioData, AudioDataStamped, AudioInfo
from diagnostic_msgs.msg import DiagnosticStatus
from late_fusion_msgs.msg import Embedding
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

from .core.audio import (AudioFramer, check_coding_format, decode_pcm, HeaderlessStamper,
                         StreamClock, StreamResampler, to_mono)
from .core.encoders import make_audio_encoder
from .core.errors import InputError
from .core.handover import Mailbox
from .ros_common import (AUDIO_QOS, declare, Diagnostics, embedding_msg, EMBEDDING_QOS,
                         incompatible_qos_hint, now_sec, qos_override, sec_to_stamp,
                         spin_node, stamp_to_sec, ThrottledLog)


class AudioEncoderNode(Node):
    """
    Frame a PCM stream into windows and publish the encoder's output for every hop.

    Subscribes `audio_stamped` (AudioDataStamped) or, with `stamped:=false`, the headerless
    `audio` (AudioData), plus `audio_info` (AudioInfo). Publishes `embedding`.
    The subscription callback only decodes and frames (cheap, never drops a sample); a
    worker thread runs the model, so the executor stays free for parameters and shutdown.
    If the model falls behind, the oldest pending windows are skipped and counted instead
    of letting latency grow without bound.
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
        stamped = d('stamped', True, 'Subscribe audio_stamped (AudioDataStamped); false: '
                    'headerless audio (AudioData), stamped from arrival time.', read_only=True)
        # The input format is the driver's fact: these are defaults until audio_info arrives.
        self._rate = d('sample_rate', 16000, 'Input sample rate until audio_info says '
                       'otherwise.', min_value=1000, max_value=384000, read_only=True)
        self._channels = d('channels', 1, 'Input channels until audio_info says otherwise.',
                           min_value=1, max_value=64, read_only=True)
        self._format = d('sample_format', 'S16LE', 'Input sample format until audio_info '
                         'says otherwise: S16LE, S32LE, F32LE or U8.', read_only=True)
        self._channel = d('channel', -1, 'Channel to encode; -1 downmixes all channels.',
                          min_value=-1, max_value=63, read_only=True)
        max_pending = d('max_pending_windows', 16, 'Windows allowed to wait for the model; '
                        'older ones are skipped and counted.', min_value=1, max_value=10000,
                        read_only=True)
        self._frame_id = d('frame_id', '', 'frame_id for headerless input.', read_only=True)

        import torch
        torch.set_num_threads(threads)
        files = {k: v for k, v in (('model_path', model_path), ('spec_path', spec_path)) if v}
        self._encoder = make_audio_encoder(encoder_name, device=device, **files)
        self._encoder.warmup()
        # Windows wait here for the model; when it falls behind the oldest are skipped.
        self._pending = Mailbox(max_pending)
        self._gap = threading.Event()  # the model must forget its context before the next
        self._generation = 0  # bumped on a format change: older pending windows are void
        self._counts = Counter()
        self._bad = ThrottledLog(self)
        self._seq = 0
        self._coding_ok = True
        self._reset_stream()

        self._pub = self.create_publisher(Embedding, 'embedding', EMBEDDING_QOS)
        # AudioInfo may be latched (transient local) or periodic (volatile) depending on the
        # driver; a subscription matches only publishers of compatible durability, so take
        # both: the transient-local one also receives a latched message sent before we came.
        for durability in (QoSDurabilityPolicy.TRANSIENT_LOCAL, QoSDurabilityPolicy.VOLATILE):
            self.create_subscription(AudioInfo, 'audio_info', self._on_info, QoSProfile(
                depth=1, reliability=QoSReliabilityPolicy.RELIABLE, durability=durability))
        topic = 'audio_stamped' if stamped else 'audio'
        self.create_subscription(
            AudioDataStamped if stamped else AudioData, topic,
            self._on_stamped if stamped else self._on_raw, AUDIO_QOS,
            qos_overriding_options=qos_override(),
            event_callbacks=incompatible_qos_hint(self, topic))
        self._diag = Diagnostics(self)
        self._diag.add('audio encoder', self._diagnostics)
        self._worker = threading.Thread(target=self._work, name='audio_encoder', daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: {self._encoder.encoder_id} on '{self.resolve_topic_name(topic)}', window "
            f'{self._encoder.window} hop {self._encoder.hop} at {self._encoder.sample_rate} Hz')

    # ------------------------------------------------------------------ input side
    def _reset_stream(self):
        enc = self._encoder
        self._resampler = StreamResampler(self._rate, enc.sample_rate)
        # Drivers that stamp chunks on arrival jitter by milliseconds; a stamp 100 ms (or
        # half a hop, if longer) off the sample clock is a real gap in the stream.
        self._stream_clock = StreamClock(self._rate, enc.sample_rate,
                                         max(0.1, 0.5 * enc.hop / enc.sample_rate))
        self._framer = AudioFramer(enc.window, enc.hop)
        self._stamper = HeaderlessStamper()
        self._generation += 1
        self._pending.clear()
        self._gap.set()

    def _on_info(self, msg: AudioInfo):
        try:
            check_coding_format(msg.coding_format)
        except InputError as e:
            if self._coding_ok:
                self.get_logger().error(str(e))
            self._coding_ok = False
            return
        self._coding_ok = True
        if not 1000 <= msg.sample_rate <= 384000 or msg.channels < 1:
            self._reject('bad_audio_info', f'audio_info says {msg.sample_rate} Hz, '
                         f'{msg.channels} channels: ignored')
            return
        fmt = (msg.sample_format or self._format).upper()
        if (msg.sample_rate, msg.channels, fmt) != (self._rate, self._channels, self._format):
            self.get_logger().info(f'audio_info: {msg.sample_rate} Hz, {msg.channels} ch, {fmt}')
            self._rate, self._channels, self._format = msg.sample_rate, msg.channels, fmt
            self._reset_stream()

    def _on_stamped(self, msg: AudioDataStamped):
        self._ingest(msg.audio.data, stamp_to_sec(msg.header.stamp), msg.header.frame_id)

    def _on_raw(self, msg: AudioData):
        self._ingest(msg.data, None, self._frame_id)

    def _ingest(self, data, stamp, frame_id):
        self._counts['chunks'] += 1
        if not self._coding_ok:
            self._reject('compressed_audio', 'audio_info reports compressed audio: set '
                         'format:=wave on the audio driver')
            return
        try:
            pcm = decode_pcm(data, self._format, self._channels)
            mono = to_mono(pcm, self._channel)
        except InputError as e:
            self._reject(e.reason, str(e))
            return
        if stamp is None:
            stamp = self._stamper.stamp(now_sec(self), len(mono), self._rate)
        if self._stream_clock.is_gap(stamp):
            # Do not interpolate across a gap; the filter's tail still belongs to the stream
            # that ended, so it is framed with that stream's stamps before the reset.
            self._frame(self._resampler.flush(), frame_id)
        self._stream_clock.input_chunk(stamp, len(mono))
        self._frame(self._resampler.process(mono), frame_id)

    def _frame(self, resampled, frame_id):
        if not len(resampled):
            return
        frames = self._framer.push(resampled, self._stream_clock.output_stamp(len(resampled)),
                                   self._encoder.sample_rate)
        for frame in frames:
            if self._pending.put((frame, frame_id, self._generation)):
                self._counts['skipped_windows'] += 1
                self._gap.set()  # a skipped window is a gap for a streaming model

    def _reject(self, reason, text):
        self._counts['rejected'] += 1
        self._counts[f'rejected_{reason}'] += 1
        self._bad.warn(reason, f'rejected audio input ({reason}): {text}')

    # ------------------------------------------------------------------ model side
    def _work(self):
        enc = self._encoder
        while (item := self._pending.get()) is not None:
            frame, frame_id, generation = item
            if generation != self._generation:
                continue  # taken just before a format change: its stream is gone
            if self._gap.is_set():
                self._gap.clear()
                enc.reset()
            t0 = time.perf_counter()
            try:
                out = enc.encode(frame.samples)
            except Exception as err:  # noqa: BLE001 - a model failure must not stop the node
                self._reject('encoder_error', f'{type(err).__name__}: {err}')
                continue
            msg = embedding_msg(out, self._modality, enc.encoder_id, self._seq,
                                sec_to_stamp(frame.stamp), frame_id,
                                enc.window / enc.sample_rate, time.perf_counter() - t0)
            self._seq += 1
            self._counts['embeddings'] += 1
            if not self._pending.closed:  # close() may have begun during the model run
                self._pub.publish(msg)

    def _diagnostics(self):
        c = dict(self._counts)
        level = DiagnosticStatus.OK
        message = 'ok'
        if not self._coding_ok:
            level, message = DiagnosticStatus.ERROR, 'compressed audio: set format:=wave'
        elif c.get('skipped_windows', 0):
            level, message = DiagnosticStatus.WARN, 'model cannot keep up: windows skipped'
        c.update(encoder=self._encoder.encoder_id, pending=len(self._pending),
                 sample_rate=self._rate, channels=self._channels, format=self._format)
        return level, message, c

    def close(self):
        """Stop the worker thread (called before destroy_node)."""
        self._pending.close()
        self._worker.join(timeout=2.0)


def main(args=None):
    """Run the audio encoder node."""
    spin_node(AudioEncoderNode, args)


if __name__ == '__main__':
    main()
