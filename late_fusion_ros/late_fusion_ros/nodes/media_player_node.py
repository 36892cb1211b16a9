# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Media player node: plays real speech and photos as a microphone and a camera driver would.

Publishes `audio_stamped` (audio_common_msgs/AudioDataStamped: 48 kHz stereo S16LE in
1024-frame chunks by default, as USB microphones deliver it), a latched `audio_info`
(AudioInfo) and `image` (sensor_msgs/Image: 1280x720 rgb8, reliable, like usb_cam and
realsense2_camera), so the demo and the tests exercise what robots' drivers publish.
"""

import threading
import time

from audio_common_msgs.msg import AudioDataStamped, AudioInfo
import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import Image

from ..bringup.dds import use_large_frames_profile
from ..core.media import camera_frame, scenario, stereo
from ..shared.lifecycle import spin_node
from ..shared.messages import sec_to_stamp
from ..shared.parameters import declare


class MediaPlayerNode(Node):
    """
    Stream an espeak-ng scenario as audio and cycle scikit-image photos as camera frames.

    A driver publishes a chunk as soon as its last sample is captured and a frame at its
    exposure: one thread here sleeps until each such deadline (never a timer, whose
    period drifts and whose callbacks queue behind each other), so what a subscriber
    measures is its own latency, not the player's. Stamps come from the node's clock
    (sim time with use_sim_time): chunks are stamped on the sample clock anchored there,
    frames with the clock's time at their deadline.
    """

    def __init__(self):
        super().__init__('media_player')
        d = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
        pattern = d('pattern', 'speech silence speech noise speech silence',
                    'Audio scenario: speech, silence and noise segments.', read_only=True)
        self._rate = d('sample_rate', 48000, 'Microphone sample rate (Hz).', read_only=True,
                       min_value=8000, max_value=192000)
        channels = d('channels', 2, 'Microphone channels (1 or 2).', read_only=True,
                     min_value=1, max_value=2)
        self._chunk = d('chunk_frames', 1024, 'Frames per audio chunk.', read_only=True,
                        min_value=16, max_value=65536)
        photos = d('photos', ['astronaut', 'chelsea', 'coffee', 'rocket'],
                   'scikit-image sample photos shown in turn.', read_only=True)
        self._fps = d('fps', 15.0, 'Camera frame rate.', read_only=True, min_value=0.1,
                      max_value=120.0)
        width = d('width', 1280, 'Camera frame width.', read_only=True, min_value=16,
                  max_value=7680)
        height = d('height', 720, 'Camera frame height.', read_only=True, min_value=16,
                   max_value=4320)
        self._seconds_per_photo = d('seconds_per_photo', 3.0, 'How long each photo is shown.',
                                    read_only=True, min_value=0.1, max_value=3600.0)
        reliable = d('image_reliable', True, 'Publish images reliable (what usb_cam and '
                     'realsense2_camera do by default).', read_only=True)
        # REP 103: image data is in an optical frame (z forward, x right, y down).
        self._camera_frame = d('camera_frame_id', 'camera_optical_frame',
                               'frame_id of the images.', read_only=True)
        self._mic_frame = d('microphone_frame_id', 'microphone', 'frame_id of the audio.',
                            read_only=True)
        # Real drivers are separate processes, one per device; one player may stand in for
        # either or both (a camera and a microphone published from one process delay the
        # audio in Fast DDS: see README, Across machines).
        microphone = d('microphone', True, 'Play the microphone (audio_stamped, audio_info).',
                       read_only=True)
        camera = d('camera', True, 'Play the camera (image).', read_only=True)
        mono, _ = scenario(pattern, rate=self._rate)
        self._audio = stereo(mono) if channels == 2 else mono[:, None]
        self._photos = [camera_frame(n, width, height).tobytes() for n in photos] \
            if camera else []
        self._size = (height, width)
        qos = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE if reliable
                         else QoSReliabilityPolicy.BEST_EFFORT)
        self._audio_pub = self._image_pub = None
        if microphone:
            self._audio_pub = self.create_publisher(AudioDataStamped, 'audio_stamped', 10)
            latched = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                                 durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
            self._info_pub = self.create_publisher(AudioInfo, 'audio_info', latched)
            self._info_pub.publish(AudioInfo(
                channels=channels, sample_rate=self._rate, sample_format='S16LE',
                bitrate=self._rate * 16 * channels, coding_format='wave'))
        if camera:
            self._image_pub = self.create_publisher(Image, 'image', qos)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play, name='media_player', daemon=True)
        self._thread.start()
        playing = []
        if microphone:
            playing.append(f'{len(mono) / self._rate:.1f} s of audio ({pattern}) at '
                           f'{self._rate} Hz x {channels} in {self._chunk}-frame chunks')
        if camera:
            playing.append(f'{len(photos)} photos at {width}x{height} {self._fps:g} fps')
        self.get_logger().info(f"playing {' and '.join(playing) or 'nothing'}")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _play(self):
        chunk_s, frame_s = self._chunk / self._rate, 1.0 / self._fps
        start = time.monotonic()
        # The sample clock: chunk k was captured from anchor + k chunks, on the node's clock.
        # A late thread still stamps chunks when they were captured (a driver does too); only
        # a jump of the node's clock against the monotonic one (sim time) moves the anchor.
        offset = self._now() - start
        anchor, sent, frames = self._now(), 0, 0
        while not self._stop.is_set():
            # Deadlines on the monotonic clock: chunk k is complete at (k + 1) chunks.
            next_chunk = start + (sent + 1) * chunk_s
            next_frame = start + frames * frame_s
            due = min(next_chunk, next_frame)
            if self._stop.wait(max(0.0, due - time.monotonic())):
                break
            now = self._now()
            jump = now - time.monotonic() - offset
            if abs(jump) > 0.25:
                anchor, offset = anchor + jump, offset + jump
            if time.monotonic() >= next_chunk:
                if self._audio_pub is not None:
                    self._publish_chunk(sent, anchor + sent * chunk_s)
                sent += 1
            if time.monotonic() >= next_frame:
                if self._image_pub is not None:
                    self._publish_frame(frames * frame_s, now)
                frames += 1

    def _publish_chunk(self, k: int, stamp: float):
        idx = (np.arange(self._chunk) + k * self._chunk) % len(self._audio)
        msg = AudioDataStamped()
        msg.header.stamp = sec_to_stamp(stamp)
        msg.header.frame_id = self._mic_frame
        msg.audio.data = self._audio[idx].astype('<i2').tobytes()
        self._publish(self._audio_pub, msg)

    def _publish_frame(self, t: float, stamp: float):
        height, width = self._size
        msg = Image(height=height, width=width, encoding='rgb8', step=width * 3,
                    data=self._photos[int(t / self._seconds_per_photo) % len(self._photos)])
        msg.header.stamp = sec_to_stamp(stamp)
        msg.header.frame_id = self._camera_frame
        self._publish(self._image_pub, msg)

    def _publish(self, pub, msg):
        try:
            pub.publish(msg)
        except Exception as err:  # noqa: BLE001 - rclpy's RCLError (a reliable write timing
            # out under load) has no public import path; a driver must not die of it.
            self.get_logger().warn(f'publish failed: {err}', throttle_duration_sec=5.0)

    def close(self):
        """Stop the player thread (called before destroy_node)."""
        self._stop.set()
        self._thread.join(timeout=2.0)


def main(args=None):
    """Run the media player node."""
    # It may publish camera frames and audio from one participant: without a larger
    # shared-memory segment Fast DDS delays the audio behind the frames (bringup/dds.py).
    use_large_frames_profile()
    spin_node(MediaPlayerNode, args)


if __name__ == '__main__':
    main()
