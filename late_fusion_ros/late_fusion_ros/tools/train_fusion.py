# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Train a learned fusion strategy (meta_learner or attention) from recorded rosbag2 bags.

Reads late_fusion_msgs/Embedding messages with the `rosbags` library (no ROS runtime), the
message definitions registered from the package's .msg files, and a labels CSV with the
columns start,end,label (seconds on the embeddings' stamp clock; a moment outside every
interval is not used). Every embedding that falls inside a labelled interval yields one
sample: the latest input of each modality whose age at that moment is within --max-age,
i.e. what the fusion engine would see. Writes the model file the strategy loads.

    train_fusion BAG [BAG ...] --labels labels.csv --strategy meta_learner --out meta.npz
"""

import argparse
import bisect
import csv
import glob
import os
from pathlib import Path
from typing import Iterator, List, Sequence, Tuple

import numpy as np

from ..core.fusion.datatypes import EmbeddingInput

EMBEDDING = 'late_fusion_msgs/msg/Embedding'


def default_msg_dir() -> str:
    """Return the installed late_fusion_msgs/msg folder, or the source tree's."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return os.path.join(get_package_share_directory('late_fusion_msgs'), 'msg')
    except (ImportError, LookupError):
        here = os.path.dirname(os.path.abspath(__file__))
        return os.path.join(here, '..', '..', '..', 'late_fusion_msgs', 'msg')


def make_typestore(msg_dir: str):
    """Return a rosbags typestore with the late_fusion_msgs types registered from .msg files."""
    from rosbags.typesys import get_typestore, get_types_from_msg, Stores
    store = get_typestore(Stores.LATEST)
    types = {}
    for path in sorted(glob.glob(os.path.join(msg_dir, '*.msg'))):
        types.update(get_types_from_msg(Path(path).read_text(),
                                        f'late_fusion_msgs/msg/{Path(path).stem}'))
    if EMBEDDING not in types:
        raise ValueError(f'no Embedding.msg in {msg_dir!r}')
    store.register(types)
    return store


def read_embeddings(bags: Sequence[str], store) -> Iterator[EmbeddingInput]:
    """Yield every Embedding message of `bags` as an EmbeddingInput, in recording order."""
    from rosbags.highlevel import AnyReader
    with AnyReader([Path(b) for b in bags], default_typestore=store) as reader:
        connections = [c for c in reader.connections if c.msgtype == EMBEDDING]
        for connection, _, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, connection.msgtype)
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            yield EmbeddingInput(msg.modality, int(msg.seq), stamp,
                                 np.asarray(msg.data, np.float32), list(msg.labels),
                                 np.asarray(msg.scores, np.float32), msg.encoder_id,
                                 msg.header.frame_id)


def read_intervals(path: str) -> List[Tuple[float, float, str]]:
    """Read start,end,label rows (sorted by start; intervals must not overlap)."""
    with open(path, newline='') as f:
        rows = sorted((float(r['start']), float(r['end']), r['label'].strip())
                      for r in csv.DictReader(f))
    for (_, end, _), (start, _, _) in zip(rows, rows[1:]):
        if start < end:
            raise ValueError(f'{path}: labelled intervals overlap at {start}')
    return rows


def build_samples(inputs, intervals, max_age: float, kind: str):
    """Return (samples, labels) for train_meta_learner (kind 'scores') or train_attention."""
    starts = [start for start, _, _ in intervals]
    latest, samples, labels = {}, [], []
    for inp in sorted(inputs, key=lambda x: x.stamp):
        latest[inp.modality] = inp
        i = bisect.bisect_right(starts, inp.stamp) - 1
        if i < 0 or inp.stamp > intervals[i][1]:
            continue
        fresh = [x for x in latest.values() if inp.stamp - x.stamp <= max_age]
        if kind == 'scores':
            sample = {x.modality: dict(zip(x.labels, x.scores.tolist())) for x in fresh
                      if len(x.labels)}
        else:
            sample = {x.modality: x.data for x in fresh if x.data.size}
        if sample:
            samples.append(sample)
            labels.append(intervals[i][2])
    return samples, labels


def main(argv=None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('bags', nargs='+', help='rosbag2 folders holding Embedding topics')
    parser.add_argument('--labels', required=True, help='CSV with columns start,end,label')
    parser.add_argument('--strategy', choices=('meta_learner', 'attention'),
                        default='meta_learner')
    parser.add_argument('--out', required=True,
                        help='model file (.npz or .pt for meta_learner; .pt for attention)')
    parser.add_argument('--max-age', type=float, default=2.0,
                        help='seconds an input stays usable, as the fusion node is configured')
    parser.add_argument('--msg-dir', default=None, help='folder of late_fusion_msgs .msg files')
    parser.add_argument('--hidden', type=int, default=0, help='meta_learner hidden units')
    parser.add_argument('--d-model', type=int, default=32, help='attention token size')
    parser.add_argument('--epochs', type=int, default=300)
    args = parser.parse_args(argv)
    from ..core.fusion.training import train_attention, train_meta_learner
    store = make_typestore(args.msg_dir or default_msg_dir())
    kind = 'scores' if args.strategy == 'meta_learner' else 'embeddings'
    samples, labels = build_samples(read_embeddings(args.bags, store),
                                    read_intervals(args.labels), args.max_age, kind)
    if not samples:
        parser.error('no embedding falls inside a labelled interval')
    if args.strategy == 'meta_learner':
        path = train_meta_learner(samples, labels, args.out, hidden=args.hidden,
                                  epochs=args.epochs)
    else:
        path = train_attention(samples, labels, args.out, d_model=args.d_model,
                               epochs=args.epochs)
    counts = {label: labels.count(label) for label in sorted(set(labels))}
    print(f'trained {args.strategy} on {len(samples)} samples {counts}: wrote {path}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
