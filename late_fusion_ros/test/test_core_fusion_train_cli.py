# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Test of train_fusion: a recorded bag and a labels CSV in, a working model file out."""

import os

from late_fusion_ros.core.fusion import FusionConfig, FusionEngine, ModalityConfig
from late_fusion_ros.tools.train_fusion import EMBEDDING, main, make_typestore, read_embeddings
import numpy as np
import pytest

MSG_DIR = os.path.join(os.path.dirname(__file__), '..', '..', 'late_fusion_msgs', 'msg')


def write_bag(path, store):
    """Record audio speech scores and vision embeddings; speaking in [0, 5), silent after."""
    from rosbags.rosbag2 import Writer
    types = store.types
    rng = np.random.default_rng(1)

    def message(modality, seq, t, data, labels, scores):
        stamp = types['builtin_interfaces/msg/Time'](sec=int(t), nanosec=int(t % 1 * 1e9))
        zero = types['builtin_interfaces/msg/Duration'](sec=0, nanosec=0)
        return types[EMBEDDING](
            header=types['std_msgs/msg/Header'](stamp=stamp, frame_id='cam'),
            modality=modality, encoder_id='test', seq=seq,
            data=np.asarray(data, np.float32), labels=labels,
            scores=np.asarray(scores, np.float32), source_duration=zero, processing_time=zero,
            processing_seconds=0.0, capture_to_publish_latency=0.0)

    with Writer(path, version=9) as writer:
        audio = writer.add_connection('/audio/embedding', EMBEDDING, typestore=store)
        vision = writer.add_connection('/vision/embedding', EMBEDDING, typestore=store)
        for k in range(100):
            t = 0.1 * k
            speaking = t < 5.0
            speech = np.clip(rng.normal(0.8 if speaking else 0.2, 0.1), 0, 1)
            msgs = [(audio, message('audio', k, t, [], ['speech'], [speech]))]
            if k % 2 == 0:
                centre = 1.0 if speaking else -1.0
                msgs.append((vision, message('vision', k, t + 0.01, rng.normal(centre, 0.3, 4),
                                             ['face'], [0.9])))
            for connection, msg in msgs:
                writer.write(connection, int(t * 1e9),
                             store.serialize_cdr(msg, EMBEDDING))


@pytest.mark.parametrize('strategy,suffix', [('meta_learner', '.npz'), ('attention', '.pt')])
def test_train_from_bag(tmp_path, strategy, suffix):
    """The CLI reads the bag with rosbags, pairs samples with labels and writes a model."""
    store = make_typestore(MSG_DIR)
    bag = str(tmp_path / 'bag')
    write_bag(bag, store)
    labels = tmp_path / 'labels.csv'
    labels.write_text('start,end,label\n0.0,4.95,speaking\n5.0,10.0,not_speaking\n')
    out = str(tmp_path / f'model{suffix}')
    assert main([bag, '--labels', str(labels), '--strategy', strategy, '--out', out,
                 '--msg-dir', MSG_DIR, '--epochs', '200']) == 0
    # Replaying the bag through the engine with the trained model reproduces the labels.
    engine = FusionEngine(FusionConfig([ModalityConfig('audio'), ModalityConfig('vision')],
                                       strategy, {'model_path': out}))
    outputs = [engine.update(inp, inp.stamp).output for inp in read_embeddings([bag], store)]
    # Attention has nothing to attend to until the first vision embedding arrives.
    valid = [o for o in outputs if o.valid]
    assert len(valid) >= len(outputs) - 1
    assert sorted(valid[0].labels) == ['not_speaking', 'speaking']
    hits = [o.decision == ('speaking' if o.stamp < 5.0 else 'not_speaking') for o in valid]
    assert np.mean(hits) > 0.9
