# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Vision encoder node: camera frames in, one Embedding per encoded frame out."""

from collections import Counter, deque
import time
from typing import List, Optional

from diagnostic_msgs.msg import DiagnosticStatus
from late_fusion_msgs.msg import Embedding
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from ..core.encoders import EncoderOutput, make_vision_encoder
from ..core.errors import InputError
from ..core.image import (check_compressed, checked_rows, compressed_to_rgb, image_msg_to_rgb,
                          MAX_IMAGE_BYTES, warm_up_conversions)
from ..core.stream_stats import FrameStats
from ..shared.adaptive_subscription import AdaptiveSubscription
from ..shared.diagnostics import processing_values, ThrottledLog
from ..shared.lifecycle import ManagedNode, spin_node
from ..shared.messages import embedding_msg, now_sec, stamp_to_sec
from ..shared.model_thread import ModelThread
from ..shared.parameters import declare, declare_model_parameters
from ..shared.qos import EMBEDDING_QOS, SENSOR_QOS


class VisionEncoderNode(ManagedNode):
    """
    Encode the newest camera frame whenever the model is free (latest-frame-wins).

    A managed node (shared.lifecycle): configure loads and warms the model, activate
    subscribes the camera, deactivate unsubscribes (an inactive encoder receives nothing,
    so a streaming camera costs it nothing), cleanup frees the model.

    Subscribes `image` (sensor_msgs/Image) or, with `image_transport:=compressed`,
    `<image>/compressed` (sensor_msgs/CompressedImage), with the reliability the camera
    driver offers (AdaptiveSubscription), and publishes `embedding`. The callback only
    stores the message in a one-slot mailbox; the model thread converts and encodes it. A
    frame that arrives while the slot is still full replaces the older one, which is
    counted as dropped: memory is bounded, the driver is never held back, and the
    capture-to-embedding latency is at most one model run plus the frame in progress.
    """

    def __init__(self, **node_options):
        """Declare every parameter; `node_options` go to rclpy's Node."""
        super().__init__('vision_encoder', **node_options)
        d = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
        self._model = declare_model_parameters(
            self, 'vision', 'efficientnet_lite0', 'efficientnet_lite0, face, torchscript, onnx',
            'torchscript/onnx', 'the YAML preprocessing spec')
        # The slow sense yields to the fast one: on a small CPU a woken audio or fusion
        # thread preempts the vision model instead of waiting out its run (bench_drivers.py,
        # the microphone rows while a 720p camera streams, compares model_nice 10 and 0).
        self._model_nice = d('model_nice', 10, 'Added to the nice value of the model thread '
                             '(Linux; 0 keeps the node priority).', read_only=True,
                             min_value=0, max_value=19)
        self._top_k = d('top_k', 5, 'ImageNet classes reported as named scores.',
                        read_only=True, min_value=1, max_value=1000)
        self._max_bytes = d('max_image_bytes', MAX_IMAGE_BYTES, 'Images declaring or carrying '
                            'more bytes are refused before conversion.', read_only=True,
                            min_value=1024, max_value=1 << 31)
        self._transport = d('image_transport', 'raw', "'raw': sensor_msgs/Image on image; "
                            "'compressed': sensor_msgs/CompressedImage on <image>/compressed "
                            '(image_transport naming, jpeg or png).', read_only=True)
        # image_transport naming: the compressed topic hangs off the (remapped) image topic.
        # (An unknown transport is refused by configure; its subscription is declared raw.)
        compressed = self._transport == 'compressed'
        topic = self.resolve_topic_name('image') + ('/compressed' if compressed else '')
        self._input = AdaptiveSubscription(
            self, CompressedImage if compressed else Image, topic, self._on_image,
            SENSOR_QOS, on_lost=self._on_lost, start=False)
        self._encoder = None
        self._worker = None
        self._pub = None

    # ------------------------------------------------------------------ lifecycle
    def configure_node(self):
        """Check the transport, load and warm up the model, create the publisher."""
        if self._transport not in ('raw', 'compressed'):
            raise ValueError(f"image_transport must be 'raw' or 'compressed', not "
                             f'{self._transport!r}')
        self._encoder = self._model.make(make_vision_encoder, top_k=self._top_k)
        self._encoder.warmup()
        warm_up_conversions()
        self._last_stamp = None
        self._counts = Counter()
        self._stats = FrameStats()
        self._stream = {}  # encoding-level facts of the latest frame, for diagnostics
        self._bad = ThrottledLog(self)
        self._loss_reported = False
        self._seq = 0
        self._published = 0
        self._processing = deque(maxlen=100)  # seconds per frame, recent frames
        self._pub = self.lifecycle_publisher(Embedding, 'embedding', EMBEDDING_QOS)
        # Latest-frame-wins: one frame waits, newer ones replace it.
        self._worker = ModelThread('vision_encoder', self._encode, 1, nice=self._model_nice,
                                   on_nice_error=lambda err: self.get_logger().warn(
                                       f'model_nice {self._model_nice} refused: {err}'))
        self._worker.start()
        self.add_stage('input', self._input_diagnostics)
        self.add_stage('encoder', self._encoder_diagnostics)
        self.add_stage('output', self._output_diagnostics)
        self.get_logger().info(f'configured: {self._encoder.encoder_id} on '
                               f"'{self._input.topic}'")

    def activate_node(self):
        """Subscribe the camera."""
        self._stats = FrameStats()  # a stopped intake is no gap between frames
        self._input.start()

    def deactivate_node(self):
        """Unsubscribe and drop the frame waiting for the model."""
        self._input.stop()
        if self._worker is not None:
            self._worker.clear()

    def cleanup_node(self):
        """Stop the model thread and free the model."""
        if self._worker is not None:
            self._worker.stop(timeout=5.0)
        self._worker = self._encoder = self._pub = None

    def _on_image(self, msg):
        self._counts['received'] += 1
        missed = self._stats.add(stamp_to_sec(msg.header.stamp))
        if missed and not self._input.lost_events:
            self._count_lost(missed, 'frames missing between stamps')
        # The checks that need no decoding run here, on every frame: a malformed frame is
        # counted even when the model is busy, and never evicts a good one from the slot.
        try:
            if isinstance(msg, CompressedImage):
                check_compressed(msg.format, msg.data, self._max_bytes).close()
            else:
                checked_rows(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                             self._max_bytes)
        except InputError as e:
            self._reject(e.reason, str(e))
            return
        if self._worker.put(msg):
            self._counts['dropped'] += 1  # superseded before the model got to it

    def _on_lost(self, count):
        self._count_lost(count, 'reported lost by the middleware')

    def _count_lost(self, count, how):
        self._counts['lost'] += count
        if self._loss_reported:
            return
        self._loss_reported = True  # once: diagnostics keep counting
        size = self._stream.get('bytes', 0) / 1e6
        self.get_logger().warn(
            f"'{self._input.topic}': {count} frame(s) {how} before reaching this node "
            f'(subscription {self._input.describe()}, frames of {size:.1f} MB). Fast DDS '
            'loses most best-effort frames above ~0.5 MB between processes: publish the '
            'camera reliable (this subscription follows the driver), or use '
            'image_transport:=compressed.')

    # ------------------------------------------------------------------ one frame
    # The worker runs these three steps per frame; fusion_offline runs the same steps on a
    # bag (the first two in parallel for encoders that keep no state across frames).
    @property
    def input_topic(self) -> str:
        """Return the resolved image topic (…/compressed with image_transport compressed)."""
        return self._input.topic

    @property
    def input_type(self):
        """Return the message class subscribed: sensor_msgs Image or CompressedImage."""
        return self._input.msg_type

    @property
    def output_topic(self) -> str:
        """Return the resolved embedding topic."""
        return self._pub.topic_name

    @property
    def encoder(self):
        """Return the core VisionEncoder this node runs."""
        return self._encoder

    def convert(self, msg, copy: bool = True) -> Optional[np.ndarray]:
        """
        Return an Image or CompressedImage as (H, W, 3) RGB, or None (rejected, counted).

        `copy` False lets an rgb8 frame come back as a read-only view of `msg.data`
        (fusion_offline: the encoder only reads it, while the message lives).
        """
        try:
            if isinstance(msg, CompressedImage):
                rgb = compressed_to_rgb(msg.format, msg.data, self._max_bytes)
                self._stream = {'encoding': msg.format, 'bytes': len(msg.data)}
            else:
                rgb = image_msg_to_rgb(msg, self._max_bytes, copy=copy)
                self._stream = {'encoding': msg.encoding, 'bytes': len(msg.data)}
            self._stream['resolution'] = f'{rgb.shape[1]}x{rgb.shape[0]}'
            return rgb
        except InputError as e:
            self._reject(e.reason, str(e))
        except Exception as err:  # noqa: BLE001 - e.g. a conversion backend failing
            self._reject('conversion_error', f'{type(err).__name__}: {err}')
        return None

    def run_model(self, rgb: np.ndarray, stamp: float) -> Optional[EncoderOutput]:
        """Encode one RGB frame captured at `stamp`; None when the model failed (counted)."""
        try:
            return self._encoder.encode(rgb, stamp=stamp)
        except Exception as err:  # noqa: BLE001 - a model failure must not stop the node
            self._reject('encoder_error', f'{type(err).__name__}: {err}')
            return None

    def run_model_batch(self, rgbs, stamps) -> List[Optional[EncoderOutput]]:
        """
        Encode RGB frames captured at `stamps` in one model run (fusion_offline's --batch).

        If the batch fails, each frame is encoded on its own, so that only a frame that fails
        by itself is counted and comes back None.
        """
        try:
            return list(self._encoder.encode_batch(rgbs, stamps))
        except Exception:  # noqa: BLE001 - find the frame that fails, count only it
            return [self.run_model(rgb, stamp) for rgb, stamp in zip(rgbs, stamps)]

    def embedding(self, msg, out: EncoderOutput, processing_time: float) -> Embedding:
        """Return the Embedding of `out` for frame `msg` (in frame order: seq and period)."""
        stamp = stamp_to_sec(msg.header.stamp)
        period = stamp - self._last_stamp if self._last_stamp is not None else 0.0
        # Same capture stamp and frame_id as the camera frame.
        emb = embedding_msg(out, self._model.modality, self._encoder.encoder_id, self._seq,
                            msg.header.stamp, msg.header.frame_id, max(0.0, period),
                            processing_time)
        self._last_stamp = stamp
        self._seq += 1
        self._counts['encoded'] += 1
        return emb

    def _encode(self, msg):
        """Model thread: convert and encode one frame, publish its Embedding."""
        pub, worker = self._pub, self._worker  # cleanup may begin during the model run
        t0 = time.perf_counter()
        rgb = self.convert(msg)
        out = None if rgb is None else self.run_model(rgb, stamp_to_sec(msg.header.stamp))
        if out is None:
            return
        processing = time.perf_counter() - t0
        self._processing.append(processing)
        emb = self.embedding(msg, out, processing)
        if worker.stopping or not pub.is_activated:  # inactive: nothing is published
            self._seq = emb.seq  # and no seq used up: the fusion node counts gaps as losses
            return
        emb.capture_to_publish_latency = now_sec(self) - stamp_to_sec(emb.header.stamp)
        pub.publish(emb)
        self._published += 1

    def _reject(self, reason, text):
        self._counts['rejected'] += 1
        self._counts[f'rejected_{reason}'] += 1
        self._bad.warn(reason, f'rejected image ({reason}): {text}')

    def _input_diagnostics(self):
        c = {k: v for k, v in self._counts.items() if k in ('received', 'lost')
             or k.startswith('rejected')}
        c.update(self._stream)
        c.update(topic=self._input.topic, rate_hz=round(self._stats.rate, 2),
                 qos=self._input.describe(), publishers=self._input.publishers,
                 lost_events=self._input.lost_events,
                 incompatible_qos=self._input.incompatible)
        if c.get('lost'):
            return DiagnosticStatus.WARN, 'frames lost before the node', c
        if not self._input.publishers:
            return DiagnosticStatus.WARN, 'no camera publisher', c
        if c.get('rejected'):
            return DiagnosticStatus.WARN, 'frames rejected', c
        return DiagnosticStatus.OK, 'ok', c

    def _encoder_diagnostics(self):
        received = max(1, self._counts.get('received', 0))
        c = {'encoder': self._encoder.encoder_id,
             'model_nice': self._worker.nice_applied or 0,
             'encoded': self._counts.get('encoded', 0),
             'dropped': self._counts.get('dropped', 0),
             'drop_rate': round(self._counts.get('dropped', 0) / received, 3),
             'model_errors': self._counts.get('rejected_encoder_error', 0)}
        c.update(processing_values(self._processing, digits=1))
        if c['model_errors']:
            return DiagnosticStatus.ERROR, 'the model failed', c
        # Latest-frame-wins drops are by design (the model is slower than the camera).
        return DiagnosticStatus.OK, 'ok', c

    def _output_diagnostics(self):
        return DiagnosticStatus.OK, 'ok', {
            'published': self._published, 'topic': self.output_topic,
            'subscribers': self._pub.get_subscription_count()}


def main(args=None):
    """Run the vision encoder node."""
    spin_node(VisionEncoderNode, args)


if __name__ == '__main__':
    main()
