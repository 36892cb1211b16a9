# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
r"""
`fusion_offline IN_BAG OUT_BAG`: the encoders and the fusion node run on a bag, off-line.

    ros2 run late_fusion_ros fusion_offline demo_bag fused_bag
    ros2 run late_fusion_ros fusion_offline run.mcap out --params-file my.yaml \
        -p fusion:strategy:=log_linear --image-topic /camera/image_raw

Reads the bag in receipt order and feeds every microphone chunk, AudioInfo and camera frame
to the nodes `ros2 launch` starts by default (the graph of late_fusion_ros.bringup with the
same parameters file: the audio and vision encoders, speech to text where the launch file
starts it, and the fusion node), through the nodes' own per-message code, as fast as the
machine allows; writes every Embedding, Transcript and FusionOutput to OUT_BAG. A bag
without raw sensor topics but with Embedding topics is fused from its embeddings (and
Transcripts) instead (--source embeddings).

Offline, time is the bag's: the fusion node's `now` for an input is the receipt time the
bag recorded for the message it came from, and every output is written at that time. An
encoder therefore takes no time: `processing_time`, `processing_seconds` and
`arrival_to_publish_latency` are 0, `capture_to_publish_latency` and
`capture_to_output_latency` are receipt time minus capture stamp. Every camera frame is
encoded (the live node encodes the newest frame whenever its model is free and drops the
others), unless --max-frame-rate thins them by stamp. Speech to text decodes what is due
after every 32 ms window, by audio time alone (the live node also holds partials by wall
time and skips partials when its decoder is behind); its results are fused at the receipt
time of the chunk that completed their window, after that chunk's audio embeddings.
Nothing depends on wall time or thread timing, so the same bag, options and installation
always give a byte-identical OUT_BAG, whatever -j and --batch.

Where the time goes, in parallel: frames are parsed from the bag without copying their
pixels and converted, resized and encoded by -j threads (--batch frames per model run);
Whisper decodes on a thread of its own; the audio encoder and the fusion run in this thread
in receipt order, as soon as the results they wait for are in. The encoder and speech
threads run at the nice values of the live nodes' model threads (model_nice, decode_nice),
below this one. Speech to text reuses the audio encoder's VAD scores where both run the
same silero VAD on the same stream. --profile prints the CPU seconds of every stage.

The nodes live in this process only, in a ROS context with discovery off
(ROS_AUTOMATIC_DISCOVERY_RANGE=OFF is set here): nothing of an off-line run ever appears
on, or publishes into, a running ROS graph.
"""

import argparse
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
import json
import os
import resource
import struct
import sys
import threading
import time
import types
from typing import Dict, List, Optional

from .bag_io import BagError, BagReader, BagWriter, STORAGES, typestore_for

EMBEDDING_TYPE = 'late_fusion_msgs/msg/Embedding'
OUTPUT_TYPE = 'late_fusion_msgs/msg/FusionOutput'
TRANSCRIPT_TYPE = 'late_fusion_msgs/msg/Transcript'
# Fused outputs waiting for a slower result before them (a frame, a decode) are held in
# receipt order; beyond this many the reader waits (memory stays bounded on long bags).
MAX_PENDING = 20000
# A partial batch of frames is run once this much bag time passed since its first frame.
BATCH_SECONDS = 1.0
# The audio encoder parameters that decide its stream's windows; a transcription node with
# the same values (and the same silero VAD) hears exactly the same windows.
_STREAM_PARAMETERS = ('stamped', 'sample_rate', 'channels', 'sample_format', 'channel',
                      'resampler', 'max_chunk_seconds', 'frame_id')


def _node_classes():
    from ..nodes.audio_encoder_node import AudioEncoderNode
    from ..nodes.fusion_node import FusionNode
    from ..nodes.transcription_node import TranscriptionNode
    from ..nodes.vision_encoder_node import VisionEncoderNode
    return {'audio_encoder_node': AudioEncoderNode, 'vision_encoder_node': VisionEncoderNode,
            'transcription_node': TranscriptionNode, 'fusion_node': FusionNode}


def _parse_overrides(items: List[str]) -> Dict[str, Dict[str, str]]:
    """Parse NODE:NAME:=VALUE into {node: {name: value}} (values typed by rcl, as YAML)."""
    out: Dict[str, Dict[str, str]] = {}
    for item in items:
        node, sep, rest = item.partition(':')
        name, sep2, value = rest.partition(':=')
        if not (sep and sep2 and node and name):
            raise ValueError('-p takes NODE:NAME:=VALUE (e.g. fusion:strategy:=log_linear), '
                             f'got {item!r}')
        out.setdefault(node, {})[name] = value
    return out


# ---------------------------------------------------------------------- camera frames
_STAMP = struct.Struct('<iI')
_U32 = struct.Struct('<I')
_GEOMETRY = struct.Struct('<III')
_STEP = struct.Struct('<II')


def image_from_cdr(data):
    """
    Read a serialized sensor_msgs/Image without copying its pixels; None if it cannot.

    Returns an object with the Image's fields (`header` a std_msgs Header) whose `data` is a
    read-only view of `data`: a 1280x720 frame costs microseconds instead of the ~1 ms (and
    2.7 MB of fresh memory) of rclpy's deserialization. Only little-endian CDR (what every
    ROS 2 middleware writes on x86 and ARM) is read here; for anything else, or bytes that
    do not add up, it returns None and the caller deserializes with rclpy.
    """
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header
    buf = memoryview(data)
    try:
        if bytes(buf[:2]) != b'\x00\x01':  # CDR encapsulation, little endian
            return None
        base = 4  # CDR alignment counts from the end of the encapsulation header

        def aligned(pos):
            return base + ((pos - base + 3) & ~3)

        sec, nanosec = _STAMP.unpack_from(buf, base)
        (n,) = _U32.unpack_from(buf, base + 8)
        pos = base + 12
        frame_id = bytes(buf[pos:pos + n - 1]).decode()
        pos = aligned(pos + n)
        height, width, n = _GEOMETRY.unpack_from(buf, pos)
        pos += 12
        encoding = bytes(buf[pos:pos + n - 1]).decode()
        is_bigendian = buf[pos + n]
        step, size = _STEP.unpack_from(buf, aligned(pos + n + 1))
        pos = aligned(pos + n + 1) + 8
        if n < 1 or pos + size > len(buf):
            return None
    except (struct.error, UnicodeDecodeError, IndexError, ValueError):
        return None
    return types.SimpleNamespace(
        header=Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id),
        height=height, width=width, encoding=encoding, is_bigendian=is_bigendian,
        step=step, data=buf[pos:pos + size])


# ---------------------------------------------------------------------- CPU by stage
class StageClock:
    """
    CPU seconds by stage, from each thread's own CPU clock (time.thread_time).

    `add(stage, since)` charges the calling thread's CPU since `since` to `stage`; threads
    count separately and are summed at the end, so no lock is taken on the hot path. The
    threads this process did not start itself (Whisper's CTranslate2 workers) are read from
    /proc at the end.
    """

    def __init__(self):
        """Start counting."""
        self._local = threading.local()
        self._tables = []
        self._tables_lock = threading.Lock()
        self.own_threads = set()

    def table(self) -> Counter:
        """Return the calling thread's counter (created on first use)."""
        t = getattr(self._local, 'table', None)
        if t is None:
            t = self._local.table = Counter()
            with self._tables_lock:
                self._tables.append(t)
                self.own_threads.add(threading.get_native_id())
        return t

    def add(self, stage: str, since: float) -> float:
        """Charge the calling thread's CPU since `since` to `stage`; return the time now."""
        now = time.thread_time()
        self.table()[stage] += now - since
        return now

    def totals(self) -> Counter:
        """Return CPU seconds by stage over every thread that counted."""
        out = Counter()
        with self._tables_lock:
            for t in self._tables:
                out.update(t)
        return out

    def foreign_threads(self) -> float:
        """Return the CPU seconds of this process's live threads that never counted here."""
        tick = os.sysconf('SC_CLK_TCK')
        total = 0.0
        try:
            tids = os.listdir('/proc/self/task')
        except OSError:
            return 0.0
        own = self.own_threads | {threading.main_thread().native_id}
        for tid in tids:
            if int(tid) in own:
                continue
            try:
                with open(f'/proc/self/task/{tid}/stat') as f:
                    fields = f.read().rsplit(')', 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError, ValueError):
                pass
        return total


class OfflineGraph:
    """
    The nodes of one late_fusion_ros graph in this process, fed synchronously from a bag.

    Built from bringup.node_specs exactly as the launch file builds the graph (names,
    remappings, parameters file, parameters), in a private rclpy context whose discovery
    is off. Nodes are never spun: their timers and subscriptions stay idle, and messages
    go straight to the per-message methods their subscriptions and workers call.
    """

    def __init__(self, specs, context, verbose: bool = False):
        """Create one node per spec."""
        import rclpy.logging
        from rclpy.lifecycle import TransitionCallbackReturn
        from ..bringup import ros_args
        classes = _node_classes()
        self.nodes = []
        for spec in specs:
            cls = classes.get(spec.executable)
            if cls is None:
                raise ValueError(f'fusion_offline cannot run {spec.executable}')
            if not verbose:  # model and subscription chatter; warnings still show
                rclpy.logging.set_logger_level(spec.name, rclpy.logging.LoggingSeverity.WARN)
            node = cls(context=context, cli_args=ros_args(spec), use_global_arguments=False,
                       start_parameter_services=False, enable_rosout=False,
                       enable_communication_interface=False)
            self.nodes.append(node)
            # Configured (models loaded), never activated: nothing subscribes or publishes;
            # the run calls the nodes' per-message methods itself.
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise ValueError(f'{spec.name}: {node.configure_error}')
        from ..nodes.fusion_node import FusionNode
        fusions = [n for n in self.nodes if isinstance(n, FusionNode)]
        if len(fusions) != 1:
            raise ValueError('the graph must hold exactly one fusion node')
        self.fusion = fusions[0]

    def close(self) -> None:
        """Release the nodes' models and threads and destroy them."""
        for node in self.nodes:
            node.close()
            node.destroy_node()


def _lower_priority(increment: int) -> None:
    from ..core.handover import lower_thread_priority
    try:
        lower_thread_priority(increment)
    except OSError:  # the system refused: the thread keeps its priority, nothing else changes
        pass


def shares_vad(audio, transcription) -> bool:
    """
    Return True when `transcription` hears exactly the windows and VAD scores of `audio`.

    That is when both listen to the same topics with the same stream parameters, the audio
    encoder is silero VAD on the same device with the transcription node's window, and so
    the same model sees the same samples with the same resets: its scores can be reused.
    """
    enc, vad = audio.encoder, transcription.vad
    a, t = audio.audio_input, transcription.audio_input
    return (type(enc) is type(vad) and enc.encoder_id == vad.encoder_id
            and str(getattr(enc, 'device', '?')) == str(getattr(vad, 'device', '!'))
            and (enc.window, enc.hop, enc.sample_rate) == (
                t.stream.window, t.stream.hop, t.stream.model_rate)
            and (a.audio.topic, a.info.topic) == (t.audio.topic, t.info.topic)
            and all(audio.get_parameter(p).value == transcription.get_parameter(p).value
                    for p in _STREAM_PARAMETERS))


class OfflineRun:
    """
    Run an OfflineGraph over a bag in receipt order and write what it produces.

    Audio is decoded, framed and encoded in this thread, in order (the stream and a
    streaming model are stateful). Camera frames of a stateless encoder are converted and
    encoded by `jobs` worker threads, `batch` frames per model run (consecutive frames of
    one encoder), so the results do not depend on the number of workers; speech to text
    runs on one thread of its own, in stream order. The Embeddings (sequence numbers,
    periods), the Transcripts and the fusion happen here, in receipt order, once the
    results they wait for are in.
    """

    def __init__(self, graph: OfflineGraph, reader: BagReader, source: str = 'auto',
                 jobs: int = 1, write_embeddings: bool = True, max_frame_rate: float = 0.0,
                 batch: int = 4, share_vad: bool = True, clock: Optional[StageClock] = None):
        """Route the bag's topics to the nodes; ValueError if the bag has nothing for them."""
        from ..nodes.audio_encoder_node import AudioEncoderNode
        from ..nodes.transcription_node import TranscriptionNode
        from ..nodes.vision_encoder_node import VisionEncoderNode
        self._graph = graph
        self._reader = reader
        self._writer = None
        self._write_embeddings = write_embeddings
        self.clock = clock or StageClock()
        self.routes = {}   # bag topic -> (kind, [nodes], message class)
        self.out_topics = {}  # encoder output topic -> fusion modality
        fusion = graph.fusion
        fusion_in = fusion.input_topics
        raw = {}
        audio_nodes = [n for n in graph.nodes if isinstance(n, AudioEncoderNode)]
        self._speech = [n for n in graph.nodes if isinstance(n, TranscriptionNode)]
        # transcription node -> the audio encoder whose windows and VAD scores it reuses
        self._shared = {}
        for node in self._speech:
            source_node = next((a for a in audio_nodes if share_vad and shares_vad(a, node)),
                               None)
            if source_node is not None:
                self._shared[node] = source_node
        for node in graph.nodes:
            if isinstance(node, (AudioEncoderNode, TranscriptionNode)):
                ain = node.audio_input
                raw.setdefault(ain.info.topic, ('audio_info', [], ain.info.msg_type))[1].append(
                    node)
                if node not in self._shared:
                    raw.setdefault(ain.audio.topic, ('audio', [], ain.audio.msg_type))[1].append(
                        node)
            elif isinstance(node, VisionEncoderNode):
                raw.setdefault(node.input_topic, ('image', [], node.input_type))[1].append(node)
            else:
                continue
            if node.output_topic not in fusion_in:
                raise ValueError(f'{node.get_name()} publishes {node.output_topic}, which the '
                                 f'fusion node does not subscribe ({", ".join(fusion_in)})')
            self.out_topics[node.output_topic] = fusion_in[node.output_topic]
        topics = reader.topics
        has_raw = any(t in topics for t in raw)
        has_emb = any(topics.get(t) == EMBEDDING_TYPE for t in fusion_in)
        if source == 'auto':
            source = 'raw' if has_raw else 'embeddings'
        if source == 'raw':
            if not has_raw:
                raise ValueError(f'{reader.path} has none of the sensor topics '
                                 f'{", ".join(sorted(raw))}; bag topics: '
                                 f'{", ".join(sorted(topics)) or "none"}')
            self.routes = {t: r for t, r in raw.items() if t in topics}
        else:
            from late_fusion_msgs.msg import Embedding, Transcript
            if not has_emb:
                raise ValueError(f'{reader.path} has neither the sensor topics '
                                 f'{", ".join(sorted(raw))} nor the embedding topics '
                                 f'{", ".join(sorted(fusion_in))}; bag topics: '
                                 f'{", ".join(sorted(topics)) or "none"}')
            self.routes = {t: ('embedding', fusion_in[t], Embedding) for t in fusion_in
                           if topics.get(t) == EMBEDDING_TYPE}
            said = fusion.resolve_topic_name('speech/transcript')
            if topics.get(said) == TRANSCRIPT_TYPE:
                self.routes[said] = ('transcript', None, Transcript)
        self.source = source
        self._jobs = max(1, jobs)
        self._batch = max(1, batch)
        # The threads run at the nice values the live nodes give their model threads
        # (model_nice, decode_nice): the vision model and Whisper share the CPU as they do
        # live, below this thread, which reads the bag and feeds them both.
        vision = [n for n in graph.nodes if isinstance(n, VisionEncoderNode)]
        nice = max([n.get_parameter('model_nice').value for n in vision], default=0)
        self._pool = ThreadPoolExecutor(self._jobs, thread_name_prefix='offline_encoder',
                                        initializer=_lower_priority, initargs=(nice,)) \
            if self._jobs > 1 else None
        # Speech to text keeps its order: one thread, the decodes in stream order.
        nice = max([n.get_parameter('decode_nice').value for n in self._speech], default=0)
        self._speech_pool = ThreadPoolExecutor(1, thread_name_prefix='offline_speech',
                                               initializer=_lower_priority, initargs=(nice,)) \
            if self._speech and source == 'raw' else None
        # Frames (batches) handed to the encoder threads and not finished yet: beyond this
        # many the reader waits, so that only a few frames are in memory at once.
        self._max_running = 2 * self._jobs
        self._running = deque()
        # In receipt order: (receipt ns, kind, ...) with kind 'embedding' (topic, Embedding),
        # 'frame' (topic, node, header, batch, index in it), 'speech' (node, Future of its
        # (Transcript, Embedding) pairs), 'recorded' (modality, Embedding) or 'said'
        # (Transcript).
        self._pending = deque()
        self._batches = {}  # vision node -> the batch being filled
        # Frames closer than this to the last one a node encoded are skipped (0: none).
        self._min_frame_period = 1.0 / max_frame_rate if max_frame_rate > 0 else 0.0
        self._last_frame = {}
        self.counts = Counter()
        self.marks = {}  # monotonic times: bag read, frames encoded, everything fused

    def _prepare(self, writer: BagWriter) -> None:
        """Add the output topics to OUT_BAG, with the QoS the nodes' publishers offer."""
        from ..shared.qos import EMBEDDING_QOS  # what the encoders and fusion publish with
        self._writer = writer
        store = typestore_for([EMBEDDING_TYPE, OUTPUT_TYPE, TRANSCRIPT_TYPE])
        fusion = self._graph.fusion
        # canonical: rclpy leaves CDR padding uninitialised; the output must be byte-exact.
        writer.add_topic(fusion.output_topic, OUTPUT_TYPE, [EMBEDDING_QOS], store,
                         canonical=True)
        if self._write_embeddings and self.source == 'raw':
            for topic in self.out_topics:
                writer.add_topic(topic, EMBEDDING_TYPE, [EMBEDDING_QOS], store, canonical=True)
            for node in self._speech:
                writer.add_topic(node.transcript_topic, TRANSCRIPT_TYPE, [EMBEDDING_QOS],
                                 store, canonical=True)

    # ------------------------------------------------------------------ the run
    def run(self, writer: BagWriter) -> None:
        """Read the whole bag into `writer`; BagError if it is cut short (the rest is kept)."""
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import Image
        self._prepare(writer)
        clock = self.clock
        try:
            t = time.thread_time()
            for topic, _, stamp, data in self._reader.messages(self.routes):
                kind, target, cls = self.routes[topic]
                msg = image_from_cdr(data) if cls is Image else None
                if msg is None:
                    try:
                        msg = deserialize_message(data, cls)
                    except Exception as err:  # noqa: BLE001 - rclpy raises plain exceptions
                        self.counts['undecodable'] += 1
                        if self.counts['undecodable'] == 1:
                            print(f'fusion_offline: cannot deserialize a {cls.__name__} on '
                                  f'{topic} ({err}); skipped (counted)', file=sys.stderr)
                        continue
                t = clock.add('decode', t)
                self.counts[f'in {topic}'] += 1
                self._take(kind, target, msg, stamp)
                for node, batch in list(self._batches.items()):  # the camera stopped, slowed
                    if stamp - batch['first'] > BATCH_SECONDS * 1e9:
                        self._submit(node)
                self._drain(block=len(self._pending) >= MAX_PENDING)
                t = time.thread_time()
            self.marks['read'] = time.monotonic()
        finally:
            for node in list(self._batches):
                self._submit(node)
            for future in self._running:
                future.result()
            self.marks['vision'] = time.monotonic()
            self._drain(block=True, everything=True)
            self.marks['fused'] = time.monotonic()
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
            if self._speech_pool is not None:
                self._speech_pool.shutdown(wait=True, cancel_futures=True)

    def _take(self, kind: str, targets, msg, stamp: int) -> None:
        now = stamp * 1e-9
        if kind == 'audio_info':
            for node in targets:
                if node in self._speech and self._speech_pool is not None:
                    # In stream order with its windows: a format change restarts its VAD.
                    self._speech_pool.submit(node.audio_input.on_info, msg)
                else:
                    node.audio_input.on_info(msg)
        elif kind == 'audio':
            self._take_audio(targets, msg, stamp, now)
        elif kind == 'image':
            self._take_frame(targets, msg, stamp)
        elif kind == 'transcript':
            self._pending.append((stamp, 'said', msg))
        else:  # a recorded Embedding for modality `targets`
            self._pending.append((stamp, 'recorded', targets, msg))

    def _take_audio(self, targets, msg, stamp: int, now: float) -> None:
        # The audio encoders first: a chunk's speech results come after its audio windows.
        for node in sorted(targets, key=lambda n: n in self._speech):
            if node in self._speech:
                # Its own stream: decoded, framed and scored on the speech thread, in order.
                self._pending.append((stamp, 'speech', node, self._speech_pool.submit(
                    self._transcribe, node, None, (msg, now))))
                continue
            t = time.thread_time()
            frames, frame_id = node.audio_input.ingest(msg, arrival=now)
            probs = []
            for frame in frames:
                emb = node.encode_frame(frame, frame_id, measure=False)
                probs.append(None if emb is None else emb.scores[0])
                if emb is not None:
                    self._pending.append((stamp, 'embedding', node.output_topic, emb))
            self.clock.add('audio', t)
            if not frames:
                continue
            for speech, audio in self._shared.items():
                if audio is node:
                    # The same windows and VAD scores, in the same order: the VAD runs once.
                    windows = [(f, frame_id, p) for f, p in zip(frames, probs)]
                    self._pending.append((stamp, 'speech', speech, self._speech_pool.submit(
                        self._transcribe, speech, windows)))

    def _transcribe(self, node, windows, chunk=None):
        """Speech thread: VAD (unless given), segmentation and the decodes due, per window."""
        t = time.thread_time()
        if chunk is not None:
            frames, frame_id = node.audio_input.ingest(chunk[0], arrival=chunk[1])
            windows = [(frame, frame_id, None) for frame in frames]
        out = []
        for frame, frame_id, prob in windows:
            if prob is None and node in self._shared:
                continue  # the audio encoder's VAD failed on it (counted there)
            prob, restart = node.score_window(frame, prob)
            if prob is None:
                continue
            node.feed(frame.samples, frame.stamp, prob, restart, frame_id)
            out += [node.messages(result, measure=False) for result in node.transcribe_due()]
        self.clock.add('transcription', t)
        return out

    def _take_frame(self, targets, msg, stamp: int) -> None:
        from ..shared.messages import stamp_to_sec
        t = stamp_to_sec(msg.header.stamp)
        for node in targets:  # every encoder on this camera (vision, face)
            last = self._last_frame.get(node.output_topic)
            if last is not None and 0.0 <= t - last < self._min_frame_period - 1e-6:
                self.counts[f'frames skipped {self.out_topics[node.output_topic]}'] += 1
                continue
            self._last_frame[node.output_topic] = t
            batch = self._batches.get(node)
            if batch is None:
                batch = self._batches[node] = {'frames': [], 'first': stamp, 'result': None}
            self._pending.append((stamp, 'frame', node.output_topic, node, msg.header, batch,
                                  len(batch['frames'])))
            batch['frames'].append(msg)
            if len(batch['frames']) >= self._batch or not node.encoder.stateless:
                self._submit(node)

    def _submit(self, node) -> None:
        """Hand the batch being filled for `node` to the encoder threads (or encode it)."""
        batch = self._batches.pop(node)
        frames = batch['frames']
        if self._pool is not None and node.encoder.stateless:
            while len(self._running) >= self._max_running:
                self._running.popleft().result()  # wait for the oldest one
            batch['result'] = self._pool.submit(self._encode_frames, node, frames)
            self._running.append(batch['result'])
        else:
            batch['result'] = self._encode_frames(node, frames)
        batch['frames'] = None  # the pixels are the encoder's now

    def _encode_frames(self, node, frames):
        """Convert (views of rgb8, no copy) and encode a batch of frames: an encoder thread."""
        from ..shared.messages import stamp_to_sec
        clock = self.clock
        t = time.thread_time()
        stateless = node.encoder.stateless
        rgbs = [node.convert(msg, copy=not stateless) for msg in frames]
        t = clock.add('decode', t)
        good = [i for i, rgb in enumerate(rgbs) if rgb is not None]
        outs = [None] * len(frames)
        if len(good) == 1:
            i = good[0]
            outs[i] = node.run_model(rgbs[i], stamp_to_sec(frames[i].header.stamp))
        elif good:
            results = node.run_model_batch([rgbs[i] for i in good],
                                           [stamp_to_sec(frames[i].header.stamp) for i in good])
            for i, out in zip(good, results):
                outs[i] = out
        clock.add('vision', t)
        return outs

    def _drain(self, block: bool, everything: bool = False) -> None:
        """Fuse pending results in receipt order, as far as they are in."""
        pending = self._pending
        while pending:
            item = pending[0]
            stamp, kind = item[:2]
            if kind == 'frame':
                _, _, topic, node, header, batch, index = item
                result = batch['result']
                if result is None:  # still being filled
                    if not (block or everything):
                        return
                    self._submit(node)
                    result = batch['result']
                if isinstance(result, Future):
                    if not (result.done() or block or everything):
                        return
                    batch['result'] = result = result.result()
                    block = False  # one result in makes room: do not wait for the next
                pending.popleft()
                out = result[index]
                if out is not None:  # None: rejected or failed, counted by the node
                    t = time.thread_time()
                    emb = node.embedding(types.SimpleNamespace(header=header), out, 0.0)
                    self.clock.add('vision', t)
                    self._fuse(stamp, topic, emb)
            elif kind == 'speech':
                future = item[3]
                if not (future.done() or block or everything):
                    return
                pending.popleft()
                block = False
                for transcript, emb in future.result():
                    self._said(stamp, transcript, item[2].transcript_topic)
                    if emb is not None:
                        self._fuse(stamp, item[2].output_topic, emb)
            elif kind == 'embedding':
                pending.popleft()
                self._fuse(stamp, item[2], item[3])
            elif kind == 'said':
                pending.popleft()
                self._said(stamp, item[2], None)
            else:
                pending.popleft()
                self._fuse(stamp, None, item[3], item[2])

    def _said(self, stamp: int, transcript, topic: Optional[str]) -> None:
        """Write a Transcript and hand it to the fusion node (the latest final it carries)."""
        from rclpy.serialization import serialize_message
        t = time.thread_time()
        self.counts[f'transcripts {"final" if transcript.final else "partial"}'] += 1
        if topic is not None and self._write_embeddings:
            self._writer.write(topic, stamp, serialize_message(transcript))
        t = self.clock.add('writing', t)
        # Its subscription callback: fusion_node has no public per-message method for it.
        self._graph.fusion.take_transcript(transcript)
        self.clock.add('fusion', t)

    def _fuse(self, stamp: int, topic: Optional[str], emb, modality: Optional[str] = None):
        from rclpy.serialization import serialize_message
        from ..shared.messages import stamp_to_sec
        clock = self.clock
        t = time.thread_time()
        now = stamp * 1e-9
        if topic is not None:
            emb.capture_to_publish_latency = now - stamp_to_sec(emb.header.stamp)
            modality = self.out_topics[topic]
            self.counts[f'embeddings {modality}'] += 1
            if self._write_embeddings:
                self._writer.write(topic, stamp, serialize_message(emb))
            t = clock.add('writing', t)
        out = self._graph.fusion.fuse(modality, emb, now)
        t = clock.add('fusion', t)
        if out is not None:
            self.counts[f'outputs {out.trigger_modality}'] += 1
            self._writer.write(self._graph.fusion.output_topic, stamp, serialize_message(out))
            clock.add('writing', t)


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog='fusion_offline', description=__doc__.strip().splitlines()[0].strip('`: '),
        epilog='Offline, an encoder takes no time and every camera frame is encoded; the '
        'same bag and options give a byte-identical output bag (see the module docs).')
    parser.add_argument('in_bag', help='input bag: directory, or a .mcap/.db3 file')
    parser.add_argument('out_bag', help='output bag directory to create')
    parser.add_argument('--params-file', default=None,
                        help="the nodes' parameters (default: the package's "
                        'config/late_fusion.yaml, as the launch file)')
    parser.add_argument('-p', '--param', action='append', default=[],
                        metavar='NODE:NAME:=VALUE',
                        help='set a parameter of one node, e.g. fusion:strategy:=log_linear')
    parser.add_argument('--face', action='store_true',
                        help='also run the face encoder and fuse its cues (launch face:=true)')
    parser.add_argument('--transcribe', dest='transcribe', action='store_true', default=None,
                        help='run speech to text and fuse the speech modality (launch '
                        'transcribe:=true); default: where faster-whisper and its model are '
                        'installed, as the launch file')
    parser.add_argument('--no-transcribe', dest='transcribe', action='store_false',
                        help='leave speech to text out (launch transcribe:=false)')
    parser.add_argument('--audio-topic', default='audio_stamped',
                        help="the bag's microphone topic (launch audio_topic)")
    parser.add_argument('--audio-info-topic', default='audio_info',
                        help="the bag's AudioInfo topic (launch audio_info_topic)")
    parser.add_argument('--image-topic', default='image',
                        help="the bag's camera topic (launch image_topic)")
    parser.add_argument('--source', choices=('auto', 'raw', 'embeddings'), default='auto',
                        help='raw: encode the sensor topics; embeddings: fuse recorded '
                        'Embedding (and Transcript) topics; auto (default): raw if the bag '
                        'has sensor topics')
    parser.add_argument('--no-embeddings', action='store_true',
                        help='write only the fused outputs')
    parser.add_argument('-s', '--storage', choices=STORAGES, default='mcap',
                        help='storage of the output bag (default mcap)')
    parser.add_argument('-j', '--jobs', type=int, default=os.cpu_count() or 1,
                        help='threads encoding camera frames in parallel (stateless '
                        'encoders; results do not depend on it); default: all CPUs')
    parser.add_argument('--batch', type=int, default=4, metavar='N',
                        help='consecutive camera frames per model run (stateless encoders; '
                        'on ONNX Runtime the results do not depend on it); default 4, '
                        'a little less CPU a frame than 1')
    parser.add_argument('--max-frame-rate', type=float, default=0.0, metavar='HZ',
                        help='encode at most this many camera frames per second of bag time '
                        '(by stamp; the others are skipped and counted); default: every frame')
    parser.add_argument('--profile', action='store_true',
                        help='also print the CPU seconds of each stage (decode, vision, audio, '
                        'transcription, fusion, writing, start-up) as one JSON line')
    parser.add_argument('-v', '--verbose', action='store_true', help="the nodes' info logs")
    return parser


def _main(argv=None, command: bool = False) -> int:
    """Run the graph over IN_BAG into OUT_BAG (`command`: the process ends after this)."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        overrides = _parse_overrides(args.param)
        if args.jobs < 1 or args.batch < 1:
            raise ValueError('-j and --batch take a number >= 1')
        reader = BagReader(args.in_bag)
    except (BagError, ValueError) as err:
        print(f'fusion_offline: {err}', file=sys.stderr)
        return 1
    # Private and invisible: an offline run must never join (or publish into) a live graph.
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'OFF'
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    from ..bringup import node_specs, transcription_available
    transcribe = transcription_available() if args.transcribe is None else args.transcribe
    specs = node_specs(args.audio_topic, args.audio_info_topic, args.image_topic,
                       args.params_file, face=args.face, transcribe=transcribe)
    for spec in specs:
        spec.parameters.update(overrides.pop(spec.name, {}))
    if overrides:
        print(f'fusion_offline: -p names no node of the graph: {", ".join(overrides)} '
              f'(nodes: {", ".join(s.name for s in specs)})', file=sys.stderr)
        return 1
    context = rclpy.Context()
    rclpy.init(args=[], context=context, signal_handler_options=SignalHandlerOptions.NO)
    graph = writer = None
    started = time.monotonic()
    clock = StageClock()
    code = 0
    try:
        graph = OfflineGraph(specs if args.source != 'embeddings'
                             else [s for s in specs if s.executable == 'fusion_node'],
                             context, args.verbose)
        run = OfflineRun(graph, reader, args.source, args.jobs, not args.no_embeddings,
                         args.max_frame_rate, args.batch, clock=clock)
        writer = BagWriter(args.out_bag, args.storage)
        loaded = time.monotonic()
        startup_cpu = _process_cpu()
        run.run(writer)
        took = time.monotonic() - loaded
        span = (reader.end_ns - reader.start_ns) * 1e-9
        counts = ', '.join(f'{v} {k}' for k, v in sorted(run.counts.items()))
        print(f'fusion_offline: {span:.1f} s of bag ({run.source}) in {took:.1f} s '
              f'({span / max(took, 1e-9):.1f}x real time; models loaded in '
              f'{loaded - started:.1f} s): {counts}', flush=True)
        if args.profile:
            stages = clock.totals()
            stages['transcription'] += clock.foreign_threads()  # CTranslate2's own threads
            stages['start-up'] = startup_cpu
            stages['other'] = max(0.0, _process_cpu() - sum(stages.values()))
            print('fusion_offline: profile ' + json.dumps({
                'bag_seconds': round(span, 3), 'run_seconds': round(took, 3),
                'load_seconds': round(loaded - started, 3),
                'done_at': {k: round(v - loaded, 3) for k, v in run.marks.items()},
                'cpu_seconds': {k: round(v, 3) for k, v in sorted(stages.items())}}),
                flush=True)
        print(f'wrote {writer.path}', flush=True)
    except (BagError, ValueError, OSError) as err:
        print(f'fusion_offline: {err}', file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print('fusion_offline: interrupted; the output bag holds what was fused so far',
              file=sys.stderr)
        code = 130
    finally:
        if writer is not None:
            try:
                writer.close()
            except BagError as err:
                print(f'fusion_offline: {err}', file=sys.stderr)
                code = code or 1
        # A command whose process ends now leaves the models to the OS: releasing them one
        # by one (threads, heaps, the libraries' own teardown) took 1.4 s here.
        if graph is not None and not command:
            graph.close()
        reader.close()
        rclpy.try_shutdown(context=context)
    return code


def _process_cpu() -> float:
    """Return the CPU seconds this process used so far (all threads, user and system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv=None) -> int:
    """
    Run; Ctrl-C at any point ends with one line and exit code 130, never a traceback.

    Run as the command (`argv` None), the process ends right after the output bag is
    closed and the output flushed, without the interpreter's teardown of torch, ONNX
    Runtime and CTranslate2 (~1 s here); called with `argv`, it returns the exit code.
    """
    command = argv is None
    try:
        code = _main(argv, command)
    except KeyboardInterrupt:
        print('fusion_offline: interrupted', file=sys.stderr)
        return 130
    if command:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == '__main__':
    sys.exit(main())
