# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Real drivers at real rates: camera frames and microphone chunks into the encoder nodes.

Every row runs the nodes with their shipped defaults (config/late_fusion.yaml, nothing
overridden) and a publisher in its own process that behaves like a driver: a camera
publishing reliable (usb_cam's and realsense2_camera's default) or best effort at 30 fps
on schedule, a microphone publishing each chunk when its last sample is captured, stamped
on the sample clock, with a latched AudioInfo. Side by side, in the same run, the same
payload goes to a raw rclpy subscriber (the floor, see ../shared/perf-floor.md) with the
QoS the publisher offers.

Tables:
  camera      size x encoding x publisher QoS -> frames received by vision_encoder_node
              (its own counter) and by the raw rclpy floor, capture-to-embedding p50/p99
  microphone  rate x channels x chunk -> node-added latency (arrival of the chunk holding a
              window's last sample -> embedding receipt) p50/p99, capture-to-embedding
              p50/p99, samples lost, and the raw floor's chunk latency
  busy        the microphone rows again while a 1280x720 rgb8 camera streams at 30 fps into
              the vision encoder (the two paths share two cores), its model thread at
              model_nice 10 (default) and 0 in turns, and the ratio of the two
  resampler   node-added latency of the default 'iir' resampler against soxr 'HQ'
  speech      silero VAD speech probability on the same espeak-ng speech through the 16 kHz
              path and the 44.1/48 kHz stereo paths (no ROS)

    python bench/bench_drivers.py [--quick] [--frames 300] [--audio-seconds 8]
    python bench/bench_drivers.py --publish-camera ... | --publish-audio ... | --floor ...
    (the last three are the helper processes this benchmark starts itself)
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

from benchlib import pct, spin_in_background, table
import numpy as np

HERE = os.path.abspath(__file__)
PHOTOS = ['astronaut', 'chelsea', 'coffee', 'rocket']
SIZES = {'640x480': (640, 480), '1280x720': (1280, 720), '1920x1080': (1920, 1080)}
ENCODINGS = ['rgb8', 'bgr8', 'yuv422_yuy2', 'jpeg']
CAMERA_TOPIC = '/bench/camera/image'
CAMERA_NICE0 = '/bench/camera_nice0/image'  # into a vision encoder with model_nice 0
FLOOR_TOPIC = '/bench/floor/image'
MIC = '/bench/mic'
MIC_HQ = '/bench/mic_hq'
MIC_FLOOR = '/bench/floor/audio_stamped'
WINDOW, MODEL_RATE = 512, 16000


def ms(x):
    """Format seconds as milliseconds."""
    return f'{x * 1e3:.1f}' if x == x else '-'


def qos_profile(name, depth=5):
    """Return a reliable or best-effort volatile QoSProfile."""
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy
    return QoSProfile(depth=depth, reliability=QoSReliabilityPolicy.RELIABLE
                      if name == 'reliable' else QoSReliabilityPolicy.BEST_EFFORT)


def stamp_msg(t):
    """Return builtin_interfaces/Time for float seconds."""
    from builtin_interfaces.msg import Time
    ns = int(round(t * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def wait_go():
    """Block until the orchestrator writes a line to stdin (the handshake)."""
    sys.stdin.readline()


def wait_matched(pub, timeout=30.0):
    """Wait until `pub` has matched a subscriber; then a moment for the reader's side."""
    end = time.monotonic() + timeout
    while not pub.get_subscription_count() and time.monotonic() < end:
        time.sleep(0.02)
    time.sleep(0.2)


# ---------------------------------------------------------------------- helper processes

def camera_messages(size, encoding):
    """Return one message per photo, ready to stamp: Image or CompressedImage (jpeg)."""
    from late_fusion_ros.core.image_reference import rgb_to_encoding
    from late_fusion_ros.core.media import camera_frame
    from sensor_msgs.msg import CompressedImage, Image
    width, height = SIZES[size]
    msgs = []
    for name in PHOTOS:
        rgb = camera_frame(name, width, height)
        if encoding == 'jpeg':
            import io
            from PIL import Image as PILImage
            buf = io.BytesIO()
            PILImage.fromarray(rgb).save(buf, format='JPEG', quality=90)
            msgs.append(CompressedImage(format='jpeg', data=buf.getvalue()))
        else:
            data, step = rgb_to_encoding(rgb, encoding)
            msgs.append(Image(height=height, width=width, encoding=encoding, step=step,
                              data=data))
    return msgs


def publish_camera_main(args):
    """Play a camera driver (helper process): `frames` frames at `fps` after 'go'."""
    import rclpy
    rclpy.init()
    node = rclpy.create_node('bench_camera')
    msgs = camera_messages(args.size, args.encoding)
    topic = args.topic + ('/compressed' if args.encoding == 'jpeg' else '')
    pub = node.create_publisher(type(msgs[0]), topic, qos_profile(args.qos))
    print('ready', flush=True)
    wait_go()
    wait_matched(pub)
    sent, t0 = [], time.monotonic()
    for k in range(args.frames):
        delay = t0 + k / args.fps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        msg = msgs[k % len(msgs)]
        now = time.time()
        msg.header.stamp = stamp_msg(now)
        msg.header.frame_id = 'camera_optical_frame'
        try:
            pub.publish(msg)
        except Exception as err:  # noqa: BLE001 - a reliable write can time out under load
            print(f'publish failed: {err}', file=sys.stderr)
            continue
        sent.append(msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)
    time.sleep(0.5)  # let reliable retransmissions finish before the writer goes away
    json.dump({'sent': sent}, open(args.out, 'w'))
    node.destroy_node()
    rclpy.try_shutdown()


def publish_audio_main(args):
    """Play a microphone driver (helper process): speech at `rate` x `channels` in chunks."""
    from audio_common_msgs.msg import AudioDataStamped, AudioInfo
    from late_fusion_ros.core.media import scenario, stereo
    from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
    import rclpy
    rclpy.init()
    node = rclpy.create_node('bench_microphone')
    mono, _ = scenario('speech silence speech', gap=1.0, rate=args.rate)
    reps = int(np.ceil(args.seconds * args.rate / len(mono)))
    mono = np.tile(mono, reps)[:int(args.seconds * args.rate)]
    audio = stereo(mono) if args.channels == 2 else mono[:, None]
    pub = node.create_publisher(AudioDataStamped, args.topic + '/audio_stamped',
                                qos_profile(args.qos, depth=10))
    info = node.create_publisher(AudioInfo, args.topic + '/audio_info', QoSProfile(
        depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
        durability=QoSDurabilityPolicy.TRANSIENT_LOCAL))
    info.publish(AudioInfo(channels=args.channels, sample_rate=args.rate,
                           sample_format='S16LE', bitrate=args.rate * 16 * args.channels,
                           coding_format='wave'))
    print('ready', flush=True)
    wait_go()
    wait_matched(pub)
    chunk = args.chunk
    t0_wall, t0 = time.time(), time.monotonic()
    published = []
    for k in range(len(audio) // chunk):
        # A chunk leaves the microphone when its last sample has been captured.
        delay = t0 + (k + 1) * chunk / args.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        msg = AudioDataStamped()
        msg.header.stamp = stamp_msg(t0_wall + k * chunk / args.rate)
        msg.header.frame_id = 'microphone'
        msg.audio.data = audio[k * chunk:(k + 1) * chunk].astype('<i2').tobytes()
        pub.publish(msg)
        published.append(time.time())
    time.sleep(0.5)
    json.dump({'t0': t0_wall, 'published': published, 'chunk': chunk, 'rate': args.rate},
              open(args.out, 'w'))
    node.destroy_node()
    rclpy.try_shutdown()


def floor_main(args):
    """Run the raw rclpy floor (helper process): a plain subscriber with the publisher's QoS."""
    import threading

    import rclpy
    from rclpy.executors import ExternalShutdownException
    rclpy.init()
    node = rclpy.create_node('bench_floor')
    if args.kind == 'audio':
        from audio_common_msgs.msg import AudioDataStamped as msg_type
    elif args.kind == 'jpeg':
        from sensor_msgs.msg import CompressedImage as msg_type
    else:
        from sensor_msgs.msg import Image as msg_type
    got = []

    def on_msg(msg):
        got.append((time.time(), msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec))

    depth = 10 if args.kind == 'audio' else 5
    node.create_subscription(msg_type, args.topic, on_msg, qos_profile(args.qos, depth))
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    print('ready', flush=True)
    try:
        while not stop.is_set():
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    json.dump({'got': got}, open(args.out, 'w'))
    node.destroy_node()
    rclpy.try_shutdown()


class Helper:
    """A helper process of this file (publisher or floor) driven over stdin."""

    def __init__(self, mode, *extra):
        self.out = tempfile.mktemp(suffix='.json')
        self.proc = subprocess.Popen([sys.executable, HERE, mode, '--out', self.out, *extra],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if line != 'ready':
            raise RuntimeError(f'{mode} helper failed to start ({self.proc.wait()})')

    def go(self):
        """Release the handshake."""
        self.proc.stdin.write('go\n')
        self.proc.stdin.flush()

    def result(self, timeout=120.0):
        """Wait for the helper to finish and return its JSON."""
        self.proc.wait(timeout)
        with open(self.out) as f:
            data = json.load(f)
        os.unlink(self.out)
        return data


# ---------------------------------------------------------------------- the orchestrator

class Bench:
    """Runs our nodes with defaults, listens to their embeddings and diagnostics."""

    def __init__(self, log_dir):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from late_fusion_msgs.msg import Embedding
        from late_fusion_ros.bringup import node_specs, NodeSpec
        from late_fusion_ros.bringup.launcher import ProcessGroup
        from late_fusion_ros.shared.qos import EMBEDDING_QOS
        self.node = rclpy.create_node('bench_drivers')
        self.embeddings = {}  # node name -> [(receipt, stamp ns)]
        self.diag = {}
        specs = {s.name: s for s in node_specs(MIC + '/audio_stamped', MIC + '/audio_info',
                                               CAMERA_TOPIC)}
        vision, audio = specs['vision_encoder'], specs['audio_encoder']
        files = vision.params_files
        wanted = [
            NodeSpec('vision_encoder_node', 'vision_encoder', [('image', CAMERA_TOPIC),
                     ('embedding', '/bench/out/vision_encoder')], files),
            NodeSpec('vision_encoder_node', 'vision_encoder_jpeg', [('image', CAMERA_TOPIC),
                     ('embedding', '/bench/out/vision_encoder_jpeg')], files,
                     {'image_transport': 'compressed'}),
            NodeSpec('vision_encoder_node', 'vision_encoder_nice0', [('image', CAMERA_NICE0),
                     ('embedding', '/bench/out/vision_encoder_nice0')], files,
                     {'model_nice': 0}),
            NodeSpec('audio_encoder_node', 'audio_encoder', [
                ('audio_stamped', MIC + '/audio_stamped'), ('audio_info', MIC + '/audio_info'),
                ('embedding', '/bench/out/audio_encoder')], files),
            NodeSpec('audio_encoder_node', 'audio_encoder_hq', [
                ('audio_stamped', MIC_HQ + '/audio_stamped'),
                ('audio_info', MIC_HQ + '/audio_info'),
                ('embedding', '/bench/out/audio_encoder_hq')], files,
                {'resampler': 'soxr_hq'}),
        ]
        assert dict(audio.remappings)['audio_stamped'] == MIC + '/audio_stamped'
        self.group = ProcessGroup(log_dir=log_dir)
        for spec in wanted:
            self.group.start(spec)
            box = self.embeddings.setdefault(spec.name, [])
            self.node.create_subscription(
                Embedding, f'/bench/out/{spec.name}',
                lambda m, box=box: box.append(
                    (time.time(), m.header.stamp.sec * 10**9 + m.header.stamp.nanosec)),
                EMBEDDING_QOS)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 50)
        self.executor = spin_in_background(self.node)
        self.log_dir = log_dir

    def _on_diag(self, msg):
        merged = {}  # a node's stages arrive in one array: merge them
        for status in msg.status:
            name = status.hardware_id.rsplit('/', 1)[-1]
            merged.setdefault(name, {}).update({kv.key: kv.value for kv in status.values})
        for name, values in merged.items():
            self.diag[name] = (values, time.time())

    def counter(self, node, key):
        """Return the node's latest diagnostic counter `key` (0 when absent)."""
        try:
            return int(self.diag.get(node, ({}, 0))[0].get(key, 0))
        except ValueError:
            return 0

    def fresh_diag(self, node, after, timeout=10.0):
        """Wait for a diagnostics message of `node` newer than `after`."""
        end = time.time() + timeout
        while time.time() < end:
            if self.diag.get(node, ({}, 0))[1] > after:
                return True
            time.sleep(0.05)
        return False

    def wait_ready(self, timeout=120.0):
        """Wait until every node publishes diagnostics (models warm, subscriptions pending)."""
        end = time.time() + timeout
        names = list(self.embeddings)
        while time.time() < end:
            if any(code is not None for code in self.group.alive().values()):
                raise RuntimeError(f'a node died: {self.group.alive()}')
            if all(n in self.diag for n in names):
                return
            time.sleep(0.2)
        raise RuntimeError(f'nodes not up: {sorted(self.diag)}')

    def wait_subscribed(self, node, topic, reliability, timeout=30.0):
        """
        Wait until `node` subscribes `topic` with the reliability it should adapt to.

        The node keeps its subscription while no publisher exists and re-adapts within half
        a second of a new publisher appearing; a row starts once that has happened.
        """
        from late_fusion_ros.shared.adaptive_subscription import qos_name
        end = time.time() + timeout
        while time.time() < end:
            subs = [i for i in self.node.get_subscriptions_info_by_topic(topic)
                    if i.node_name == node and qos_name(i.qos_profile.reliability) ==
                    reliability]
            if subs:
                # Let the node's diagnostics confirm the adapted QoS, then the readers' side
                # of discovery has seen the writer too.
                self.fresh_diag(node, time.time(), 3.0)
                return subs[0].qos_profile
            time.sleep(0.05)
        raise RuntimeError(f'{node} did not subscribe {topic}')

    def close(self):
        """Stop the nodes; return their exit codes."""
        codes = self.group.stop()
        self.executor.shutdown()
        self.node.destroy_node()
        return codes


def camera_row(bench, size, encoding, qos, frames):
    """One camera row: ours (vision_encoder_node defaults) then the raw floor."""
    from late_fusion_ros.shared.adaptive_subscription import qos_name
    name = 'vision_encoder_jpeg' if encoding == 'jpeg' else 'vision_encoder'
    suffix = '/compressed' if encoding == 'jpeg' else ''
    args = ['--size', size, '--encoding', encoding, '--qos', qos, '--frames', str(frames)]
    # Ours.
    pub = Helper('--publish-camera', '--topic', CAMERA_TOPIC, *args)
    sub_qos = bench.wait_subscribed(name, CAMERA_TOPIC + suffix, qos)
    bench.fresh_diag(name, time.time())
    before = bench.counter(name, 'received')
    lost_before = bench.counter(name, 'lost')
    box = bench.embeddings[name]
    start = len(box)
    pub.go()
    sent = set(pub.result()['sent'])
    time.sleep(1.0)
    bench.fresh_diag(name, time.time())
    received = bench.counter(name, 'received') - before
    lost = bench.counter(name, 'lost') - lost_before
    lat = np.array([(t - ns * 1e-9) for t, ns in box[start:] if ns in sent])
    # The floor: the same payload to a raw rclpy subscriber with the publisher's QoS.
    floor = Helper('--floor', '--topic', FLOOR_TOPIC + suffix, '--qos', qos, '--kind',
                   'jpeg' if encoding == 'jpeg' else 'image')
    pub = Helper('--publish-camera', '--topic', FLOOR_TOPIC, *args)
    pub.go()
    floor_sent = set(pub.result()['sent'])
    time.sleep(1.0)
    floor.go()
    got = [(t, ns) for t, ns in floor.result()['got'] if ns in floor_sent]
    flat = np.array([t - ns * 1e-9 for t, ns in got])
    n = max(1, len(sent))
    return (size, encoding, qos, qos_name(sub_qos.reliability), len(sent),
            f'{received / n:.1%}', f'{len(got) / max(1, len(floor_sent)):.1%}',
            lost, len(lat), ms(pct(lat, 50)), ms(pct(lat, 99)), ms(pct(flat, 50)),
            ms(pct(flat, 99)))


def audio_row(bench, rate, channels, chunk, seconds, node='audio_encoder', busy=None):
    """One microphone row: node-added latency, capture-to-embedding, losses; and the floor."""
    topic = MIC_HQ if node == 'audio_encoder_hq' else MIC
    args = ['--rate', str(rate), '--channels', str(channels), '--chunk', str(chunk),
            '--seconds', str(seconds), '--qos', 'reliable']
    pub = Helper('--publish-audio', '--topic', topic, *args)
    bench.wait_subscribed(node, topic + '/audio_stamped', 'reliable')
    # Wait until the node applied this row's AudioInfo (latched) before the clock starts.
    end = time.time() + 10
    while time.time() < end and not (
            bench.counter(node, 'sample_rate') == rate and
            bench.counter(node, 'channels') == channels):
        time.sleep(0.05)
    bench.fresh_diag(node, time.time())
    keys = ('chunks', 'lost_samples', 'lost_chunks', 'skipped_windows')
    before = {k: bench.counter(node, k) for k in keys}
    box = bench.embeddings[node]
    start = len(box)
    camera = None
    if busy:
        size, vision = busy
        cam_topic = CAMERA_NICE0 if vision == 'vision_encoder_nice0' else CAMERA_TOPIC
        camera = Helper('--publish-camera', '--topic', cam_topic, '--size', size,
                        '--encoding', 'rgb8', '--qos', 'reliable',
                        '--frames', str(int((seconds + 2) * 30)))
        bench.wait_subscribed(vision, cam_topic, 'reliable')
        camera.go()
        time.sleep(1.0)  # the camera stream is running before the microphone starts
    pub.go()
    res = pub.result()
    if camera is not None:
        camera.result()
    time.sleep(1.0)
    bench.fresh_diag(node, time.time())
    after = {k: bench.counter(node, k) for k in keys}
    t0, published = res['t0'], np.array(res['published'])
    added, capture = [], []
    for receipt, ns in box[start:]:
        stamp = ns * 1e-9
        if stamp < t0 - 1e-6:
            continue
        last = stamp + (WINDOW - 1) / MODEL_RATE  # capture time of the window's last sample
        k = int(np.floor((last - t0) * rate / chunk + 1e-9))
        if 0 <= k < len(published):
            added.append(receipt - published[k])
            capture.append(receipt - stamp)
    added, capture = np.array(added), np.array(capture)
    sent = len(published)
    expected = int(sent * chunk * MODEL_RATE / rate) // WINDOW
    lost = (after['lost_samples'] - before['lost_samples'] +
            (sent - (after['chunks'] - before['chunks'])) * chunk)
    # The floor: the same chunks to a raw rclpy subscriber (one hop, no processing).
    floor = Helper('--floor', '--topic', MIC_FLOOR, '--qos', 'reliable', '--kind', 'audio')
    fpub = Helper('--publish-audio', '--topic', MIC_FLOOR.rsplit('/', 1)[0], '--rate',
                  str(rate), '--channels', str(channels), '--chunk', str(chunk), '--seconds',
                  str(min(seconds, 4.0)), '--qos', 'reliable')
    fpub.go()
    fres = fpub.result()
    floor.go()
    fgot = floor.result()['got']
    fpublished = fres['published']
    # Matched by stamp, not by order: a chunk the floor missed must not shift the others.
    fk = [(t, int(round((ns * 1e-9 - fres['t0']) * rate / chunk))) for t, ns in fgot]
    flat = np.array([t - fpublished[k] for t, k in fk if 0 <= k < len(fpublished)])
    return (f'{rate / 1000:g} kHz', channels, f'{chunk} ({chunk / rate * 1e3:.1f} ms)',
            ms(pct(added, 50)), ms(pct(added, 99)), ms(pct(capture, 50)), ms(pct(capture, 99)),
            f'{len(capture)}/{expected}', lost, after['skipped_windows'] -
            before['skipped_windows'], ms(pct(flat, 50)), ms(pct(flat, 99)))


def speech_scores():
    """Silero VAD on the same speech through the 16 kHz path and the 44.1/48 kHz paths."""
    from late_fusion_ros.core.audio import AudioStream, StreamFormat
    from late_fusion_ros.core.encoders import make_audio_encoder
    from late_fusion_ros.core.media import scenario, stereo
    import torch
    torch.set_num_threads(1)
    enc = make_audio_encoder('silero_vad')
    rows, reference = [], None
    for rate, channels, resampler in ((16000, 1, 'iir'), (48000, 2, 'iir'),
                                      (44100, 2, 'iir'), (48000, 2, 'soxr_hq'),
                                      (44100, 2, 'soxr_hq')):
        mono, segments = scenario('silence speech silence speech noise speech', gap=1.5,
                                  rate=rate)
        audio = stereo(mono) if channels == 2 else mono[:, None]
        stream = AudioStream(512, 512, 16000, StreamFormat(rate, channels, 'S16LE'),
                             resampler=resampler)
        chunk = 1024 if rate != 16000 else 512
        probs, stamps = [], []
        enc.reset()
        for k in range(len(audio) // chunk):
            for frame in stream.push(audio[k * chunk:(k + 1) * chunk].astype('<i2').tobytes(),
                                     k * chunk / rate, 0.0):
                probs.append(enc.encode(frame.samples).scores[0])
                stamps.append(frame.stamp)
        probs, stamps = np.array(probs), np.array(stamps)
        kind = np.array([next((s.kind for s in segments if s.start + 0.2 <= t <= s.end - 0.2),
                              '') for t in stamps])
        if reference is None:
            reference = probs
        n = min(len(probs), len(reference))
        agree = np.mean((probs[:n] > 0.5) == (reference[:n] > 0.5))
        rows.append((f'{rate / 1000:g} kHz x {channels}', resampler,
                     f'{probs[kind == "speech"].mean():.3f}',
                     f'{probs[kind == "silence"].mean():.3f}',
                     f'{probs[kind == "noise"].mean():.3f}', f'{agree:.1%}'))
    table('speech: silero VAD P(speech) on the same espeak-ng speech, by input path (no ROS)',
          ['input', 'resampler', 'speech', 'silence', 'noise', 'decisions = 16 kHz'], rows)


def main():
    """Run the tables (or one helper process when called with a helper flag)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--quick', action='store_true', help='fewer rows, shorter runs')
    parser.add_argument('--frames', type=int, default=300, help='frames per camera row')
    parser.add_argument('--audio-seconds', type=float, default=8.0)
    parser.add_argument('--only', choices=('camera', 'audio', 'speech'))
    helpers = parser.add_argument_group('helper processes (started by the benchmark)')
    helpers.add_argument('--publish-camera', action='store_true')
    helpers.add_argument('--publish-audio', action='store_true')
    helpers.add_argument('--floor', action='store_true')
    for flag, kind in (('--out', str), ('--topic', str), ('--size', str), ('--encoding', str),
                       ('--qos', str), ('--fps', float), ('--rate', int), ('--channels', int),
                       ('--chunk', int), ('--seconds', float), ('--kind', str)):
        helpers.add_argument(flag, type=kind, default=30.0 if flag == '--fps' else None)
    args = parser.parse_args()
    if args.publish_camera:
        return publish_camera_main(args)
    if args.publish_audio:
        return publish_audio_main(args)
    if args.floor:
        return floor_main(args)

    os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(150, 230)))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    started = time.time()
    if args.only in (None, 'speech'):
        speech_scores()
    if args.only == 'speech':
        return 0
    import rclpy
    rclpy.init()
    print(f'[ROS_DOMAIN_ID={os.environ["ROS_DOMAIN_ID"]}; nodes with config/late_fusion.yaml '
          'defaults, publishers in their own processes]', flush=True)
    with tempfile.TemporaryDirectory() as log_dir:
        bench = Bench(log_dir)
        try:
            bench.wait_ready()
            if args.only in (None, 'camera'):
                rows = []
                sizes = ['640x480', '1280x720'] if args.quick else list(SIZES)
                for size in sizes:
                    for encoding in ENCODINGS:
                        for qos in ('reliable', 'best_effort'):
                            frames = args.frames if qos == 'reliable' else args.frames // 2
                            rows.append(camera_row(bench, size, encoding, qos, frames))
                            print('  ' + ' | '.join(str(c) for c in rows[-1]), flush=True)
                table('camera at 30 fps into vision_encoder_node (defaults) vs the raw rclpy '
                      'floor (same payload, publisher QoS); latency = capture -> embedding '
                      '(ours) or -> receipt (floor), ms',
                      ['size', 'encoding', 'publisher', 'node subscribed', 'sent',
                       'node got', 'floor got', 'lost (node)', 'embeddings', 'p50', 'p99',
                       'floor p50', 'floor p99'], rows)
            if args.only in (None, 'audio'):
                mics = [(16000, 1, 512), (16000, 1, 160), (44100, 2, 1024), (48000, 1, 480),
                        (48000, 2, 1024), (48000, 2, 3072), (44100, 1, 441),
                        (44100, 2, 2822)]
                if args.quick:
                    mics = [(16000, 1, 512), (48000, 2, 1024), (44100, 2, 1024)]
                header = ['microphone', 'ch', 'chunk frames', 'added p50', 'added p99',
                          'capture p50', 'capture p99', 'windows', 'samples lost',
                          'skipped', 'floor p50', 'floor p99']
                busy_title = (', while a 1280x720 rgb8 camera streams at 30 fps into '
                              'vision_encoder_node')
                title = ('microphone into audio_encoder_node (defaults): node-added = chunk '
                         "holding the window's last sample published -> embedding received; "
                         'capture = window start -> embedding received (ms)')
                rows = []
                for rate, channels, chunk in mics:
                    rows.append(audio_row(bench, rate, channels, chunk, args.audio_seconds))
                    print('  ' + ' | '.join(str(c) for c in rows[-1]), flush=True)
                table(title, header, rows)
                # The vision model thread at model_nice 10 (the default) and at 0, row by
                # row in turns: the slow sense yielding the CPU to the fast one.
                busy = {'vision_encoder': [], 'vision_encoder_nice0': []}
                for rate, channels, chunk in mics:
                    for vision, rows in busy.items():
                        rows.append(audio_row(bench, rate, channels, chunk, args.audio_seconds,
                                              busy=('1280x720', vision)))
                        print(f'  {vision}: ' + ' | '.join(str(c) for c in rows[-1]),
                              flush=True)
                table(title + busy_title + ' (model_nice 10, the default)', header,
                      busy['vision_encoder'])
                table(title + busy_title + ' with model_nice 0', header,
                      busy['vision_encoder_nice0'])
                ratios = [(f'{a[0]} {a[1]} ch {a[2]}',
                           *(f'{float(b[k]) / float(a[k]):.2f}' if a[k] != '-' and b[k] != '-'
                             and float(a[k]) else '-' for k in (3, 4, 5, 6)))
                          for a, b in zip(busy['vision_encoder'], busy['vision_encoder_nice0'])]
                table('busy camera: model_nice 0 / model_nice 10 (above 1: the default is '
                      'faster)', ['microphone', 'added p50', 'added p99', 'capture p50',
                                  'capture p99'], ratios)
                rows = []
                for rate, channels, chunk in ((48000, 2, 1024), (44100, 2, 1024)):
                    for node in ('audio_encoder', 'audio_encoder_hq'):
                        row = audio_row(bench, rate, channels, chunk, args.audio_seconds, node)
                        rows.append(('iir (default)' if node == 'audio_encoder' else
                                     'soxr_hq',) + row[:7])
                        print('  ' + ' | '.join(str(c) for c in rows[-1]), flush=True)
                table('resampler: node-added latency (ms), iir (default) against soxr HQ',
                      ['resampler'] + header[:7], rows)
        finally:
            codes = bench.close()
    print(f'\nnode exit codes {codes}; total {time.time() - started:.0f} s')
    return 0 if not any(codes.values()) else 1


if __name__ == '__main__':
    sys.exit(main())
