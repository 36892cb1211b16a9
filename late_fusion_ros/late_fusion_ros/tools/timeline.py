# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
`fusion_timeline`: a picture of what the asynchronous fusion did over time (PNG and HTML).

    ros2 run late_fusion_ros fusion_timeline demo_bag              # demo_bag.timeline.png/.html
    ros2 run late_fusion_ros fusion_timeline run.mcap -o t.png --html t.html
    ros2 run late_fusion_ros fusion_timeline --live 30 -o live.png # a running graph

One lane per modality: every embedding's arrival with the time its encoder spent on it,
the sensor's own messages underneath (when the bag has them), shading where the fusion
found the modality stale or absent, hatching over gaps in its stream, and markers where
inputs were dropped (frames the encoder never encoded, windows it skipped, embeddings the
fusion rejected or dropped). Below: the fused score and the decision over time, and each
output's capture-to-output latency. The HTML page is self-contained (the picture inline as
base64, a table of the figures); nothing is fetched when it is opened.
"""

import argparse
import base64
from dataclasses import dataclass, field
import html
import io
import os
import struct
import sys
import time
from typing import Dict, List, Optional, Tuple

import numpy as np

EMBEDDING = 'late_fusion_msgs/msg/Embedding'
OUTPUT = 'late_fusion_msgs/msg/FusionOutput'
DIAGNOSTICS = 'diagnostic_msgs/msg/DiagnosticArray'
IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
AUDIO_TYPES = ('audio_common_msgs/msg/AudioDataStamped', 'audio_common_msgs/msg/AudioData')
# A stream interval this many times its median period is a gap (and at least GAP_MIN s).
GAP_FACTOR, GAP_MIN = 4.0, 0.2
MODALITY_COLORS = {'audio': '#1f77b4', 'vision': '#ff7f0e', 'face': '#2ca02c'}
OTHER_COLORS = ['#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22']
DECISION_COLORS = {'speaking': '#2ca02c', 'not_speaking': '#b0b0b0'}


def header_stamp(cdr: bytes) -> Optional[float]:
    """
    Return header.stamp (seconds) of a serialized message that starts with a std_msgs/Header.

    A Header is the first field of every stamped sensor message, right after CDR's 4-byte
    encapsulation header: reading 8 bytes spares deserializing megabytes of image data.
    """
    if len(cdr) < 12:
        return None
    endian = '<' if cdr[1] & 1 else '>'  # encapsulation kind: CDR_LE = 1, CDR_BE = 0
    sec, nanosec = struct.unpack_from(f'{endian}iI', cdr, 4)
    return sec + nanosec * 1e-9


def _sec(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


@dataclass
class Lane:
    """Everything seen of one modality."""

    name: str
    arrivals: List[float] = field(default_factory=list)     # receipt time of each embedding
    stamps: List[float] = field(default_factory=list)       # its capture stamp
    encode: List[float] = field(default_factory=list)       # its processing time, seconds
    seqs: List[int] = field(default_factory=list)
    inputs: List[Tuple[float, float]] = field(default_factory=list)  # (receipt, stamp)
    input_topic: str = ''
    frames: bool = False  # inputs are camera frames, each encoded or dropped as a whole
    encoder_drops: List[Tuple[float, int]] = field(default_factory=list)  # (time, count)


@dataclass
class TimelineData:
    """What a bag or a live run holds, by receipt time (seconds, the recorder's clock)."""

    source: str = ''
    lanes: Dict[str, Lane] = field(default_factory=dict)
    outputs: list = field(default_factory=list)   # (receipt, FusionOutput-like)
    output_topic: str = ''
    _images: Dict[str, List[Tuple[float, float]]] = field(default_factory=dict)
    _audio: Dict[str, List[Tuple[float, float]]] = field(default_factory=dict)
    _diag: Dict[str, List[Tuple[float, dict]]] = field(default_factory=dict)

    def lane(self, name: str) -> Lane:
        """Return the lane of modality `name`, creating it."""
        return self.lanes.setdefault(name, Lane(name))

    # -- collection (the same calls for a bag and for a live run) -------------------------
    def add_embedding(self, receipt: float, msg) -> None:
        """Take one late_fusion_msgs/Embedding."""
        lane = self.lane(msg.modality or '?')
        lane.arrivals.append(receipt)
        lane.stamps.append(_sec(msg.header.stamp))
        lane.encode.append(_sec(msg.processing_time))
        lane.seqs.append(int(msg.seq))
        self._encoder_of = getattr(self, '_encoder_of', {})
        self._encoder_of.setdefault(msg.encoder_id, lane.name)

    def add_output(self, receipt: float, msg) -> None:
        """Take one late_fusion_msgs/FusionOutput."""
        self.outputs.append((receipt, msg))
        for m in msg.modalities:
            self.lane(m.modality)

    def add_input(self, topic: str, msgtype: str, receipt: float,
                  stamp: Optional[float]) -> None:
        """Take one sensor message (image or audio chunk) by its receipt time and stamp."""
        box = self._images if msgtype in IMAGE_TYPES else self._audio
        box.setdefault(topic, []).append((receipt, receipt if stamp is None else stamp))

    def add_diagnostics(self, receipt: float, msg) -> None:
        """Take one DiagnosticArray: the encoders' own drop counters."""
        for status in msg.status:
            if status.name.endswith(': encoder'):
                values = {kv.key: kv.value for kv in status.values}
                self._diag.setdefault(status.name, []).append((receipt, values))

    # -- analysis --------------------------------------------------------------------------
    def finish(self) -> 'TimelineData':
        """Associate sensor topics and encoder statistics with lanes; return self."""
        encoder_of = getattr(self, '_encoder_of', {})
        for topic, items in self._images.items():
            stamps = {round(s, 6) for _, s in items}
            best, share = None, 0.0
            for lane in self.lanes.values():
                if lane.stamps:
                    hit = np.mean([round(s, 6) in stamps for s in lane.stamps])
                    if hit > share:
                        best, share = lane, hit
            if best is not None and share >= 0.5:  # its embeddings carry these frames' stamps
                best.inputs, best.input_topic, best.frames = sorted(items), topic, True
        audio = self.lanes.get('audio')
        if audio is not None and self._audio and not audio.inputs:
            topic = max(self._audio, key=lambda t: len(self._audio[t]))
            audio.inputs, audio.input_topic = sorted(self._audio[topic]), topic
        for name, series in self._diag.items():
            lane = self.lanes.get(encoder_of.get(series[-1][1].get('encoder', ''), ''))
            if lane is None:
                continue
            key = 'dropped' if 'dropped' in series[-1][1] else 'skipped_windows'
            last = 0
            for t, values in series:
                try:
                    count = int(values.get(key, 0))
                except ValueError:
                    continue
                if count > last:
                    lane.encoder_drops.append((t, count - last))
                last = max(last, count)
        return self

    @property
    def start(self) -> float:
        """
        Return where the picture starts: shortly before the first embedding or output.

        Sensor messages recorded while the nodes were still loading their models would
        otherwise take the left of the picture; the lanes count them (`early_inputs`).
        """
        times = [t for lane in self.lanes.values() for t in lane.arrivals[:1]]
        times += [self.outputs[0][0]] if self.outputs else []
        if times:
            return min(times) - 0.5
        times = [lane.inputs[0][0] for lane in self.lanes.values() if lane.inputs]
        return min(times) if times else 0.0

    @property
    def end(self) -> float:
        """Return the latest receipt time."""
        times = [lane.arrivals[-1] for lane in self.lanes.values() if lane.arrivals]
        times += [lane.inputs[-1][0] for lane in self.lanes.values() if lane.inputs]
        times += [self.outputs[-1][0]] if self.outputs else []
        return max(times) if times else 0.0


def lane_stats(lane: Lane, outputs) -> dict:
    """Return the figures of one lane: counts, rate, encode time, gaps, drops, staleness."""
    arrivals = np.asarray(lane.arrivals)
    encode = np.asarray(lane.encode) * 1e3
    out = {'embeddings': len(arrivals), 'rate_hz': 0.0, 'encode_p50_ms': None,
           'encode_p99_ms': None, 'gaps': gaps(arrivals), 'not_encoded': [],
           'skipped': sum(c for _, c in lane.encoder_drops), 'fusion_rejected': 0,
           'fusion_dropped': 0, 'stale_s': 0.0, 'absent_s': 0.0}
    if len(arrivals) > 1:
        out['rate_hz'] = (len(arrivals) - 1) / max(arrivals[-1] - arrivals[0], 1e-9)
    if encode.size and encode.max() > 0:
        out['encode_p50_ms'] = float(np.percentile(encode, 50))
        out['encode_p99_ms'] = float(np.percentile(encode, 99))
    if lane.frames and lane.stamps:  # a frame is encoded whole or not at all
        encoded = {round(s, 6) for s in lane.stamps}
        first = min(lane.arrivals)  # frames before the encoder was up are not drops
        out['not_encoded'] = [t for t, s in lane.inputs
                              if round(s, 6) not in encoded and t >= first]
    last = None
    for receipt, msg in outputs:
        state = next((m for m in msg.modalities if m.modality == lane.name), None)
        if state is None:
            continue
        if last is not None:
            out['fusion_rejected'] += max(0, int(state.rejected) - int(last.rejected))
            out['fusion_dropped'] += max(0, int(state.dropped) - int(last.dropped))
        last = state
    out['stale_spans'] = state_spans(outputs, lane.name, 'stale')
    out['absent_spans'] = state_spans(outputs, lane.name, 'absent')
    out['stale_s'] = sum(b - a for a, b in out['stale_spans'])
    out['absent_s'] = sum(b - a for a, b in out['absent_spans'])
    return out


def gaps(times: np.ndarray) -> List[Tuple[float, float]]:
    """Return the intervals of `times` longer than GAP_FACTOR x the median interval."""
    if len(times) < 3:
        return []
    intervals = np.diff(times)
    limit = max(GAP_FACTOR * float(np.median(intervals)), GAP_MIN)
    return [(float(times[i]), float(times[i + 1])) for i in np.flatnonzero(intervals > limit)]


def state_spans(outputs, modality: str, which: str) -> List[Tuple[float, float]]:
    """Return the time spans during which the outputs reported `modality` stale or absent."""
    spans, begin, prev = [], None, None
    for receipt, msg in outputs:
        state = next((m for m in msg.modalities if m.modality == modality), None)
        flag = state is not None and (state.stale if which == 'stale' else not state.present)
        if flag and begin is None:
            begin = receipt
        elif not flag and begin is not None:
            spans.append((begin, receipt))
            begin = None
        prev = receipt
    if begin is not None:
        spans.append((begin, prev))
    return spans


def decision_spans(outputs) -> List[Tuple[float, float, str]]:
    """Return (start, end, decision) runs of the outputs ('' when invalid)."""
    runs = []
    for receipt, msg in outputs:
        decision = msg.decision if msg.valid else ''
        if runs and runs[-1][2] == decision:
            runs[-1][1] = receipt
        else:
            if runs:
                runs[-1][1] = receipt
            runs.append([receipt, receipt, decision])
    return [tuple(r) for r in runs]


# ---------------------------------------------------------------------- loading

def load_bag(path: str, output_topic: Optional[str] = None) -> TimelineData:
    """Read what the timeline needs from a bag (BagError if it cannot be read)."""
    from .bag_io import BagError, BagReader
    with BagReader(path) as reader:
        topics = reader.topics
        outs = [t for t, ty in topics.items() if ty == OUTPUT]
        if output_topic is None and outs:
            counts = {c.topic: c.msgcount for c in reader.connections}
            output_topic = max(outs, key=lambda t: counts.get(t, 0))
        elif output_topic is not None and output_topic not in outs:
            raise BagError(f'{path} has no FusionOutput topic {output_topic} (it has: '
                           f'{", ".join(outs) or "none"})')
        # Only the embeddings of the chosen graph: same namespace as its output topic.
        ns = output_topic.rsplit('/', 1)[0] + '/' if output_topic else '/'
        wanted = {t for t, ty in topics.items()
                  if (ty == EMBEDDING and t.startswith(ns)) or t == output_topic
                  or ty in IMAGE_TYPES or ty in AUDIO_TYPES or ty == DIAGNOSTICS}
        if not any(topics[t] in (EMBEDDING, OUTPUT) for t in wanted):
            raise BagError(f'{path} has no late_fusion_msgs Embedding or FusionOutput topic '
                           f'(topics: {", ".join(sorted(topics)) or "none"})')
        parts = os.path.normpath(os.path.abspath(path)).split(os.sep)
        data = TimelineData(source='/'.join(parts[-2:]), output_topic=output_topic or '')
        for topic, msgtype, ns_time, raw in reader.messages(wanted):
            receipt = ns_time * 1e-9
            if msgtype == EMBEDDING:
                data.add_embedding(receipt, reader.deserialize(raw, msgtype))
            elif msgtype == OUTPUT:
                data.add_output(receipt, reader.deserialize(raw, msgtype))
            elif msgtype == DIAGNOSTICS:
                data.add_diagnostics(receipt, reader.deserialize(raw, msgtype))
            elif msgtype == 'audio_common_msgs/msg/AudioData':
                data.add_input(topic, msgtype, receipt, None)
            else:
                data.add_input(topic, msgtype, receipt, header_stamp(raw))
    return data.finish()


def record_live(seconds: float, output_topic: Optional[str] = None) -> TimelineData:
    """Subscribe to a running graph (topics found by type) for `seconds`; return its data."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from ..shared.qos import EMBEDDING_QOS
    from late_fusion_msgs.msg import Embedding, FusionOutput
    from diagnostic_msgs.msg import DiagnosticArray
    rclpy.init()
    node = rclpy.create_node('fusion_timeline')
    data = TimelineData(source='live run')
    subscribed = set()

    def now() -> float:
        return node.get_clock().now().nanoseconds * 1e-9

    def discover():
        for topic, types in node.get_topic_names_and_types():
            if topic in subscribed:
                continue
            if OUTPUT in types and (output_topic is None or topic == output_topic):
                data.output_topic = data.output_topic or topic
                node.create_subscription(FusionOutput, topic,
                                         lambda m: data.add_output(now(), m), EMBEDDING_QOS)
            elif EMBEDDING in types:
                node.create_subscription(Embedding, topic,
                                         lambda m: data.add_embedding(now(), m), EMBEDDING_QOS)
            elif topic == '/diagnostics' and DIAGNOSTICS in types:
                node.create_subscription(DiagnosticArray, topic,
                                         lambda m: data.add_diagnostics(now(), m), 10)
            else:
                continue
            subscribed.add(topic)
    end = time.monotonic() + seconds
    try:
        while rclpy.ok() and time.monotonic() < end:
            discover()
            rclpy.spin_once(node, timeout_sec=0.2)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return data.finish()


# ---------------------------------------------------------------------- drawing

def _color(name: str, k: int) -> str:
    return MODALITY_COLORS.get(name, OTHER_COLORS[k % len(OTHER_COLORS)])


def _spans(ax, spans, t0, **style):
    for a, b in spans:
        ax.axvspan(a - t0, max(b, a + 0.01) - t0, **style)


def render_png(data: TimelineData, path: Optional[str] = None, dpi: int = 110) -> bytes:
    """Draw the timeline; write it to `path` (if given) and return the PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    lanes = [lane for lane in data.lanes.values() if lane.arrivals or lane.inputs]
    t0, t1 = data.start, data.end
    heights = [1.25] * len(lanes) + [0.35, 1.9, 1.15]
    fig = Figure(figsize=(14, 0.9 + sum(heights) * 0.95), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights, hspace=0.12,
                            left=0.075, right=0.79, top=0.9, bottom=0.07)
    axes = [fig.add_subplot(grid[0])]
    axes += [fig.add_subplot(grid[i], sharex=axes[0]) for i in range(1, len(heights))]
    strategy = data.outputs[-1][1].strategy if data.outputs else ''
    fig.suptitle(f'late_fusion_ros timeline: {data.source}  ({t1 - t0:.1f} s'
                 f"{', strategy ' + strategy if strategy else ''}"
                 f"{', ' + data.output_topic if data.output_topic else ''})",
                 x=0.075, y=0.985, ha='left', fontsize=12, fontweight='bold')

    for k, (ax, lane) in enumerate(zip(axes, lanes)):
        color = _color(lane.name, k)
        stats = lane_stats(lane, data.outputs)
        t = np.asarray(lane.arrivals) - t0
        enc = np.asarray(lane.encode) * 1e3
        measured = enc.size and enc.max() > 0
        top = float(np.percentile(enc, 99.5)) * 1.35 if measured else 1.0
        top = max(top, 1e-3)
        _spans(ax, stats['absent_spans'], t0, color='#9e9e9e', alpha=0.25, lw=0)
        _spans(ax, stats['stale_spans'], t0, color='#d62728', alpha=0.13, lw=0)
        _spans(ax, stats['gaps'], t0, facecolor='none', edgecolor='#555555', hatch='////',
               lw=0)
        if measured:
            ax.scatter(t, np.minimum(enc, top * 0.97), s=5, color=color, lw=0, zorder=3)
            ax.set_ylabel(f'{lane.name}\nencode ms', fontsize=9)
        else:  # offline bags: arrivals only
            ax.vlines(t, 0.25 * top, 0.75 * top, color=color, lw=0.6, zorder=3)
            ax.set_ylabel(f'{lane.name}\narrivals', fontsize=9)
            ax.set_yticks([])
        if lane.inputs:  # the sensor's own messages, a rug along the bottom
            ti = np.asarray([r for r, _ in lane.inputs]) - t0
            ax.vlines(ti, -0.16 * top, -0.05 * top, color='#444444', lw=0.35, zorder=2)
        drops = np.asarray(stats['not_encoded'] + [t for t, _ in lane.encoder_drops
                                                   if not stats['not_encoded']]) - t0
        if drops.size:
            ax.scatter(drops, np.full(drops.size, 0.9 * top), marker='x', s=10,
                       color='#d62728', lw=0.7, zorder=4)
        rejected = _fusion_losses(data.outputs, lane.name)
        if rejected:
            ax.scatter(np.asarray(rejected) - t0, np.full(len(rejected), 0.9 * top),
                       marker='v', s=18, color='#ff9800', zorder=4)
        ax.set_ylim(-0.2 * top, top)
        ax.tick_params(labelsize=8)
        ax.grid(axis='x', alpha=0.25)
        enc_txt = (f"encode p50 {stats['encode_p50_ms']:.1f} / p99 "
                   f"{stats['encode_p99_ms']:.1f} ms" if stats['encode_p50_ms'] is not None
                   else 'encode time not measured')
        n_drop = len(stats['not_encoded']) or stats['skipped']
        lines = [f"{stats['embeddings']} embeddings, {stats['rate_hz']:.1f} Hz", enc_txt,
                 f'{n_drop} dropped by the encoder',
                 f"{stats['fusion_rejected']} rejected, {stats['fusion_dropped']} dropped "
                 'by fusion', f"{len(stats['gaps'])} gaps, stale {stats['stale_s']:.1f} s"]
        if lane.inputs:
            early = sum(r < t0 for r, _ in lane.inputs)
            lines.append(f'{lane.input_topic}: {len(lane.inputs)} msgs'
                         + (f', {early} earlier' if early else ''))
        ax.text(1.01, 0.5, '\n'.join(lines), transform=ax.transAxes, fontsize=8,
                va='center')

    dec_ax, score_ax, lat_ax = axes[len(lanes):]
    _draw_decisions(dec_ax, data, t0)
    _draw_scores(score_ax, data, t0, lanes)
    _draw_latency(lat_ax, data, t0, lanes)
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)
    clock = time.strftime('%H:%M:%S', time.localtime(t0)) + f'.{int((t0 % 1) * 1000):03d}'
    lat_ax.set_xlabel(f'seconds (receipt time) since {clock}', fontsize=9)
    axes[0].set_xlim(0, max(t1 - t0, 0.1))
    handles = [Patch(color='#d62728', alpha=0.25, label='stale (fusion ignores it)'),
               Patch(color='#9e9e9e', alpha=0.4, label='absent (nothing yet)'),
               Patch(facecolor='none', edgecolor='#555555', hatch='////', label='gap in stream'),
               Line2D([], [], marker='x', color='#d62728', lw=0, label='dropped by encoder'),
               Line2D([], [], marker='v', color='#ff9800', lw=0,
                      label='rejected/dropped by fusion'),
               Line2D([], [], marker='|', color='#444444', lw=0, label='sensor message')]
    fig.legend(handles=handles, loc='upper left', fontsize=8, ncol=6, frameon=False,
               bbox_to_anchor=(0.07, 0.955), handlelength=1.5, columnspacing=1.2)
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=dpi)
    png = buf.getvalue()
    if path:
        with open(path, 'wb') as f:
            f.write(png)
    return png


def _fusion_losses(outputs, modality: str) -> List[float]:
    """Return the receipt times at which the fusion's rejected+dropped count of `modality` rose."""
    times, last = [], None
    for receipt, msg in outputs:
        state = next((m for m in msg.modalities if m.modality == modality), None)
        if state is None:
            continue
        total = int(state.rejected) + int(state.dropped)
        if last is not None and total > last:
            times.append(receipt)
        last = total
    return times


def _draw_decisions(ax, data: TimelineData, t0: float) -> None:
    labels = []
    for a, b, decision in decision_spans(data.outputs):
        color = DECISION_COLORS.get(decision) or (
            '#eeeeee' if not decision else OTHER_COLORS[hash(decision) % len(OTHER_COLORS)])
        ax.axvspan(a - t0, max(b, a + 0.01) - t0, color=color, lw=0,
                   hatch='xx' if not decision else None)
        if b - a > 0.06 * max(data.end - data.start, 1e-3):
            ax.text((a + b) / 2 - t0, 0.5, decision or 'no input', ha='center', va='center',
                    fontsize=8, color='white' if decision == 'speaking' else 'black')
        labels.append(decision)
    ax.set_yticks([])
    ax.set_ylabel('decision', fontsize=9, rotation=0, ha='right', va='center')
    changes = max(0, len(labels) - 1)
    ax.text(1.01, 0.5, f'{changes} decision changes', transform=ax.transAxes, fontsize=8,
            va='center')


def _draw_scores(ax, data: TimelineData, t0: float, lanes) -> None:
    if not data.outputs:
        ax.text(0.5, 0.5, 'no FusionOutput in this bag', transform=ax.transAxes,
                ha='center', va='center')
        return
    valid = [m for _, m in data.outputs if m.valid and len(m.labels)]
    label = valid[-1].labels[0] if valid else None
    t = np.asarray([r for r, _ in data.outputs]) - t0
    if label is not None and all(list(m.labels[:1]) == [label] for _, m in data.outputs
                                 if m.valid):
        score = np.asarray([m.scores[0] if m.valid and len(m.scores) else np.nan
                            for _, m in data.outputs])
        name = f'P({label})'
    else:  # labels vary from output to output (e.g. ImageNet classes): the confidence
        score = np.asarray([m.confidence if m.valid else np.nan for _, m in data.outputs])
        name = 'confidence'
    conf = np.asarray([m.confidence if m.valid else np.nan for _, m in data.outputs])
    ax.plot(t, score, color='#222222', lw=0.9, label=name, zorder=3)
    if name != 'confidence':
        ax.plot(t, conf, color='#888888', lw=0.7, ls=':', label='confidence', zorder=2)
    trig = [m.trigger_modality for _, m in data.outputs]
    for k, lane in enumerate(lanes):
        sel = np.asarray([x == lane.name for x in trig])
        if sel.any():
            ax.scatter(t[sel], score[sel], s=6, color=_color(lane.name, k), lw=0, zorder=4,
                       label=f'{lane.name}-triggered ({int(sel.sum())})')
    ax.axhline(0.5, color='#999999', lw=0.6, ls='--', zorder=1)
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel('fused score', fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(axis='x', alpha=0.25)
    ax.legend(loc='center left', bbox_to_anchor=(1.005, 0.5), fontsize=8, frameon=False)


def _draw_latency(ax, data: TimelineData, t0: float, lanes) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    if not data.outputs:
        return
    t = np.asarray([r for r, _ in data.outputs]) - t0
    lat = np.asarray([m.capture_to_output_latency for _, m in data.outputs]) * 1e3
    trig = [m.trigger_modality for _, m in data.outputs]
    text = []
    for k, lane in enumerate(lanes):
        sel = np.asarray([x == lane.name for x in trig])
        if sel.any():
            ax.scatter(t[sel], np.maximum(lat[sel], 0.1), s=4, color=_color(lane.name, k),
                       lw=0)
            text.append(f'{lane.name}: p50 {np.percentile(lat[sel], 50):.0f} / p99 '
                        f'{np.percentile(lat[sel], 99):.0f} ms')
    ax.set_yscale('log')
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f'{v:g}'))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel('capture to\noutput ms', fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.25)
    ax.text(1.01, 0.5, 'latency by trigger\n' + '\n'.join(text), transform=ax.transAxes,
            fontsize=8, va='center')


def render_html(data: TimelineData, png: bytes, path: str) -> None:
    """Write a self-contained page: the picture (base64) and a table of the figures."""
    rows = []
    for lane in data.lanes.values():
        s = lane_stats(lane, data.outputs)
        fmt = (lambda v: '-' if v is None else f'{v:.1f}')
        rows.append(
            f'<tr><td>{html.escape(lane.name)}</td><td>{s["embeddings"]}</td>'
            f'<td>{s["rate_hz"]:.1f}</td><td>{fmt(s["encode_p50_ms"])}</td>'
            f'<td>{fmt(s["encode_p99_ms"])}</td>'
            f'<td>{len(s["not_encoded"]) or s["skipped"]}</td><td>{s["fusion_rejected"]}</td>'
            f'<td>{s["fusion_dropped"]}</td><td>{len(s["gaps"])}</td>'
            f'<td>{s["stale_s"]:.1f}</td><td>{html.escape(lane.input_topic or "-")}'
            f'{f" ({len(lane.inputs)})" if lane.inputs else ""}</td></tr>')
    outs = []
    if data.outputs:
        trig = {}
        for _, m in data.outputs:
            trig.setdefault(m.trigger_modality, []).append(m.capture_to_output_latency * 1e3)
        for name, lat in trig.items():
            outs.append(f'<tr><td>{html.escape(name)}</td><td>{len(lat)}</td>'
                        f'<td>{np.percentile(lat, 50):.1f}</td>'
                        f'<td>{np.percentile(lat, 99):.1f}</td></tr>')
        share = {}
        for a, b, d in decision_spans(data.outputs):
            share[d or '(no input)'] = share.get(d or '(no input)', 0.0) + b - a
        decisions = ', '.join(f'{html.escape(k)} {v:.1f} s' for k, v in share.items())
    else:
        decisions = 'no outputs'
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>late_fusion_ros timeline: {html.escape(data.source)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }}
td, th {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
</style></head><body>
<h1>late_fusion_ros timeline: {html.escape(data.source)}</h1>
<p>{data.end - data.start:.1f} s, {len(data.outputs)} fused outputs on
{html.escape(data.output_topic or '-')}; decisions: {decisions}.</p>
<img alt="timeline" src="data:image/png;base64,{base64.b64encode(png).decode('ascii')}">
<h2>Modalities</h2>
<table><tr><th>modality</th><th>embeddings</th><th>rate Hz</th><th>encode p50 ms</th>
<th>encode p99 ms</th><th>dropped by encoder</th><th>rejected by fusion</th>
<th>dropped by fusion</th><th>gaps</th><th>stale s</th><th>sensor topic (messages)</th></tr>
{''.join(rows)}</table>
<h2>Outputs by trigger</h2>
<table><tr><th>trigger</th><th>outputs</th><th>capture to output p50 ms</th>
<th>p99 ms</th></tr>{''.join(outs)}</table>
<p>Times are receipt times of the recording. Encoder drops: camera frames the encoder never
encoded (latest-frame-wins) or audio windows it skipped; gaps: stretches of a stream longer
than {GAP_FACTOR:g} of its usual intervals.</p>
</body></html>
"""
    with open(path, 'w', encoding='utf-8') as f:
        f.write(page)


def default_paths(bag: str) -> Tuple[str, str]:
    """Return the PNG and HTML paths beside a bag: <bag>.timeline.png / .html."""
    base = os.path.normpath(bag)
    if os.path.isfile(base):
        base = os.path.splitext(base)[0]
    return base + '.timeline.png', base + '.timeline.html'


def _main(argv=None) -> int:
    """Draw the timeline of a bag, or of a live run with --live."""
    parser = argparse.ArgumentParser(
        prog='fusion_timeline', description=__doc__.strip().splitlines()[0].strip('`: '))
    parser.add_argument('bag', nargs='?', help='bag directory or .mcap/.db3 file')
    parser.add_argument('--live', type=float, metavar='SECONDS',
                        help='instead of a bag, watch the running graph this long')
    parser.add_argument('-o', '--png', help='PNG to write (default: <bag>.timeline.png)')
    parser.add_argument('--html', help='HTML page to write (default: beside the PNG)')
    parser.add_argument('--output-topic', help='FusionOutput topic to show (default: the '
                        'busiest one; embeddings of the same namespace)')
    args = parser.parse_args(argv)
    from .bag_io import BagError
    if (args.bag is None) == (args.live is None):
        parser.error('give a bag or --live SECONDS')
    try:
        if args.live is not None:
            data = record_live(args.live, args.output_topic)
            png_path = args.png or 'live.timeline.png'
        else:
            data = load_bag(args.bag, args.output_topic)
            png_path = args.png or default_paths(args.bag)[0]
        if not data.lanes and not data.outputs:
            print('fusion_timeline: nothing to draw (no embeddings, no outputs)',
                  file=sys.stderr)
            return 1
        html_path = args.html or os.path.splitext(png_path)[0] + '.html'
        png = render_png(data, png_path)
        render_html(data, png, html_path)
    except (BagError, OSError) as err:
        print(f'fusion_timeline: {err}', file=sys.stderr)
        return 1
    print(f'timeline: {png_path}\n          {html_path}', flush=True)
    return 0


def main(argv=None) -> int:
    """Run; Ctrl-C at any point ends with one line and exit code 130, never a traceback."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print('fusion_timeline: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
