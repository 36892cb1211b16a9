# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""The microphone input shared by the nodes that listen: subscriptions and one AudioStream."""

from collections import Counter
from typing import Callable, List, Optional, Tuple

from audio_common_msgs.msg import AudioData, AudioDataStamped, AudioInfo
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

from .adaptive_subscription import AdaptiveSubscription
from .diagnostics import ThrottledLog
from .messages import now_sec, stamp_to_sec
from .parameters import declare
from ..core.audio import AudioStream, check_coding_format, Frame, RESAMPLERS, StreamFormat
from ..core.errors import InputError

# Audio is a stream in which every chunk carries samples the framer needs: ~2 s of history
# at 32 ms chunks, so a briefly starved process catches up instead of losing samples.
# Reliability and durability follow the driver (AdaptiveSubscription).
AUDIO_QOS = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=64,
                       reliability=QoSReliabilityPolicy.BEST_EFFORT,
                       durability=QoSDurabilityPolicy.VOLATILE)
# AudioInfo: only the latest one matters; latched (transient local) or periodic, as the
# driver offers it.
AUDIO_INFO_QOS = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=1,
                            reliability=QoSReliabilityPolicy.RELIABLE,
                            durability=QoSDurabilityPolicy.VOLATILE)


class AudioInput:
    """
    A microphone topic turned into windows for a model, for any node that listens.

    Declares the input parameters (stamped, sample_rate, channels, sample_format, channel,
    frame_id, resampler, max_chunk_seconds) on `node`, subscribes `audio_stamped`
    (AudioDataStamped) or, with `stamped:=false`, headerless `audio` (AudioData), plus
    `audio_info`, each with the QoS the driver offers, and feeds one core AudioStream. Every
    chunk's complete windows go to `on_frames(frames, frame_id, generation)` in the
    executor thread; a caller hands them to its model thread. Bad chunks are counted per
    reason and logged, throttled, never raised. `on_info` and `ingest` are the per-message
    steps, public so that fusion_offline feeds a bag's messages through the same code.
    """

    def __init__(self, node: Node, on_frames: Callable[[List[Frame], str, int], None],
                 on_restart: Callable[[], None] = lambda: None):
        """Declare the input parameters and the subscriptions (started by start())."""
        self._node = node
        d = lambda *a, **k: declare(node, *a, **k)  # noqa: E731
        self.stamped = d('stamped', True, 'Subscribe audio_stamped (AudioDataStamped); false: '
                         'headerless audio (AudioData), stamped from arrival time.',
                         read_only=True)
        # The input format is the driver's fact: these are defaults until audio_info arrives.
        self._format = (
            d('sample_rate', 16000, 'Input sample rate until audio_info says otherwise.',
              min_value=1000, max_value=384000, read_only=True),
            d('channels', 1, 'Input channels until audio_info says otherwise.',
              min_value=1, max_value=64, read_only=True),
            d('sample_format', 'S16LE', 'Input sample format until audio_info says '
              'otherwise: S16LE, S16BE, S32LE, S32BE, F32LE, F32BE or U8.', read_only=True))
        self._channel = d('channel', -1, 'Channel to encode; -1 downmixes all channels.',
                          min_value=-1, max_value=63, read_only=True)
        self._resampler = d('resampler', 'iir', 'Resampling to the model rate: '
                            f"{', '.join(RESAMPLERS)} ('iir' adds no wait for the next chunk; "
                            'see core/audio.py).', read_only=True)
        self._max_chunk = d('max_chunk_seconds', 10.0, 'Longer chunks are refused before '
                            'decoding.', min_value=0.01, max_value=600.0, read_only=True)
        self._frame_id = d('frame_id', '', 'frame_id for headerless input.', read_only=True)
        self.stream: Optional[AudioStream] = None
        self._on_frames = on_frames
        self._on_restart = on_restart
        self.counts = Counter()
        self._bad = ThrottledLog(node)
        self._coding_ok = True
        self._loss_reported = False
        self.chunk_frames = 0  # frames in the latest chunk, for diagnostics
        topic = 'audio_stamped' if self.stamped else 'audio'
        self.info = AdaptiveSubscription(node, AudioInfo, 'audio_info', self.on_info,
                                         AUDIO_INFO_QOS, adapt_durability=True, start=False)
        self.audio = AdaptiveSubscription(
            node, AudioDataStamped if self.stamped else AudioData, topic, self._on_audio,
            AUDIO_QOS, on_lost=self._on_lost, start=False)

    def configure(self, window: int, hop: int, model_rate: int) -> None:
        """Build the stream for a model's window, hop and rate; ValueError if it cannot be."""
        try:
            initial = StreamFormat(*self._format).validated()
        except InputError as err:
            raise ValueError(str(err)) from None
        self.stream = AudioStream(window, hop, model_rate, initial, self._channel,
                                  self._resampler, self._max_chunk)
        self.counts.clear()
        self._coding_ok = True
        self._loss_reported = False
        self.chunk_frames = 0

    def start(self) -> None:
        """Subscribe the microphone topics (as soon as a driver publishes)."""
        if self.stream is not None and self.counts['chunks']:
            self.stream.restart()  # intake stopped on purpose: no loss to count
            self._on_restart()
        self.info.start()
        self.audio.start()

    def stop(self) -> None:
        """Unsubscribe: no chunk is received until start()."""
        self.audio.stop()
        self.info.stop()

    # ------------------------------------------------------------------ callbacks
    def on_info(self, msg: AudioInfo) -> None:
        """Take an AudioInfo: a format change restarts the stream (on_restart is called)."""
        try:
            check_coding_format(msg.coding_format)
        except InputError as e:
            if self._coding_ok:
                self._node.get_logger().error(str(e))
            self._coding_ok = False
            return
        self._coding_ok = True
        fmt = StreamFormat(msg.sample_rate, msg.channels, msg.sample_format or 'S16LE')
        try:
            changed = self.stream.set_format(fmt)
        except InputError as e:
            self.reject(e.reason, f'audio_info ignored: {e}')
            return
        if changed:
            f = self.stream.stream_format
            self._node.get_logger().info(
                f'audio_info: {f.sample_rate} Hz, {f.channels} ch, {f.sample_format}')
            self._on_restart()

    def _on_audio(self, msg) -> None:
        frames, frame_id = self.ingest(msg)
        if frames:
            self._on_frames(frames, frame_id, self.stream.generation)

    def ingest(self, msg, arrival: Optional[float] = None) -> Tuple[List[Frame], str]:
        """
        Take one AudioDataStamped (or, with stamped:=false, AudioData) chunk.

        Returns the windows it completes and their frame_id. `arrival` is the chunk's arrival
        time on the node's clock (default: now); only headerless chunks are stamped from it.
        A bad chunk is counted and logged, and yields no window.
        """
        if self.stamped:
            data, stamp, frame_id = (msg.audio.data, stamp_to_sec(msg.header.stamp),
                                     msg.header.frame_id)
        else:
            data, stamp, frame_id = msg.data, None, self._frame_id
        self.counts['chunks'] += 1
        if not self._coding_ok:
            self.reject('compressed_audio', 'audio_info reports compressed audio: set '
                        'format:=wave on the audio driver')
            return [], frame_id
        lost = self.stream.counts['lost_samples']
        try:
            frames = self.stream.push(data, stamp,
                                      now_sec(self._node) if arrival is None else arrival)
        except InputError as e:
            self.reject(e.reason, str(e))
            return [], frame_id
        self.chunk_frames = len(data) // self.stream.stream_format.frame_bytes
        if self.stream.counts['lost_samples'] > lost:
            self._report_loss(f'{self.stream.counts["lost_samples"] - lost} samples missing '
                              'between chunk stamps')
        return frames, frame_id

    def _on_lost(self, count: int) -> None:
        self.counts['lost_chunks'] += count
        self._report_loss(f'{count} chunk(s) lost by the middleware')

    def _report_loss(self, what: str) -> None:
        if self._loss_reported:
            return
        self._loss_reported = True  # once: diagnostics keep counting
        self._node.get_logger().warn(
            f"'{self.audio.topic}': audio lost before it reached this node ({what}). "
            f'Subscription: {self.audio.describe()}. A best-effort microphone loses chunks '
            'whenever this process falls behind: publish reliable (the subscription follows '
            f'the driver) or raise qos_overrides.{self.audio.topic}.subscription.depth.')

    def reject(self, reason: str, text: str) -> None:
        """Count a bad input under `reason` and log it, throttled per reason."""
        self.counts['rejected'] += 1
        self.counts[f'rejected_{reason}'] += 1
        self._bad.warn(reason, f'rejected audio input ({reason}): {text}')

    # ------------------------------------------------------------------ diagnostics
    def diagnostics(self):
        """Return (level, message, values): the stream's facts, losses and rejects."""
        s, f = self.stream.counts, self.stream.stream_format
        values = dict(self.counts)
        values.update({k: s[k] for k in ('samples', 'gaps', 'lost_samples', 'pauses',
                                         'clock_jumps', 'format_changes')})
        values.update(sample_rate=f.sample_rate, channels=f.channels, format=f.sample_format,
                      chunk_frames=self.chunk_frames,
                      chunk_ms=round(1e3 * self.chunk_frames / f.sample_rate, 2),
                      resampler=self.stream.resampler, qos=self.audio.describe(),
                      publishers=self.audio.publishers, lost_events=self.audio.lost_events,
                      incompatible_qos=self.audio.incompatible,
                      info_qos=self.info.describe(), info_incompatible_qos=self.info.incompatible)
        if not self._coding_ok:
            return DiagnosticStatus.ERROR, 'compressed audio: set format:=wave', values
        if values.get('lost_chunks') or s['lost_samples']:
            return DiagnosticStatus.WARN, 'audio lost before the node', values
        if not self.audio.publishers:
            return DiagnosticStatus.WARN, 'no microphone publisher', values
        return DiagnosticStatus.OK, 'ok', values
