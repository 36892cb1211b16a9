# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
The fusion node's wire format: Embeddings read from bytes, FusionOutputs written as bytes.

Byte for byte what rclpy's message API gives, but for the content of CDR's alignment
padding, which rclpy's serializer leaves as its buffer held it and this one writes as
zeros (readers skip it).

At thousands of arrivals a second the message API costs the fusion node more than fusing:
rclpy turns every Embedding into a Python message (a property setter per field) and every
FusionOutput back into C structures before the middleware serializes it. Here the node
subscribes raw (`create_subscription(raw=True)`) and publishes bytes (`publish(bytes)`):

- `parse_embedding` reads an Embedding's CDR bytes with a few `struct` calls, its float
  arrays as numpy views of the bytes (no copy), straight into the engine's EmbeddingInput;
  it returns None for an encoding it does not read (anything but little-endian plain CDR,
  which every ROS 2 DDS middleware uses for these types), so the caller falls back to
  `rclpy.serialization.deserialize_message`.
- `FusionOutputWriter` serializes a FusionResult. The message's layout only changes with
  its strings and sequence lengths (trigger modality, decision, strategy, labels, modality
  names, the carried transcript), so it is compiled once per such shape into one
  `struct.Struct`, with every constant (strings, the transcript) baked into the arguments
  and CDR's alignment padding into the format; an output is then one list copy, a few
  assignments and one `pack` call. The layout is built by walking a FusionOutput filled
  by the message API (`fusion_output_msg`), so both paths agree by construction, and the
  tests compare them byte for byte with `serialize_message`.

CDR here is what rmw_fastrtps and rmw_cyclonedds put on the wire for ROS 2 types (XCDR1,
`00 01 00 00` encapsulation, little endian): primitives aligned to their size counted from
the end of the 4-byte encapsulation header, strings as a uint32 length including the
terminating NUL, sequences as a uint32 count followed by their elements.
"""

import struct
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ..core.fusion import EmbeddingInput, FusionResult

# Encapsulation of a little-endian plain-CDR payload (the representation identifier 0x0001
# and two option bytes), as the ROS 2 middlewares send it.
CDR_LE = b'\x00\x01\x00\x00'
_ORIGIN = 4  # alignment counts from the end of the encapsulation header

_STAMP_AND_LEN = struct.Struct('<iII').unpack_from  # header.stamp, len(header.frame_id)
_U32 = struct.Struct('<I').unpack_from
_SEQ_AND_LEN = struct.Struct('<QI').unpack_from     # seq (8-aligned), len(data)
_F64 = struct.Struct('<d').unpack_from
_F32 = np.dtype('<f4')


def parse_embedding(buf: bytes) -> Optional[Tuple[EmbeddingInput, float]]:
    """
    Read a serialized late_fusion_msgs/Embedding into (EmbeddingInput, capture_to_publish).

    The input's fields are what `embedding_to_input` makes of the message: the stamp as
    sec + nanosec * 1e-9, strings decoded as rclpy decodes them (UTF-8, errors replaced),
    `data` and `scores` as read-only float32 views of `buf`. Returns None when `buf` is not
    little-endian plain CDR (use the message API then); raises ValueError or struct.error
    for bytes that end early.
    """
    if buf[:4] != CDR_LE:
        return None
    # Offsets are absolute in `buf`; the origin (4) is 4-aligned, so 4-byte alignment of
    # an absolute offset is the same as of a relative one; 8-byte alignment is not.
    sec, nanosec, n = _STAMP_AND_LEN(buf, 4)
    o = 16 + n
    frame_id = buf[16:o - 1].decode('utf-8', 'replace')
    o += -o & 3
    (n,) = _U32(buf, o)
    modality = buf[o + 4:o + 3 + n].decode('utf-8', 'replace')
    o += 4 + n
    o += -o & 3
    (n,) = _U32(buf, o)
    encoder_id = buf[o + 4:o + 3 + n].decode('utf-8', 'replace')
    o += 4 + n
    o += (_ORIGIN - o) & 7
    seq, n = _SEQ_AND_LEN(buf, o)
    o += 12
    data = np.frombuffer(buf, _F32, n, o)
    o += 4 * n
    (count,) = _U32(buf, o)
    o += 4
    labels = []
    for _ in range(count):
        (n,) = _U32(buf, o)
        labels.append(buf[o + 4:o + 3 + n].decode('utf-8', 'replace'))
        o += 4 + n
        o += -o & 3
    (n,) = _U32(buf, o)
    o += 4
    scores = np.frombuffer(buf, _F32, n, o)
    # Then source_duration and processing_time (2 x int32, uint32), processing_seconds
    # (float64, 8-aligned) and capture_to_publish_latency.
    o += 4 * n + 16
    o += (_ORIGIN - o) & 7
    (latency,) = _F64(buf, o + 8)
    return (EmbeddingInput(modality, seq, sec + nanosec * 1e-9, data, labels, scores,
                           encoder_id, frame_id), latency)


# ---------------------------------------------------------------------- writing

# struct codes of the IDL primitive types.
_PRIMITIVES = {'boolean': '?', 'octet': 'B', 'byte': 'B', 'char': 'B', 'uint8': 'B',
               'int8': 'b', 'int16': 'h', 'uint16': 'H', 'int32': 'i', 'uint32': 'I',
               'int64': 'q', 'uint64': 'Q', 'float': 'f', 'double': 'd'}


class _Dynamic:
    """Placeholder of a field filled on every output (its name says which)."""

    __slots__ = ('name',)

    def __init__(self, name):
        self.name = name


class _Layout:
    """
    A message laid out as CDR: struct format pieces, constant arguments and placeholders.

    `offset` counts from the end of the encapsulation header; padding is 'x' in the format
    (zero bytes; rclpy's serializer leaves whatever its buffer held there).
    """

    def __init__(self):
        self.items: List[Tuple[str, Any]] = []  # (format piece, argument or None for a pad)
        self.offset = 0

    def align(self, size: int) -> None:
        pad = -self.offset % size
        if pad:
            self.items.append((f'{pad}x', None))
            self.offset += pad

    def primitive(self, code: str, value) -> None:
        size = struct.calcsize(code)
        self.align(size)
        self.items.append((code, value))
        self.offset += size

    def string(self, text: str) -> None:
        data = text.encode('utf-8') + b'\0'
        self.primitive('I', len(data))
        self.items.append((f'{len(data)}s', data))
        self.offset += len(data)

    def message(self, msg, dynamic: Dict[str, Any], path: str = '') -> None:
        """Lay out `msg` field by field; fields named in `dynamic` become placeholders."""
        for field, kind in msg.get_fields_and_field_types().items():
            name = path + field
            value = getattr(msg, field)
            if name in dynamic:
                dynamic[name](self, name, value)
            elif kind in _PRIMITIVES:
                self.primitive(_PRIMITIVES[kind], value)
            elif kind == 'string':
                self.string(value)
            elif kind.startswith('sequence<') and kind.endswith('>'):
                inner = kind[len('sequence<'):-1]
                self.primitive('I', len(value))
                for k, item in enumerate(value):
                    self._element(inner, item, dynamic, f'{name}[{k}].')
            elif '/' in kind:
                self.message(value, dynamic, name + '.')
            else:  # arrays, bounded types, wide strings: not in these messages
                raise TypeError(f'{type(msg).__name__}.{field}: {kind} is not supported')

    def _element(self, kind: str, item, dynamic, path: str) -> None:
        if kind in _PRIMITIVES:
            if kind in ('double', 'int64', 'uint64'):
                # An empty sequence of 8-byte values is not aligned by every serializer.
                raise TypeError(f'sequence<{kind}> is not supported')
            self.primitive(_PRIMITIVES[kind], item)
        elif kind == 'string':
            self.string(item)
        elif '/' in kind:
            self.message(item, dynamic, path)
        else:
            raise TypeError(f'sequence<{kind}> is not supported')

    def padding(self) -> List[Tuple[int, int]]:
        """Return (byte offset in the serialized message, length) of every padding run."""
        pads, at = [], 0
        for piece, value in self.items:
            size = struct.calcsize('<' + piece)
            if value is None:
                pads.append((at, size))
            at += size
        return pads

    def build(self) -> Tuple[struct.Struct, List[Any], Dict[str, int]]:
        """
        Return (Struct, argument template, {placeholder name: argument index}).

        Runs of constants are packed into one bytes argument each (padding inside a run
        included), so that the template holds few arguments; padding next to a placeholder
        stays in the format. A run's bytes do not depend on where it starts: every offset
        it was aligned for is fixed by the shape.
        """
        fmt, args, slots = ['<'], [], {}
        run_fmt, run_args = [], []

        def flush():
            # Trailing pads of a run stay in the format (they border a placeholder or end).
            tail = []
            while run_fmt and run_fmt[-1].endswith('x'):
                tail.insert(0, run_fmt.pop())
            if run_args:
                blob = struct.pack('<' + ''.join(run_fmt), *run_args)
                fmt.append(f'{len(blob)}s')
                args.append(blob)
            elif run_fmt:
                fmt.extend(run_fmt)
            fmt.extend(tail)
            run_fmt.clear()
            run_args.clear()

        for piece, value in self.items:
            if isinstance(value, _Dynamic):
                flush()
                fmt.append(piece)
                slots[value.name] = len(args)
                args.append(None)
            elif value is None:  # padding: leads a run only when nothing constant precedes
                if run_args:
                    run_fmt.append(piece)
                else:
                    fmt.append(piece)
            else:
                run_fmt.append(piece)
                run_args.append(value)
        flush()
        return struct.Struct(''.join(fmt)), args, slots


def _dynamic(code: str) -> Callable:
    """Return a layout hook that puts a placeholder of struct type `code`."""
    def put(layout: _Layout, name: str, value) -> None:
        layout.primitive(code, _Dynamic(name))
    return put


def _dynamic_floats(layout: _Layout, name: str, value) -> None:
    """Lay out a float32 sequence of fixed length: count constant, its bytes one argument."""
    layout.primitive('I', len(value))
    layout.items.append((f'{4 * len(value)}s', _Dynamic(name)))
    layout.offset += 4 * len(value)


# The fields of a FusionOutput that change from output to output of one shape; everything
# else (strings, sequence lengths, the transcript) is part of the shape.
_STATE_FIELDS = (('present', '?'), ('stale', '?'), ('stamp.sec', 'i'),
                 ('stamp.nanosec', 'I'), ('age', 'd'), ('weight', 'f'), ('attention', 'f'),
                 ('seq', 'Q'), ('received', 'Q'), ('rejected', 'Q'), ('dropped', 'Q'))
_OUTPUT_FIELDS = (('header.stamp.sec', 'i'), ('header.stamp.nanosec', 'I'),
                  ('trigger_seq', 'Q'), ('confidence', 'f'), ('valid', '?'),
                  ('capture_to_output_latency', 'd'), ('arrival_to_publish_latency', 'd'),
                  ('transcript_age', 'd'))


class _Shape:
    """One compiled layout: Struct, argument template and where each value goes."""

    __slots__ = ('pack', 'args', 'stamp', 'seq', 'scores', 'confidence', 'states', 'stride',
                 'count', 'latency', 'transcript_age', 'transcript', 'padding')

    def __init__(self, msg, transcript):
        count = len(msg.modalities)
        dynamic = {name: _dynamic(code) for name, code in _OUTPUT_FIELDS}
        dynamic['scores'] = _dynamic_floats
        for k in range(count):
            dynamic.update({f'modalities[{k}].{name}': _dynamic(code)
                            for name, code in _STATE_FIELDS})
        layout = _Layout()
        layout.items.append(('4s', CDR_LE))  # before the origin of alignment
        layout.message(msg, dynamic)
        packer, self.args, slots = layout.build()
        self.padding = layout.padding()
        self.pack = packer.pack
        self.transcript = transcript  # kept: the shape is keyed by its id()
        self.stamp = slots['header.stamp.sec']
        self.seq = slots['trigger_seq']
        self.scores = slots['scores']
        self.confidence = slots['confidence']
        self.latency = slots['capture_to_output_latency']
        self.transcript_age = slots['transcript_age']
        self.count = count
        # Each modality's fields follow each other and every modality takes as many
        # arguments (its name is one constant run): field f of modality k sits at
        # states + k * stride + f.
        self.states = slots['modalities[0].present'] if count else 0
        self.stride = (slots['modalities[1].present'] - self.states) if count > 1 else 0
        for k in range(count):
            for f, (name, _) in enumerate(_STATE_FIELDS):
                assert slots[f'modalities[{k}].{name}'] == self.states + k * self.stride + f
        assert slots['header.stamp.nanosec'] == self.stamp + 1
        assert slots['valid'] == self.confidence + 1
        assert slots['arrival_to_publish_latency'] == self.latency + 1


def _stamp(t: float) -> Tuple[int, int]:
    """Float seconds as builtin_interfaces/Time (sec, nanosec), as fusion_output_msg sets it."""
    ns = max(0, int(round(t * 1e9)))
    return ns // 1_000_000_000, ns % 1_000_000_000


class FusionOutputWriter:
    """
    Serialize FusionResults as FusionOutput CDR bytes, one compiled layout per shape.

    `build(fused, frame_id, transcript)` must return the FusionOutput the message API
    makes of the result (the node passes fusion_output_msg): it is called once per new
    shape and walked for the layout. `write` returns what `serialize_message` returns
    for that message with the given latencies.
    """

    MAX_SHAPES = 64  # decisions x triggers x transcripts seen; cleared when exceeded

    def __init__(self, build: Callable[..., Any]):
        """Keep the message builder used for new shapes."""
        self._build = build
        self._shapes: Dict[tuple, _Shape] = {}

    def write(self, fused: FusionResult, frame_id: str, transcript,
              capture_to_output: float, arrival_to_publish: float) -> bytes:
        """Return the serialized FusionOutput of `fused` (see fusion_output_msg)."""
        final = transcript is not None and transcript.final
        reports = fused.modalities
        columns = getattr(reports, 'columns', None)
        names = tuple(reports.names if columns is not None else (r.modality for r in reports))
        key = (fused.trigger_modality, fused.decision, fused.strategy, tuple(fused.labels),
               len(fused.scores), frame_id, names, id(transcript) if final else None)
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shape(key, fused, frame_id, transcript if final else None)
        self._last = shape
        a = shape.args[:]
        i = shape.stamp
        a[i], a[i + 1] = _stamp(fused.stamp)
        a[shape.seq] = fused.trigger_seq
        scores = fused.scores
        if type(scores) is not np.ndarray or scores.dtype is not _F32:
            scores = np.asarray(scores, _F32)  # as the message API rounds them
        a[shape.scores] = scores.tobytes()
        i = shape.confidence
        a[i], a[i + 1] = float(fused.confidence), bool(fused.valid)
        i = shape.latency
        a[i], a[i + 1] = capture_to_output, arrival_to_publish
        if final:
            end = transcript.end
            a[shape.transcript_age] = fused.stamp - (end.sec + end.nanosec * 1e-9)
        else:
            a[shape.transcript_age] = 0.0
        if shape.count:
            self._states(a, shape, fused, columns)
        return shape.pack(*a)

    def padding(self, fused: FusionResult, frame_id: str, transcript) -> List[Tuple[int, int]]:
        """Return (offset, length) of the padding bytes in `write`'s output for `fused`."""
        self.write(fused, frame_id, transcript, 0.0, 0.0)
        return list(self._last.padding)

    def _shape(self, key, fused, frame_id, transcript) -> _Shape:
        if len(self._shapes) >= self.MAX_SHAPES:
            self._shapes.clear()
        shape = self._shapes[key] = _Shape(self._build(fused, frame_id, transcript),
                                           transcript)
        return shape

    @staticmethod
    def _states(a: list, shape: _Shape, fused: FusionResult, columns) -> None:
        """Fill every ModalityState's values, as fusion_output_msg does from the reports."""
        attention = fused.attention
        i, step = shape.states, shape.stride
        if columns is None:
            for r in fused.modalities:
                a[i:i + 11] = (r.present, r.stale, *_stamp(r.stamp), float(r.age),
                               float(r.weight), float(attention.get(r.modality, 0.0)), r.seq,
                               r.received, r.rejected, r.dropped)
                i += step
            return
        # The engine's snapshot arrays, read without making one report per modality: what
        # ModalityReports.__getitem__ reports (zeros where a modality is not present).
        present, stale, stamp, ahead, weight, seq, counts = columns()
        for name, p, st, t, ah, w, q, c in zip(
                fused.modalities.names, present.tolist(), stale.tolist(), stamp.tolist(),
                ahead.tolist(), weight.tolist(), seq.tolist(), counts.T.tolist()):
            att = float(attention.get(name, 0.0))
            if p:
                ns = max(0, int(round(t * 1e9)))
                a[i:i + 11] = (True, st, ns // 1_000_000_000, ns % 1_000_000_000, -ah, w, att,
                               q, *c)
            else:
                a[i:i + 11] = (False, False, 0, 0, 0.0, 0.0, att, 0, *c)
            i += step
