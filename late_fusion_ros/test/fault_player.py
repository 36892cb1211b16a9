# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
A microphone and a camera that behave like robots' drivers, for fault tests.

They publish from one thread of the test process on their own deadlines (a chunk when its
last sample is captured, a frame at its exposure), can be stopped and restarted with
another sample rate, resolution or QoS as a restarted driver would, and can run on a
simulated `/clock` that jumps backwards or forwards like `ros2 bag play --clock` looping.
"""

import threading
import time

from audio_common_msgs.msg import AudioDataStamped, AudioInfo
from late_fusion_ros.core.media import camera_frame, scenario, stereo
from late_fusion_ros.shared.messages import sec_to_stamp
import numpy as np
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image

LATCHED = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                     durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)


def qos(reliable: bool, depth: int = 5) -> QoSProfile:
    """Return a reliable or best-effort volatile profile."""
    return QoSProfile(depth=depth, reliability=QoSReliabilityPolicy.RELIABLE if reliable
                      else QoSReliabilityPolicy.BEST_EFFORT)


class Player:
    """Driver-like microphone and camera publishing from a background thread."""

    def __init__(self, node, prefix: str, sim_time: bool = False, fps: float = 15.0):
        """Publish on `<prefix>/mic/...` and `<prefix>/camera/image_raw`; /clock if sim_time."""
        self._node = node
        self._prefix = prefix
        self._lock = threading.Lock()
        self._fps = fps
        self._mic = None      # (rate, channels, chunk, audio, publisher, info publisher)
        self._camera = None   # (frames, publisher)
        self.sim_time = sim_time
        self._sim_offset = 1000.0 - time.monotonic()  # sim time starts at ~1000 s
        self._clock_pub = node.create_publisher(Clock, '/clock', 10) if sim_time else None
        self.chunks_sent = 0
        self.frames_sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> float:
        """Return the drivers' clock: sim time (jumpable) or wall time."""
        return time.monotonic() + self._sim_offset if self.sim_time else time.time()

    def jump(self, seconds: float) -> None:
        """Move the simulated clock by `seconds` (a bag loop jumps back)."""
        with self._lock:
            self._sim_offset += seconds
            if self._mic is not None:
                self._mic['anchor'] = None  # the sample clock restarts with the stream

    def start_mic(self, rate: int = 48000, channels: int = 2, chunk: int = 1024) -> None:
        """(Re)start the microphone: a latched AudioInfo, then chunks on the sample clock."""
        mono, _ = scenario('speech silence speech noise', gap=1.0, rate=rate)
        audio = stereo(mono) if channels == 2 else mono[:, None]
        with self._lock:
            self._destroy_mic()
            info = self._node.create_publisher(AudioInfo, f'{self._prefix}/mic/audio_info',
                                               LATCHED)
            info.publish(AudioInfo(channels=channels, sample_rate=rate, sample_format='S16LE',
                                   bitrate=rate * 16 * channels, coding_format='wave'))
            pub = self._node.create_publisher(
                AudioDataStamped, f'{self._prefix}/mic/audio_stamped', qos(True, 10))
            self._mic = {'rate': rate, 'chunk': chunk, 'audio': audio, 'pub': pub,
                         'info': info, 'k': 0, 'start': time.monotonic(), 'anchor': None}

    def stop_mic(self) -> None:
        """Stop the microphone driver: its publishers go away."""
        with self._lock:
            self._destroy_mic()

    def _destroy_mic(self):
        if self._mic is not None:
            self._node.destroy_publisher(self._mic['pub'])
            self._node.destroy_publisher(self._mic['info'])
            self._mic = None

    def start_camera(self, width: int = 640, height: int = 480, reliable: bool = True) -> None:
        """(Re)start the camera driver with a resolution and reliability."""
        frames = []
        for name in ('chelsea', 'astronaut', 'coffee'):
            rgb = camera_frame(name, width, height)
            frames.append(Image(height=height, width=width, encoding='rgb8', step=width * 3,
                                data=rgb.tobytes()))
        with self._lock:
            self._destroy_camera()
            pub = self._node.create_publisher(Image, f'{self._prefix}/camera/image_raw',
                                              qos(reliable))
            self._camera = {'frames': frames, 'pub': pub, 'k': 0, 'start': time.monotonic()}

    def stop_camera(self) -> None:
        """Stop the camera driver: its publisher goes away."""
        with self._lock:
            self._destroy_camera()

    def _destroy_camera(self):
        if self._camera is not None:
            self._node.destroy_publisher(self._camera['pub'])
            self._camera = None

    def _run(self):
        next_clock = time.monotonic()
        inf = float('inf')
        while not self._stop.is_set():
            with self._lock:
                mic, cam = self._mic, self._camera
                mic_due = inf if mic is None else \
                    mic['start'] + (mic['k'] + 1) * mic['chunk'] / mic['rate']
                cam_due = inf if cam is None else cam['start'] + cam['k'] / self._fps
            clock_due = next_clock if self.sim_time else inf
            self._stop.wait(max(0.0, min(mic_due, cam_due, clock_due, time.monotonic() + 0.05)
                                - time.monotonic()))
            now = time.monotonic()
            with self._lock:
                if now >= clock_due:
                    self._clock_pub.publish(Clock(clock=sec_to_stamp(self.now())))
                    next_clock = now + 0.01
                if now >= mic_due and self._mic is mic:
                    self._publish_chunk(mic)
                if now >= cam_due and self._camera is cam:
                    self._publish_frame(cam)

    def _publish_frame(self, cam):
        msg = cam['frames'][(cam['k'] // int(self._fps)) % len(cam['frames'])]
        msg.header.stamp = sec_to_stamp(self.now())
        msg.header.frame_id = 'camera_optical_frame'
        cam['pub'].publish(msg)
        cam['k'] += 1
        self.frames_sent += 1

    def _publish_chunk(self, mic):
        rate, chunk, k = mic['rate'], mic['chunk'], mic['k']
        now = self.now()
        if mic['anchor'] is None:  # a new stream (or a clock jump): anchor the sample clock
            mic['anchor'] = (k, now - chunk / rate)
        k0, t0 = mic['anchor']
        idx = (np.arange(chunk) + k * chunk) % len(mic['audio'])
        msg = AudioDataStamped()
        msg.header.stamp = sec_to_stamp(t0 + (k - k0) * chunk / rate)
        msg.header.frame_id = 'microphone'
        msg.audio.data = mic['audio'][idx].astype('<i2').tobytes()
        mic['pub'].publish(msg)
        mic['k'] += 1
        self.chunks_sent += 1

    def close(self):
        """Stop publishing and destroy the publishers."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        with self._lock:
            self._destroy_mic()
            self._destroy_camera()
