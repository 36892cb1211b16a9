# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Benchmark of speech to text: accuracy, latency, CPU, and what it costs the audio path.

For Whisper tiny.en and base (from their wheels), each with the full 30 s encoder window and
the shorter audio context (`audio_context`, see core/transcription/whisper.py):

1. Word error rate of the streaming finals on a fixed set of espeak-ng clips in two voices
   (en-us, en-gb+f3): clean, with sox pink noise mixed at 10 dB SNR (the same noise on
   every run), and pairs of sentences with a 1.2 s pause (which must give two finals).
   The transcriber runs as in the node (silero VAD per 32 ms window, StreamingTranscriber),
   offline.
2. Streaming in real time (a feeder thread delivers 32 ms windows when their last sample is
   "captured", the decoder thread runs niced as in the node): end-of-speech to final
   latency p50/p99 (targets 1.0 s / 1.5 s), speculative finals, partial cadence, CPU share.
3. Over DDS with real nodes: audio_encoder_node and vision_encoder_node (640x480 rgb8 photos
   at 15 fps, reliable) run throughout; rounds with no transcription_node and with one per
   model alternate. The audio encoder's added latency (embedding receipt minus the capture
   of the window's last sample) with transcription on/off gives the ratio the issue bounds
   (p99 within 1.2x); the transcription node's own final latency under that load too.

    python bench/bench_transcription.py [--quick] [--models tiny.en base] [--no-dds]
        [--only-dds --variants tiny.en:0:2 tiny.en:10:2 tiny.en:10:1]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import pct, spin_in_background, table, wait_for
import numpy as np

RATE, WINDOW = 16000, 512
VOICES = ['en-us', 'en-gb+f3']
SENTENCES = [
    'Hello robot, can you hear me?',
    'Robot, stop.',
    'Please bring me the coffee cup from the kitchen table.',
    'Come here please, I need some help with the dishes.',
    'Turn left at the door and stop next to the cat.',
    'What time is it in London right now?',
    'Open the window and turn off the lights in the living room.',
    'Can you find my keys? I think I left them near the sofa.',
    'Hey robot, follow me to the garage.',
    'After lunch we will clean the garden and water the flowers.',
]
PAUSE = 1.2          # seconds between the sentences of a paused clip (> endpoint_silence)
SNR_DB = 10.0


# ---------------------------------------------------------------------------- media
def voiced(text, voice):
    """Return espeak-ng speech as float32 at 16 kHz, trimmed to where it is audible."""
    from late_fusion_ros.core.media import speech
    s = speech(text, RATE, voice)
    loud = np.flatnonzero(np.abs(s) > 500)
    return (s[loud[0]:loud[-1] + 1] if len(loud) else s).astype(np.float32) / 32768


_NOISE = []


def pink_noise():
    """Return 30 s of sox pink noise, the same on every run (sox -R: repeatable)."""
    if not _NOISE:
        from scipy.io import wavfile
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, 'pink.wav')
            subprocess.run(['sox', '-R', '-n', '-r', str(RATE), '-c', '1', '-b', '16', out,
                            'synth', '30', 'pinknoise', 'vol', '0.5'], check=True)
            _NOISE.append(wavfile.read(out)[1].astype(np.float32))
    return _NOISE[0]


def with_noise(audio, snr_db, seed):
    """Mix a fixed stretch (by `seed`) of pink noise into `audio` at `snr_db` SNR."""
    n = np.roll(pink_noise(), seed * 4099)[:len(audio)]
    gain = np.sqrt(np.mean(audio ** 2) / (np.mean(n ** 2) * 10 ** (snr_db / 10)))
    return np.clip(audio + gain * n, -1.0, 1.0).astype(np.float32)


def make_clips(quick):
    """Return {condition: [(reference text, audio, sentences)]}; audio padded with silence."""
    # 1 s of silence after the speech: more than endpoint_silence, so the final comes.
    lead, pad = np.zeros(int(0.5 * RATE), np.float32), np.zeros(RATE, np.float32)
    sentences = SENTENCES[:3] if quick else SENTENCES
    clean, noisy, paused = [], [], []
    for v, voice in enumerate(VOICES):
        for k, text in enumerate(sentences):
            a = voiced(text, voice)
            clean.append((text, np.concatenate([lead, a, pad]), 1))
            noisy.append((text, np.concatenate([lead, with_noise(a, SNR_DB, 10 * v + k), pad]),
                          1))
        pairs = [(2, 3), (4, 8)] if not quick else [(0, 1)]
        for i, j in pairs:
            gap = np.zeros(int(PAUSE * RATE), np.float32)
            a = np.concatenate([lead, voiced(SENTENCES[i], voice), gap,
                                voiced(SENTENCES[j], voice), pad])
            paused.append((f'{SENTENCES[i]} {SENTENCES[j]}', a, 2))
    return {'clean': clean, f'noise {SNR_DB:g} dB': noisy, 'with pauses': paused}


# ---------------------------------------------------------------------------- offline WER
def offline_finals(recognizer, vad, audio):
    """Stream `audio` through VAD and StreamingTranscriber; return the finals' texts."""
    from late_fusion_ros.core.transcription import StreamingConfig, StreamingTranscriber
    # Partials do not change the finals here (no utterance reaches max_segment): skip them.
    tr = StreamingTranscriber(recognizer.transcribe, StreamingConfig(partial_interval=1e6))
    vad.reset()
    out = []
    for k in range(len(audio) // WINDOW):
        w = audio[k * WINDOW:(k + 1) * WINDOW]
        tr.push(w, k * WINDOW / RATE, float(vad.encode(w).scores[0]))
        out += [r.text for r in tr.process() if r.final]
    while tr.pending():
        out += [r.text for r in tr.process() if r.final]
    return out, list(tr.decode_times)


def bench_wer(recognizer, vad, clips):
    """Part 1 for one model: WER per condition, finals per clip, decode time."""
    from late_fusion_ros.core.transcription import word_errors
    result = {}
    for condition, items in clips.items():
        edits = words = right_count = 0
        times = []
        for ref, audio, n_utt in items:
            finals, dt = offline_finals(recognizer, vad, audio)
            e, n = word_errors(ref, ' '.join(finals))
            edits, words = edits + e, words + n
            right_count += len(finals) == n_utt
            times += dt
        result[condition] = (edits / max(words, 1), right_count, len(items), times)
    return result


# ---------------------------------------------------------------------------- real time
def realtime_script(quick):
    """Return (audio, [end of speech, s]) of utterances 1.5 s apart in alternating voices."""
    order = [2, 0, 4, 1] if quick else [2, 0, 4, 1, 6, 3, 8, 5, 7, 9, 0, 2]
    parts, ends, t = [np.zeros(int(0.5 * RATE), np.float32)], [], 0.5
    for n, k in enumerate(order):
        a = voiced(SENTENCES[k], VOICES[n % 2])
        t += len(a) / RATE
        ends.append(t)
        parts += [a, np.zeros(int(1.5 * RATE), np.float32)]
        t += 1.5
    return np.concatenate(parts), ends


def bench_realtime(load, vad, audio, ends, nice):
    """Part 2 for one model: feed windows in real time to a niced decoder thread."""
    from late_fusion_ros.core.handover import lower_thread_priority, Mailbox
    from late_fusion_ros.core.transcription import StreamingTranscriber
    box = Mailbox(100000)
    published = []  # (wall time, Transcript)
    ready = threading.Event()
    trs = []

    def decode():
        # As in the node: niced first, then the model loaded, so its threads inherit it.
        lower_thread_priority(nice)
        rec = load()
        rec.warmup()
        trs.append(StreamingTranscriber(rec.transcribe))
        tr = trs[0]
        ready.set()
        while (item := box.get()) is not None:
            tr.push(*item)
            while len(box):
                item = box.get(timeout=0)
                if item is None:
                    break
                tr.push(*item)
            for r in tr.process():
                published.append((time.time(), r))

    worker = threading.Thread(target=decode, daemon=True)
    worker.start()
    ready.wait()
    tr = trs[0]
    vad.reset()
    cpu0, t0 = os.times(), time.time()
    for k in range(len(audio) // WINDOW):
        delay = t0 + (k + 1) * WINDOW / RATE - time.time()
        if delay > 0:
            time.sleep(delay)
        w = audio[k * WINDOW:(k + 1) * WINDOW]
        box.put((w, t0 + k * WINDOW / RATE, float(vad.encode(w).scores[0])))
    deadline = time.time() + 10.0
    while time.time() < deadline and sum(r.final for _, r in published) < len(ends):
        time.sleep(0.05)
    cpu1, wall = os.times(), time.time() - t0
    box.close()
    worker.join(timeout=10.0)
    finals = [(t, r) for t, r in published if r.final]
    latency = []
    for end in ends:  # the final whose utterance holds this end of speech
        match = [t for t, r in finals if r.start - t0 <= end <= r.end - t0 + 0.3]
        if match:
            latency.append(match[0] - (t0 + end))
    intervals = []
    by_utt = {}
    for t, r in published:
        if not r.final:
            by_utt.setdefault(r.utterance_id, []).append(t)
    for times in by_utt.values():
        intervals += list(np.diff(times))
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / wall
    return {'latency': latency, 'finals': len(finals), 'expected': len(ends),
            'partials': sum(len(v) for v in by_utt.values()), 'intervals': intervals,
            'cpu': cpu, 'counts': dict(tr.counts)}


# ---------------------------------------------------------------------------- over DDS
class Driver:
    """The bench's node: a microphone; records embeddings and transcripts."""

    def __init__(self):
        import rclpy
        from audio_common_msgs.msg import AudioDataStamped, AudioInfo
        from late_fusion_msgs.msg import Embedding, Transcript
        from late_fusion_ros.shared.qos import EMBEDDING_QOS
        from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
        self.node = rclpy.create_node('bench_transcription_driver')
        self.audio_pub = self.node.create_publisher(AudioDataStamped, 'bench/mic/audio', 50)
        self.info_pub = self.node.create_publisher(AudioInfo, 'bench/mic/audio_info', QoSProfile(
            depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
            durability=QoSDurabilityPolicy.TRANSIENT_LOCAL))
        self.info_pub.publish(AudioInfo(channels=1, sample_rate=RATE, sample_format='S16LE',
                                        bitrate=RATE * 16, coding_format='wave'))
        self.audio = []        # (receive time, window stamp)
        self.transcripts = []  # (receive time, Transcript)
        self.vision = 0
        self.node.create_subscription(Embedding, 'bench/audio/embedding', self._on_audio,
                                      EMBEDDING_QOS)
        self.node.create_subscription(Embedding, 'bench/vision/embedding', self._on_vision,
                                      EMBEDDING_QOS)
        self.node.create_subscription(Transcript, 'bench/speech/transcript',
                                      lambda m: self.transcripts.append((time.time(), m)),
                                      EMBEDDING_QOS)
        self.executor = spin_in_background(self.node)

    def _on_audio(self, msg):
        s = msg.header.stamp
        self.audio.append((time.time(), s.sec + s.nanosec * 1e-9))

    def _on_vision(self, msg):
        self.vision += 1

    def play(self, audio):
        """Publish `audio` in real time (512-sample chunks); return the start time."""
        from audio_common_msgs.msg import AudioDataStamped
        pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype('<i2')
        t0 = time.time()
        for k in range(len(pcm) // WINDOW):
            delay = t0 + (k + 1) * WINDOW / RATE - time.time()
            if delay > 0:
                time.sleep(delay)
            msg = AudioDataStamped()
            ns = int((t0 + k * WINDOW / RATE) * 1e9)
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 10**9)
            msg.header.frame_id = 'microphone'
            msg.audio.data = pcm[k * WINDOW:(k + 1) * WINDOW].tobytes()
            self.audio_pub.publish(msg)
        return t0

    def close(self):
        """Stop spinning and destroy the node."""
        self.executor.shutdown()
        self.node.destroy_node()


def bench_dds(variants, rounds, seconds, fps, log_dir):
    """
    Part 3: audio encoder latency with transcription off / on, vision busy.

    `variants`: 'model[:nice[:threads]]' strings, each a transcription_node configuration;
    rounds of [off] + variants alternate so that the machine's load drifts into all alike.
    """
    import rclpy
    from late_fusion_ros.bringup import node_specs
    from late_fusion_ros.bringup.launcher import ProcessGroup
    specs = {s.name: s for s in node_specs('bench/mic/audio', 'bench/mic/audio_info',
                                           'bench/cam/image', transcribe=True)}
    for name, spec in specs.items():
        spec.remappings = [(a, 'bench/' + b if b.endswith(('embedding', 'transcript')) else b)
                           for a, b in spec.remappings]
    audio, ends = realtime_script(quick=seconds < 15)
    audio = np.tile(audio, int(np.ceil(seconds * RATE / len(audio))))[:int(seconds * RATE)]
    ends = [e for e in ends if e < seconds - 1.0]
    rclpy.init()
    drv = Driver()
    always = ProcessGroup(log_dir=log_dir)
    results = {}
    camera = None
    try:
        always.start(specs['audio_encoder'])
        always.start(specs['vision_encoder'])
        if not wait_for(lambda: drv.audio_pub.get_subscription_count() >= 1, 120.0):
            raise RuntimeError(f'encoders did not come up: {always.alive()}')
        # The camera is its own process, as camera and microphone drivers are: published from
        # the microphone's process, 640x480 frames delayed its audio chunks in the middleware
        # by up to 1.5 s (a raw rclpy subscriber of the audio saw the same), which measured
        # Fast DDS, not the nodes.
        camera = subprocess.Popen([sys.executable, __file__, '--publish-camera', str(fps)])
        if not wait_for(lambda: drv.vision > 0, 120.0):
            raise RuntimeError(f'no camera frame encoded: {always.alive()}')
        drv.play(audio[:RATE * 2])  # warm-up: DDS, first windows
        for _ in range(rounds):
            for variant in [None] + list(variants):
                group = None
                if variant is not None:
                    model, nice, threads = (variant.split(':') + ['10', '2'])[:3]
                    group = ProcessGroup(log_dir=os.path.join(log_dir, variant))
                    spec = specs['transcription']
                    spec.parameters.update(model=model, decode_nice=int(nice),
                                           cpu_threads=int(threads))
                    group.start(spec)
                    if not wait_for(lambda: drv.audio_pub.get_subscription_count() >= 2, 120.0):
                        raise RuntimeError(f'transcription_node ({variant}) did not come up')
                n_audio, n_tr = len(drv.audio), len(drv.transcripts)
                t0 = drv.play(audio)
                wait_for(lambda: len(drv.audio) - n_audio >= len(audio) // WINDOW - 1, 5.0)
                if variant is not None:
                    wait_for(lambda: sum(m.final for _, m in drv.transcripts[n_tr:]) >= len(ends),
                             10.0)
                    group.stop()
                r = results.setdefault(variant or 'off', {'lat': [], 'final': [], 'missing': 0})
                got = [(t, s) for t, s in drv.audio[n_audio:] if s >= t0 + 1.0]
                r['lat'] += [t - (s + WINDOW / RATE) for t, s in got]
                r['missing'] += max(0, len(audio) // WINDOW - len(drv.audio[n_audio:]))
                finals = [(t, m) for t, m in drv.transcripts[n_tr:] if m.final]
                for end in ends:
                    hit = [t for t, m in finals
                           if m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 - t0 <= end
                           <= m.end.sec + m.end.nanosec * 1e-9 - t0 + 0.3]
                    if hit:
                        r['final'].append(hit[0] - (t0 + end))
    finally:
        if camera is not None:
            camera.terminate()
            camera.wait(10)
        always.stop()
        drv.close()
        rclpy.try_shutdown()
    return results


def publish_camera_main(fps):
    """Play a camera driver (the helper process of part 3): 640x480 rgb8, reliable."""
    import rclpy
    from late_fusion_ros.core.media import camera_frame
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node('bench_transcription_camera')
    pub = node.create_publisher(Image, 'bench/cam/image', QoSProfile(
        depth=5, reliability=QoSReliabilityPolicy.RELIABLE))
    photo = camera_frame('astronaut', 640, 480)
    frame = Image(height=480, width=640, encoding='rgb8', step=640 * 3, data=photo.tobytes())
    t0, k = time.monotonic(), 0
    try:
        while rclpy.ok():
            frame.header.stamp = node.get_clock().now().to_msg()
            pub.publish(frame)
            k += 1
            time.sleep(max(0.0, t0 + k / fps - time.monotonic()))
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    node.destroy_node()
    rclpy.try_shutdown()


# ---------------------------------------------------------------------------- main
def main():
    """Run the three parts and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='a short run (~3 minutes)')
    parser.add_argument('--models', nargs='+', default=['tiny.en', 'base'])
    parser.add_argument('--contexts', nargs='+', type=float, default=[30.0, 10.0],
                        help='audio_context values (s) to compare in parts 1 and 2')
    parser.add_argument('--threads', type=int, default=2, help='cpu_threads of the decoder')
    parser.add_argument('--nice', type=int, default=10, help='decode_nice')
    parser.add_argument('--no-dds', action='store_true', help='skip part 3')
    parser.add_argument('--only-dds', action='store_true', help='run part 3 alone')
    parser.add_argument('--no-realtime', action='store_true', help='skip part 2')
    parser.add_argument('--variants', nargs='+', default=None,
                        help="part 3: transcription_node settings 'model[:nice[:threads]]' "
                        '(default: each model with nice 10 and 2 threads)')
    parser.add_argument('--dds-seconds', type=float, default=None)
    parser.add_argument('--fps', type=float, default=15.0, help='part 3: camera frame rate')
    parser.add_argument('--publish-camera', type=float, default=None, metavar='FPS',
                        help=argparse.SUPPRESS)  # part 3's camera process
    args = parser.parse_args()
    if args.publish_camera is not None:
        return publish_camera_main(args.publish_camera)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    import torch
    from late_fusion_ros.core.encoders import make_audio_encoder
    from late_fusion_ros.core.transcription import WhisperRecognizer
    torch.set_num_threads(1)
    vad = make_audio_encoder('silero_vad')
    clips = make_clips(args.quick)
    rt_audio, rt_ends = realtime_script(args.quick)
    kinds = ', '.join(f'{k}: {len(v)}' for k, v in clips.items())
    print(f'{sum(len(v) for v in clips.values())} clips ({kinds}); real-time script '
          f'{len(rt_audio) / RATE:.0f} s, {len(rt_ends)} utterances; decoder {args.threads} '
          f'threads, nice +{args.nice}', flush=True)
    wer_rows, rt_rows = [], []
    for model in [] if args.only_dds else args.models:
        for context in args.contexts:
            rec = WhisperRecognizer(model, cpu_threads=args.threads, audio_context=context)
            rec.warmup()
            name = f'{model}, {context:g} s'
            w = bench_wer(rec, vad, clips)
            times = [t for v in w.values() for t in v[3]]
            wer_rows.append([name] + [f'{v[0] * 100:.1f} %' for v in w.values()] +
                            [f'{v[1]}/{v[2]}' for k, v in w.items() if k == 'with pauses'] +
                            [f'{pct(times, 50) * 1e3:.0f}'])
            print(f'  done: {name} part 1', flush=True)
            if args.no_realtime:
                continue
            rt = bench_realtime(lambda: WhisperRecognizer(  # noqa: B023 - called at once
                model, cpu_threads=args.threads, audio_context=context), vad, rt_audio,
                rt_ends, args.nice)
            lat = rt['latency']
            c = rt['counts']
            rt_rows.append([
                name, f"{rt['finals']}/{rt['expected']}", f'{pct(lat, 50):.2f}',
                f'{pct(lat, 99):.2f}', f'{max(lat) if lat else float("nan"):.2f}',
                f"{c.get('speculative_hits', 0)}/{c.get('finals', 0)}",
                f"{rt['partials']}", f"{pct(rt['intervals'], 50):.2f}",
                f"{min(rt['intervals']) if rt['intervals'] else float('nan'):.2f}",
                f"{c.get('partials_skipped', 0)}", f"{rt['cpu'] * 100:.0f} %"])
            print(f'  done: {name} part 2', flush=True)
    if wer_rows:
        table('1. word error rate of the streaming finals (espeak-ng, two voices), and finals '
              'for the paused clips (2 each)',
              ['model, audio context'] + list(clips) + ['paused: 2 finals', 'decode ms p50'],
              wer_rows)
    if rt_rows:
        table('2. streaming in real time: end of speech -> final (s; targets p50 <= 1.0, p99 '
              '<= 1.5), partials, CPU (% of one core, VAD included)',
              ['model, audio context', 'finals', 'p50', 'p99', 'max', 'speculative',
               'partials', 'partial gap p50 s', 'min gap s', 'skipped', 'CPU'], rt_rows)
    if not args.no_dds:
        seconds = args.dds_seconds or (12.0 if args.quick else 30.0)
        rounds = 1 if args.quick else 2
        with tempfile.TemporaryDirectory() as log_dir:
            res = bench_dds(args.variants or args.models, rounds, seconds, args.fps, log_dir)
        off = res['off']['lat']
        rows = []
        for key, r in res.items():
            lat = r['lat']
            rows.append([
                key if key == 'off' else f'on: {key.replace(":", " nice ", 1)}', len(lat),
                r['missing'],
                f'{pct(lat, 50) * 1e3:.1f}', f'{pct(lat, 99) * 1e3:.1f}',
                f'{pct(lat, 50) / pct(off, 50):.2f}', f'{pct(lat, 99) / pct(off, 99):.2f}',
                f"{pct(r['final'], 50):.2f}" if r['final'] else '-',
                f"{pct(r['final'], 99):.2f}" if r['final'] else '-'])
        table(f'3. over DDS, vision_encoder_node busy at {args.fps:g} fps (640x480): '
              'audio_encoder_node '
              f'added latency (ms) with transcription_node off/on ({rounds} x {seconds:g} s '
              'each; target p99 ratio <= 1.2), and the final latency under that load (s)',
              ['transcription', 'embeddings', 'missing', 'p50', 'p99', 'p50 ratio',
               'p99 ratio', 'final p50', 'final p99'], rows)
    return 0


if __name__ == '__main__':
    sys.exit(main())
