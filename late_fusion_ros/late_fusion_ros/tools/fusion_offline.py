# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
r"""
`fusion_offline IN_BAG OUT_BAG`: the encoders and the fusion node run on a bag, off-line.

    ros2 run late_fusion_ros fusion_offline demo_bag fused_bag
    ros2 run late_fusion_ros fusion_offline run.mcap out --params-file my.yaml \
        -p fusion:strategy:=log_linear --image-topic /camera/image_raw

Reads the bag in receipt order and feeds every microphone chunk, AudioInfo and camera frame
to the same nodes `ros2 launch` starts (the graph of late_fusion_ros.bringup, built with
the same parameters file), through the nodes' own per-message code, as fast as the machine
allows; writes every Embedding and every FusionOutput to OUT_BAG. A bag without raw sensor
topics but with Embedding topics is fused from its embeddings (--source embeddings).

Offline, time is the bag's: the fusion node's `now` for an input is the receipt time the
bag recorded for the message it came from, and every output is written at that time. An
encoder therefore takes no time: `processing_time`, `processing_seconds` and
`arrival_to_publish_latency` are 0, `capture_to_publish_latency` and
`capture_to_output_latency` are receipt time minus capture stamp. Every camera frame is
encoded (the live node encodes the newest frame whenever its model is free and drops the
others), unless --max-frame-rate thins them by stamp. Nothing depends on wall time or
thread timing, so the same bag, options and installation always give a byte-identical
OUT_BAG.

The nodes live in this process only, in a ROS context with discovery off
(ROS_AUTOMATIC_DISCOVERY_RANGE=OFF is set here): nothing of an off-line run ever appears
on, or publishes into, a running ROS graph.
"""

import argparse
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
import os
import sys
import time
from typing import Dict, List, Optional

from .bag_io import BagError, BagReader, BagWriter, STORAGES, typestore_for

EMBEDDING_TYPE = 'late_fusion_msgs/msg/Embedding'
OUTPUT_TYPE = 'late_fusion_msgs/msg/FusionOutput'


def _node_classes():
    from ..nodes.audio_encoder_node import AudioEncoderNode
    from ..nodes.fusion_node import FusionNode
    from ..nodes.vision_encoder_node import VisionEncoderNode
    return {'audio_encoder_node': AudioEncoderNode, 'vision_encoder_node': VisionEncoderNode,
            'fusion_node': FusionNode}


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


class OfflineRun:
    """
    Run an OfflineGraph over a bag in receipt order and write what it produces.

    Audio is decoded, framed and encoded in this thread, in order (the stream and a
    streaming model are stateful). Camera frames of a stateless encoder are converted and
    encoded by `jobs` worker threads, each frame on its own, so the results do not depend
    on the number of workers; the Embedding (sequence number, period) and the fusion
    happen here, in receipt order, once a frame's result is in.
    """

    def __init__(self, graph: OfflineGraph, reader: BagReader, source: str = 'auto',
                 jobs: int = 1, write_embeddings: bool = True, max_frame_rate: float = 0.0):
        """Route the bag's topics to the nodes; ValueError if the bag has nothing for them."""
        from ..nodes.audio_encoder_node import AudioEncoderNode
        from ..nodes.vision_encoder_node import VisionEncoderNode
        self._graph = graph
        self._reader = reader
        self._writer = None
        self._write_embeddings = write_embeddings
        self.routes = {}   # bag topic -> (kind, node, message class)
        self.out_topics = {}  # encoder output topic -> fusion modality
        fusion_in = graph.fusion.input_topics
        raw = {}
        for node in graph.nodes:
            if isinstance(node, AudioEncoderNode):
                ain = node.audio_input
                raw[ain.audio.topic] = ('audio', node, ain.audio.msg_type)
                raw[ain.info.topic] = ('audio_info', node, ain.info.msg_type)
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
            from late_fusion_msgs.msg import Embedding
            if not has_emb:
                raise ValueError(f'{reader.path} has neither the sensor topics '
                                 f'{", ".join(sorted(raw))} nor the embedding topics '
                                 f'{", ".join(sorted(fusion_in))}; bag topics: '
                                 f'{", ".join(sorted(topics)) or "none"}')
            self.routes = {t: ('embedding', fusion_in[t], Embedding) for t in fusion_in
                           if topics.get(t) == EMBEDDING_TYPE}
        self.source = source
        self._pool = ThreadPoolExecutor(max(1, jobs), thread_name_prefix='offline_encoder') \
            if jobs > 1 else None
        self._max_pending = 4 * max(1, jobs)
        # In receipt order: (receipt ns, kind, ...) with kind 'embedding' (topic, Embedding),
        # 'frame' (topic, node, Image, EncoderOutput or its future) or 'recorded'
        # (modality, Embedding).
        self._pending = deque()
        self._frames_pending = 0
        # Frames closer than this to the last one a node encoded are skipped (0: none).
        self._min_frame_period = 1.0 / max_frame_rate if max_frame_rate > 0 else 0.0
        self._last_frame = {}
        self.counts = Counter()

    def _prepare(self, writer: BagWriter) -> None:
        """Add the output topics to OUT_BAG, with the QoS the nodes' publishers offer."""
        from ..shared.qos import EMBEDDING_QOS  # what the encoders and fusion publish with
        self._writer = writer
        store = typestore_for([EMBEDDING_TYPE, OUTPUT_TYPE])
        fusion = self._graph.fusion
        # canonical: rclpy leaves CDR padding uninitialised; the output must be byte-exact.
        writer.add_topic(fusion.output_topic, OUTPUT_TYPE, [EMBEDDING_QOS], store,
                         canonical=True)
        if self._write_embeddings and self.source == 'raw':
            for topic in self.out_topics:
                writer.add_topic(topic, EMBEDDING_TYPE, [EMBEDDING_QOS], store, canonical=True)

    # ------------------------------------------------------------------ the run
    def run(self, writer: BagWriter) -> None:
        """Read the whole bag into `writer`; BagError if it is cut short (the rest is kept)."""
        from rclpy.serialization import deserialize_message
        self._prepare(writer)
        try:
            for topic, _, stamp, data in self._reader.messages(self.routes):
                kind, target, cls = self.routes[topic]
                try:
                    msg = deserialize_message(data, cls)
                except Exception as err:  # noqa: BLE001 - rclpy raises plain exceptions
                    self.counts['undecodable'] += 1
                    if self.counts['undecodable'] == 1:
                        print(f'fusion_offline: cannot deserialize a {cls.__name__} on '
                              f'{topic} ({err}); skipped (counted)', file=sys.stderr)
                    continue
                self.counts[f'in {topic}'] += 1
                self._take(kind, target, msg, stamp)
                self._drain(block=self._frames_pending >= self._max_pending)
        finally:
            self._drain(block=True, everything=True)
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)

    def _take(self, kind: str, target, msg, stamp: int) -> None:
        now = stamp * 1e-9
        if kind == 'audio_info':
            target.audio_input.on_info(msg)
        elif kind == 'audio':
            frames, frame_id = target.audio_input.ingest(msg, arrival=now)
            for frame in frames:
                emb = target.encode_frame(frame, frame_id, measure=False)
                if emb is not None:
                    self._pending.append((stamp, 'embedding', target.output_topic, emb))
        elif kind == 'image':
            from ..shared.messages import stamp_to_sec
            t = stamp_to_sec(msg.header.stamp)
            for node in target:  # every encoder on this camera (vision, face)
                last = self._last_frame.get(node.output_topic)
                if last is not None and 0.0 <= t - last < self._min_frame_period - 1e-6:
                    self.counts[f'frames skipped {self.out_topics[node.output_topic]}'] += 1
                    continue
                self._last_frame[node.output_topic] = t
                if self._pool is not None and node.encoder.stateless:
                    result = self._pool.submit(self._encode_frame, node, msg)
                    self._frames_pending += 1
                else:
                    result = self._encode_frame(node, msg)
                self._pending.append((stamp, 'frame', node.output_topic, node, msg, result))
        else:  # a recorded Embedding for modality `target`
            self._pending.append((stamp, 'recorded', target, msg))

    @staticmethod
    def _encode_frame(node, msg):
        from ..shared.messages import stamp_to_sec
        rgb = node.convert(msg)
        return None if rgb is None else node.run_model(rgb, stamp_to_sec(msg.header.stamp))

    def _drain(self, block: bool, everything: bool = False) -> None:
        """Fuse pending embeddings in receipt order, as far as their results are in."""
        while self._pending:
            item = self._pending[0]
            stamp, kind = item[:2]
            if kind == 'frame':
                _, _, topic, node, msg, out = item
                if isinstance(out, Future):
                    if not (out.done() or block or everything):
                        return
                    out = out.result()
                    self._frames_pending -= 1
                    block = False  # one frame done makes room: do not wait for the next
                self._pending.popleft()
                if out is not None:  # None: rejected or failed, counted by the node
                    self._fuse(stamp, topic, node.embedding(msg, out, 0.0))
            elif kind == 'embedding':
                self._pending.popleft()
                self._fuse(stamp, item[2], item[3])
            else:
                self._pending.popleft()
                self._fuse(stamp, None, item[3], item[2])

    def _fuse(self, stamp: int, topic: Optional[str], emb, modality: Optional[str] = None):
        from rclpy.serialization import serialize_message
        from ..shared.messages import stamp_to_sec
        now = stamp * 1e-9
        if topic is not None:
            emb.capture_to_publish_latency = now - stamp_to_sec(emb.header.stamp)
            modality = self.out_topics[topic]
            self.counts[f'embeddings {modality}'] += 1
            if self._write_embeddings:
                self._writer.write(topic, stamp, serialize_message(emb))
        out = self._graph.fusion.fuse(modality, emb, now)
        if out is not None:
            self.counts[f'outputs {out.trigger_modality}'] += 1
            self._writer.write(self._graph.fusion.output_topic, stamp, serialize_message(out))


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
    parser.add_argument('--audio-topic', default='audio_stamped',
                        help="the bag's microphone topic (launch audio_topic)")
    parser.add_argument('--audio-info-topic', default='audio_info',
                        help="the bag's AudioInfo topic (launch audio_info_topic)")
    parser.add_argument('--image-topic', default='image',
                        help="the bag's camera topic (launch image_topic)")
    parser.add_argument('--source', choices=('auto', 'raw', 'embeddings'), default='auto',
                        help='raw: encode the sensor topics; embeddings: fuse recorded '
                        'Embedding topics; auto (default): raw if the bag has sensor topics')
    parser.add_argument('--no-embeddings', action='store_true',
                        help='write only the fused outputs')
    parser.add_argument('-s', '--storage', choices=STORAGES, default='mcap',
                        help='storage of the output bag (default mcap)')
    parser.add_argument('-j', '--jobs', type=int, default=os.cpu_count() or 1,
                        help='threads encoding camera frames in parallel (stateless '
                        'encoders; results do not depend on it); default: all CPUs')
    parser.add_argument('--max-frame-rate', type=float, default=0.0, metavar='HZ',
                        help='encode at most this many camera frames per second of bag time '
                        '(by stamp; the others are skipped and counted); default: every frame')
    parser.add_argument('-v', '--verbose', action='store_true', help="the nodes' info logs")
    return parser


def _main(argv=None) -> int:
    """Run the graph over IN_BAG into OUT_BAG."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        overrides = _parse_overrides(args.param)
        reader = BagReader(args.in_bag)
    except (BagError, ValueError) as err:
        print(f'fusion_offline: {err}', file=sys.stderr)
        return 1
    # Private and invisible: an offline run must never join (or publish into) a live graph.
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'OFF'
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    from ..bringup import node_specs
    specs = node_specs(args.audio_topic, args.audio_info_topic, args.image_topic,
                       args.params_file, face=args.face)
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
    code = 0
    try:
        graph = OfflineGraph(specs if args.source != 'embeddings'
                             else [s for s in specs if s.executable == 'fusion_node'],
                             context, args.verbose)
        run = OfflineRun(graph, reader, args.source, args.jobs, not args.no_embeddings,
                         args.max_frame_rate)
        writer = BagWriter(args.out_bag, args.storage)
        loaded = time.monotonic()
        run.run(writer)
        took = time.monotonic() - loaded
        span = (reader.end_ns - reader.start_ns) * 1e-9
        counts = ', '.join(f'{v} {k}' for k, v in sorted(run.counts.items()))
        print(f'fusion_offline: {span:.1f} s of bag ({run.source}) in {took:.1f} s '
              f'({span / max(took, 1e-9):.1f}x real time; models loaded in '
              f'{loaded - started:.1f} s): {counts}', flush=True)
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
        if graph is not None:
            graph.close()
        reader.close()
        rclpy.try_shutdown(context=context)
    return code


def main(argv=None) -> int:
    """Run; Ctrl-C at any point ends with one line and exit code 130, never a traceback."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print('fusion_offline: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
