# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Media player node: plays real speech and photos as a microphone and a camera driver would.

Publishes `audio_stamped` (audio_common_msgs/AudioDataStamped, S16LE chunks in real time),
`audio_info` (AudioInfo, once a second) and `image` (sensor_msgs/Image, rgb8), so the demo
and the tests exercise the same topics a robot's drivers publish.
"""

import time

from audio_common_msgs.msg import AudioDataStamped, AudioInfo
import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import Image

from .core.media import photo, scenario
from .ros_common import declare, spin_node


class MediaPlayerNode(Node):
    """Stream an espeak-ng scenario as audio and cycle scikit-image photos as frames."""

    def __init__(self):
        super().__init__('media_player')
        d = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
        pattern = d('pattern', 'speech silence speech noise speech silence',
                    'Audio scenario: speech, silence and noise segments.', read_only=True)
        chunk_ms = d('chunk_ms', 32, 'Audio chunk length in ms.', read_only=True,
                     min_value=1, max_value=1000)
        photos = d('photos', ['astronaut', 'chelsea', 'coffee', 'rocket'],
                   'scikit-image sample photos shown in turn.', read_only=True)
        fps = d('fps', 10.0, 'Camera frame rate.', read_only=True, min_value=0.1,
                max_value=120.0)
        seconds_per_photo = d('seconds_per_photo', 3.0, 'How long each photo is shown.',
                              read_only=True, min_value=0.1, max_value=3600.0)
        reliable = d('image_reliable', True, 'Publish images reliable (large best-effort '
                     'samples between processes are mostly lost on this middleware).',
                     read_only=True)
        self._audio, self._segments = scenario(pattern)
        self._chunk = 16 * chunk_ms
        self._photos = [photo(n) for n in photos]
        self._seconds_per_photo = seconds_per_photo
        qos = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE if reliable
                         else QoSReliabilityPolicy.BEST_EFFORT)
        self._audio_pub = self.create_publisher(AudioDataStamped, 'audio_stamped', 10)
        self._info_pub = self.create_publisher(AudioInfo, 'audio_info', 10)
        self._image_pub = self.create_publisher(Image, 'image', qos)
        self._pos = 0
        self._t0 = time.time()
        self.create_timer(chunk_ms / 1000.0, self._on_audio)
        self.create_timer(1.0 / fps, self._on_image)
        self.create_timer(1.0, self._on_info)
        self._on_info()
        total = len(self._audio) / 16000
        self.get_logger().info(
            f'playing {total:.1f} s of audio ({pattern}) in a loop and {len(photos)} photos '
            f'at {fps} fps')

    def _on_info(self):
        self._info_pub.publish(AudioInfo(channels=1, sample_rate=16000, sample_format='S16LE',
                                         bitrate=16000 * 16, coding_format='wave'))

    def _on_audio(self):
        # Publish whatever real time says is due, so timer jitter never drops samples.
        due = int((time.time() - self._t0) * 16000)
        while self._pos + self._chunk <= due:
            start = self._pos % len(self._audio)
            idx = (np.arange(self._chunk) + start) % len(self._audio)
            msg = AudioDataStamped()
            stamp_ns = self._t0 * 1e9 + self._pos * 1e9 / 16000
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), 10**9)
            msg.header.frame_id = 'microphone'
            msg.audio.data = self._audio[idx].astype('<i2').tobytes()
            self._audio_pub.publish(msg)
            self._pos += self._chunk

    def _on_image(self):
        now = time.time()
        k = int((now - self._t0) / self._seconds_per_photo) % len(self._photos)
        rgb = self._photos[k]
        msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding='rgb8',
                    step=rgb.shape[1] * 3, data=rgb.tobytes())
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = 'camera'
        self._image_pub.publish(msg)


def main(args=None):
    """Run the media player node."""
    spin_node(MediaPlayerNode, args)


if __name__ == '__main__':
    main()
