# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Tests of the fusion engine: validation, staleness, policies and the rule-based strategies.

Expected numbers are worked out by hand in each test, never taken from the code under test.
"""

import math
import os
import subprocess
import sys

from late_fusion_ros.core.fusion import EmbeddingInput, FusionConfig, FusionEngine, ModalityConfig
from late_fusion_ros.core.fusion.engine import MAX_SEQ_GAP, REWIND_CONFIRM
import numpy as np
import pytest


def inp(modality, seq, stamp, labels=(), scores=(), data=()):
    """Build an EmbeddingInput from plain lists."""
    return EmbeddingInput(modality, seq, stamp, np.asarray(data, np.float32), list(labels),
                          np.asarray(scores, np.float32))


def engine(strategy='weighted_average', modalities=None, **kwargs):
    """Build an engine over audio and vision (defaults) with `strategy`."""
    modalities = modalities or [ModalityConfig('audio'), ModalityConfig('vision')]
    return FusionEngine(FusionConfig(modalities, strategy=strategy, **kwargs))


def snapshot(result):
    """Everything of a FusionResult that depends on fused state, not on counters."""
    reports = [(m.modality, m.present, m.stale, m.stamp, m.age, m.weight, m.seq)
               for m in result.modalities]
    return (result.labels, [round(float(s), 7) for s in result.scores], result.decision,
            result.confidence, result.valid, reports, result.attention)


def test_weighted_average_hand_computed():
    """Weighted mean per label over the modalities reporting it, with decayed weights."""
    eng = engine(modalities=[ModalityConfig('audio'), ModalityConfig('vision', prior=2.0)])
    eng.update(inp('audio', 1, 9.5, ['speech', 'music'], [0.8, 0.2]), 9.5)
    out = eng.update(inp('vision', 1, 10.0, ['speech', 'face'], [0.4, 0.9]), 10.0).output
    # audio: age 0.5, exp decay tau 1 -> 0.60653066; confidence 0.8 -> w_a = 0.48522453.
    # vision: age 0, prior 2, confidence 0.9 -> w_v = 1.8.
    # speech = (0.48522453 * 0.8 + 1.8 * 0.4) / (0.48522453 + 1.8)
    #        = 1.10817962 / 2.28522453 = 0.48493251
    assert out.valid
    assert out.labels == ['speech', 'music', 'face']
    np.testing.assert_allclose(out.scores, [0.48493251, 0.2, 0.9], rtol=1e-6)
    assert out.decision == 'face'
    assert out.confidence == pytest.approx(0.9)
    assert (out.trigger_modality, out.trigger_seq, out.stamp) == ('vision', 1, 10.0)
    assert [m.weight for m in out.modalities] == pytest.approx([0.48522453, 1.8])


def test_speaking_to_robot_both_cues():
    """Speech and a face with a moving mouth pool as a sum of logits."""
    eng = engine('speaking_to_robot')
    eng.update(inp('audio', 1, 10.0, ['speech'], [0.8]), 10.0)
    out = eng.update(inp('vision', 1, 10.0, ['face', 'mouth_moving'], [0.9, 0.5]), 10.0).output
    # logit(0.8) = ln 4 = 1.38629436; cue 0.9 * 0.5 = 0.45, logit = ln(0.45 / 0.55) = -0.2006707
    # P = sigmoid(1.18562366) = 0.76595745
    assert out.labels == ['speaking', 'not_speaking']
    np.testing.assert_allclose(out.scores, [0.76595745, 0.23404255], rtol=1e-6)
    assert out.decision == 'speaking'
    assert out.confidence == pytest.approx(0.76595745)


def test_speaking_to_robot_speech_without_face_is_not_speaking_to_robot():
    """Speech while nobody faces the robot is pulled down to not_speaking."""
    eng = engine('speaking_to_robot')
    eng.update(inp('audio', 1, 10.0, ['speech'], [0.9]), 10.0)
    out = eng.update(inp('vision', 1, 10.0, ['face', 'mouth_moving'], [0.1, 0.2]), 10.0).output
    # logit(0.9) = 2.19722458; cue 0.02, logit = ln(0.02 / 0.98) = -3.8918203 -> z = -1.6945957
    # P = 1 / (1 + e^1.6945957) = 0.15517241
    np.testing.assert_allclose(out.scores[0], 0.15517241, rtol=1e-6)
    assert out.decision == 'not_speaking'
    assert out.confidence == pytest.approx(0.84482759)


def test_speaking_to_robot_audio_alone_reduced_confidence_and_stale_vision_ignored():
    """Stale vision drops out; audio alone decides with reduced confidence."""
    eng = engine('speaking_to_robot')
    eng.update(inp('vision', 1, 5.0, ['face', 'mouth_moving'], [0.1, 0.1]), 5.0)
    out = eng.update(inp('audio', 1, 10.0, ['speech'], [0.8]), 10.0).output
    # vision is 5 s old (> max_age 2): audio alone, P = 0.8, confidence 0.8 * 0.75 = 0.6
    np.testing.assert_allclose(out.scores, [0.8, 0.2], rtol=1e-6)
    assert out.decision == 'speaking'
    assert out.confidence == pytest.approx(0.6)
    assert [(m.stale, m.weight) for m in out.modalities] == [
        (False, pytest.approx(0.8)), (True, 0.0)]


def test_speaking_to_robot_decayed_audio_is_tempered():
    """An aged cue is tempered by its reliability towards 0.5."""
    eng = engine('speaking_to_robot', modalities=[
        ModalityConfig('audio', decay='linear', max_age=2.0), ModalityConfig('vision')])
    eng.update(inp('audio', 1, 9.0, ['speech'], [0.8]), 9.0)
    out = eng.evaluate(10.0)
    # age 1 of max_age 2, linear -> r = 0.5; P = sigmoid(0.5 * ln 4) = sigmoid(ln 2) = 2/3
    np.testing.assert_allclose(out.scores[0], 2.0 / 3.0, rtol=1e-6)
    assert out.confidence == pytest.approx(2.0 / 3.0 * 0.75)


SPEECH_LABELS = ['addressed_to_robot', 'stop', 'come_here']


def speech_engine():
    """Audio, vision and the transcription node's speech modality (max_age 30, tau 5)."""
    return engine('speaking_to_robot', modalities=[
        ModalityConfig('audio'), ModalityConfig('vision'),
        ModalityConfig('speech', max_age=30.0, time_constant=5.0)])


def test_speaking_to_robot_addressed_by_name_pulls_up_while_voice_goes_on():
    """'robot' heard in the last utterance adds its logit to the voice activity's."""
    eng = speech_engine()
    eng.update(inp('speech', 1, 8.0, SPEECH_LABELS, [0.9, 0.0, 0.0]), 10.0)
    out = eng.update(inp('audio', 1, 10.0, ['speech'], [0.6]), 10.0).output
    # speech: age 2, r = e^(-2/5) = 0.67032005, score 0.9 -> logit((1 + 0.9) / 2) =
    # logit(0.95) = 2.94443898 -> 1.97371647; audio: logit(0.6) = 0.40546511.
    # P = sigmoid(2.37918158) = 0.91522596; two cues.
    np.testing.assert_allclose(out.scores, [0.91522596, 0.08477404], rtol=1e-6)
    assert out.decision == 'speaking'
    assert out.confidence == pytest.approx(0.91522596)
    # Voice activity alone would have said 0.6 with single-cue confidence 0.45.
    alone = engine('speaking_to_robot').update(inp('audio', 1, 10.0, ['speech'], [0.6]), 10.0)
    assert alone.output.confidence == pytest.approx(0.45)


def test_speaking_to_robot_name_cannot_outvote_silence_heard_now():
    """Having been addressed does not make silence count as speaking to the robot."""
    eng = speech_engine()
    eng.update(inp('speech', 1, 9.0, SPEECH_LABELS, [0.95, 0.0, 0.0]), 10.0)
    out = eng.update(inp('audio', 1, 10.0, ['speech'], [0.02]), 10.0).output
    # speech: r = e^(-1/5) = 0.81873075, logit((1 + 0.95) / 2) = 3.66356165 -> 2.99947059;
    # audio: logit(0.02) = -3.8918203. P = sigmoid(-0.89234971) = 0.29062517
    np.testing.assert_allclose(out.scores[0], 0.29062517, rtol=1e-6)
    assert out.decision == 'not_speaking'


@pytest.mark.parametrize('scores, why', [
    ([0.0, 0.9, 0.0], 'the robot was not named (only "stop")'),
    ([0.25, 0.0, 0.0], 'the name was heard too unsurely (<= addressed_threshold 0.3)'),
])
def test_speaking_to_robot_unnamed_utterance_is_no_evidence(scores, why):
    """An utterance that does not (surely) name the robot gives no cue: audio alone decides."""
    eng = speech_engine()
    eng.update(inp('speech', 1, 9.0, SPEECH_LABELS, scores), 10.0)
    out = eng.update(inp('audio', 1, 10.0, ['speech'], [0.8]), 10.0).output
    np.testing.assert_allclose(out.scores, [0.8, 0.2], rtol=1e-6, err_msg=why)
    assert out.confidence == pytest.approx(0.6), why  # single cue: 0.8 * 0.75


def test_speaking_to_robot_speech_modality_and_label_are_options():
    """speech_modality and addressed name another modality and label."""
    eng = engine('speaking_to_robot', modalities=[
        ModalityConfig('audio'), ModalityConfig('words', max_age=30.0, decay='none')],
        strategy_params={'speech_modality': 'words', 'addressed': 'hey'})
    eng.update(inp('words', 1, 9.0, ['hey'], [0.8]), 10.0)
    out = eng.update(inp('audio', 1, 10.0, ['speech'], [0.5]), 10.0).output
    # logit((1 + 0.8) / 2) = logit(0.9), r = 1; logit(0.5) = 0 -> P = 0.9
    np.testing.assert_allclose(out.scores[0], 0.9, rtol=1e-6)


@pytest.mark.parametrize('decay,age,factor', [
    ('exponential', 0.5, math.exp(-0.5 / 0.25)),  # tau 0.25 -> e^-2 = 0.13533528
    ('linear', 0.5, 0.75),                        # 1 - 0.5 / 2
    ('none', 1.9, 1.0),
    ('exponential', 2.5, 0.0),                    # older than max_age: stale
    ('linear', 2.5, 0.0),
    ('none', 2.5, 0.0),
])
def test_decay_values(decay, age, factor):
    """Weight = prior * confidence * decay(age), and 0 with stale=True past max_age."""
    cfg = ModalityConfig('audio', prior=2.0, decay=decay, time_constant=0.25, max_age=2.0)
    eng = engine(modalities=[cfg])
    eng.update(inp('audio', 1, 10.0, ['speech'], [0.5]), 10.0)
    report = eng.evaluate(10.0 + age).modalities[0]
    assert report.age == pytest.approx(age)
    assert report.weight == pytest.approx(2.0 * 0.5 * factor)  # prior * confidence * decay
    assert report.stale == (age > 2.0)


def test_stale_modality_contributes_nothing():
    """A stale modality is reported stale with weight 0 and does not move the result."""
    eng = engine()
    eng.update(inp('audio', 1, 0.0, ['speech'], [0.1]), 0.0)
    out = eng.update(inp('vision', 1, 3.0, ['speech'], [0.7]), 3.0).output
    assert out.valid and out.decision == 'speech'
    np.testing.assert_allclose(out.scores, [0.7], rtol=1e-6)
    audio = out.modalities[0]
    assert audio.present and audio.stale and audio.weight == 0.0
    assert audio.age == pytest.approx(3.0)


def test_nothing_present_or_all_stale_is_invalid():
    """Without usable input the result is invalid and carries no invented numbers."""
    eng = engine()
    for out in (eng.evaluate(1.0), None):
        if out is None:
            eng.update(inp('audio', 1, 1.0, ['speech'], [0.9]), 1.0)
            out = eng.evaluate(10.0)
        assert not out.valid
        assert out.labels == [] and out.scores.size == 0
        assert out.decision == '' and out.confidence == 0.0


def _good():
    return inp('audio', 2, 10.0, ['speech'], [0.5], data=[1.0, 2.0])


BAD = {
    'unknown_modality': inp('lidar', 2, 10.0, ['x'], [0.5]),
    'wrong_dimension': inp('audio', 2, 10.0, ['speech'], [0.5], data=[1.0, 2.0, 3.0]),
    'non_finite': inp('audio', 2, 10.0, ['speech'], [math.nan], data=[1.0, 2.0]),
    'empty': inp('audio', 2, 10.0),
    'length_mismatch': inp('audio', 2, 10.0, ['speech', 'music'], [0.5], data=[1.0, 2.0]),
    'duplicate_seq': inp('audio', 1, 10.0, ['speech'], [0.5], data=[1.0, 2.0]),
    'out_of_order': inp('audio', 2, 8.0, ['speech'], [0.5], data=[1.0, 2.0]),
}


@pytest.mark.parametrize('reason', sorted(BAD))
def test_bad_input_rejected_state_untouched(reason):
    """Each malformed or misordered input is refused, counted, and leaves the state as it was."""
    eng = engine(modalities=[ModalityConfig('audio', dim=2), ModalityConfig('vision')])
    eng.update(inp('audio', 1, 9.0, ['speech'], [0.2], data=[0.0, 0.0]), 9.0)
    before = snapshot(eng.evaluate(10.0))
    res = eng.update(BAD[reason], 10.0)
    assert not res.accepted and res.reason == reason and res.output is None
    assert snapshot(eng.evaluate(10.0)) == before
    counts = eng.counters()
    key = '<unknown>' if reason == 'unknown_modality' else 'audio'
    kind = 'dropped' if reason in ('duplicate_seq', 'out_of_order') else 'rejected'
    assert counts[key][reason] == 1 and counts[key][kind] == 1
    # The engine still accepts good input afterwards.
    assert eng.update(_good(), 10.0).accepted


def test_inf_in_data_rejected():
    """Inf in the embedding is refused like NaN."""
    eng = engine()
    res = eng.update(inp('audio', 1, 1.0, data=[1.0, math.inf]), 1.0)
    assert res.reason == 'non_finite'


def test_embedding_only_input_has_confidence_one():
    """An input without scores has confidence 1."""
    eng = engine()
    out = eng.update(inp('audio', 1, 1.0, data=[1.0, 2.0]), 1.0).output
    # Present with weight 1, but weighted_average has no labels to fuse: invalid, no numbers.
    assert out.modalities[0].weight == pytest.approx(1.0) and not out.valid


def test_time_reset_clears_state_then_processes_input():
    """A clock jump back by more than 1 s resets the state, then the input is used."""
    eng = engine()
    eng.update(inp('audio', 5, 100.0, ['speech'], [0.9]), 100.0)
    eng.update(inp('vision', 5, 100.0, ['speech'], [0.9]), 100.0)
    # A jitter of less than a second backwards is not a reset.
    assert not eng.update(inp('audio', 6, 100.2, ['speech'], [0.9]), 99.5).reset
    res = eng.update(inp('audio', 1, 3.0, ['speech'], [0.4]), 3.0)
    assert res.reset and res.accepted  # `now` itself went back: no confirmation needed
    assert [m.present for m in res.output.modalities] == [True, False]
    np.testing.assert_allclose(res.output.scores, [0.4], rtol=1e-6)
    assert eng.counters()['audio']['received'] == 3  # counters survive a time reset


def test_future_stamp_rejected_state_untouched():
    """A stamp more than max(1 s, max_age) ahead of now is refused; slightly ahead is fine."""
    eng = engine()  # max_age 2.0 -> tolerance 2.0 s
    eng.update(inp('audio', 1, 10.0, ['speech'], [0.8]), 10.0)
    before = snapshot(eng.evaluate(10.0))
    res = eng.update(inp('audio', 2, 12.5, ['speech'], [0.3]), 10.0)  # 2.5 s ahead
    assert not res.accepted and res.reason == 'future_stamp' and res.output is None
    assert not res.reset
    assert snapshot(eng.evaluate(10.0)) == before
    counts = eng.counters()['audio']
    assert counts['future_stamp'] == 1 and counts['rejected'] == 1 and counts['received'] == 1
    # 0.5 s ahead (clock skew) is accepted: age clamps to 0, so weight = confidence 0.7.
    res = eng.update(inp('audio', 3, 10.5, ['speech'], [0.3]), 10.0)
    assert res.accepted and res.output.modalities[0].weight == pytest.approx(0.7)
    # A normal input after that is still accepted (the refused stamp 12.5 was not kept).
    assert eng.update(inp('audio', 4, 10.6, ['speech'], [0.3]), 10.6).accepted


def test_stamps_jumping_back_reset_state_once_confirmed_while_now_goes_on():
    """A bag loop without --clock: stamps jump back, now does not; confirmed, state resets."""
    eng = engine()
    eng.update(inp('audio', 10, 104.0, ['speech'], [0.9]), 104.0)
    eng.update(inp('vision', 10, 104.0, ['speech'], [0.9]), 104.0)
    # The bag restarts at stamp 100.0 while now keeps going: 4 s back > max(1, max_age 2).
    # The first REWIND_CONFIRM - 1 inputs of the loop are dropped, changing nothing...
    for k in range(REWIND_CONFIRM - 1):
        res = eng.update(inp('audio', 1 + k, 100.0 + 0.032 * k, ['speech'], [0.4]),
                         104.1 + 0.032 * k)
        assert not res.accepted and res.reason == 'out_of_order' and not res.reset
        assert eng.evaluate(104.1).modalities[1].present
    # ... then the loop is confirmed: all state resets and the input is used.
    k = REWIND_CONFIRM - 1
    res = eng.update(inp('audio', 1 + k, 100.0 + 0.032 * k, ['speech'], [0.4]),
                     104.1 + 0.032 * k)
    assert res.accepted and res.reset and res.reason == ''
    audio, vision = res.output.modalities
    assert (audio.present, audio.seq) == (True, 1 + k)
    assert audio.age == pytest.approx(4.1) and audio.stale  # 4.1 s old > max_age 2
    assert not vision.present
    assert eng.counters()['audio']['received'] == 2  # counters survive the reset
    # The loop's next input follows the new stamps: accepted, no further reset.
    res = eng.update(inp('audio', 10, 100.2, ['speech'], [0.4]), 104.3)
    assert res.accepted and not res.reset


def test_a_stray_old_stamp_changes_nothing():
    """One zero or ancient stamp between good inputs is dropped, never a reset."""
    eng = engine()
    for k in range(5):
        eng.update(inp('audio', k, 100.0 + k * 0.1, ['speech'], [0.9]), 100.0 + k * 0.1)
        eng.update(inp('vision', k, 100.0 + k * 0.1, ['speech'], [0.9]), 100.0 + k * 0.1)
    before = snapshot(eng.evaluate(100.5))
    for seq, stamp in ((90, 0.0), (91, 3.0), (92, 99.0), (93, 0.0), (94, 1.0)):
        res = eng.update(inp('vision', seq, stamp, ['speech'], [0.1]), 100.45)
        assert not res.accepted and res.reason == 'out_of_order' and not res.reset
        # Good traffic between the stray stamps keeps the confirmation from building up.
        assert eng.update(inp('audio', seq, 100.45 + seq * 1e-4, ['speech'], [0.9]),
                          100.45 + seq * 1e-4).accepted
    assert snapshot(eng.evaluate(100.5))[5][1] == before[5][1]  # vision's state untouched
    assert eng.counters()['vision']['out_of_order'] == 5


def test_an_input_naming_another_modality_is_rejected_where_it_arrived():
    """An Embedding saying 'vision' on audio's topic: rejected and counted under audio."""
    eng = engine()
    res = eng.update(inp('vision', 1, 10.0, ['speech'], [0.9]), 10.0, arrived_on='audio')
    assert not res.accepted and res.reason == 'foreign_modality'
    counts = eng.counters()
    assert counts['audio']['rejected'] == 1 and counts['audio']['foreign_modality'] == 1
    assert counts['vision']['rejected'] == 0 and '<unknown>' not in counts
    # An empty modality takes the topic's; the topic's own name is accepted.
    assert eng.update(inp('', 2, 10.0, ['speech'], [0.9]), 10.0, arrived_on='audio').accepted
    assert eng.update(inp('audio', 3, 10.1, ['speech'], [0.9]), 10.1,
                      arrived_on='audio').accepted
    assert eng.evaluate(10.1).modalities[0].seq == 3


def test_slightly_late_input_is_still_out_of_order():
    """Older than the last stamp by at most max(1 s, max_age): dropped, no reset."""
    eng = engine(modalities=[ModalityConfig('audio', max_age=0.5), ModalityConfig('vision')])
    eng.update(inp('audio', 1, 100.0, ['speech'], [0.9]), 100.0)
    eng.update(inp('vision', 1, 100.0, ['speech'], [0.9]), 100.0)
    # max_age 0.5 < 1 s: the tolerance is 1 s, so 0.8 s late is merely late.
    res = eng.update(inp('audio', 2, 99.2, ['speech'], [0.4]), 100.1)
    assert not res.accepted and res.reason == 'out_of_order' and not res.reset
    assert eng.counters()['audio']['dropped'] == 1
    assert eng.evaluate(100.1).modalities[1].present  # vision kept
    # 1.5 s back is a jump, but a single one is a stray stamp: dropped, no reset.
    res = eng.update(inp('audio', 3, 98.5, ['speech'], [0.4]), 100.2)
    assert not res.accepted and not res.reset
    assert eng.evaluate(100.2).modalities[1].present


def test_huge_prior_does_not_overflow_the_sigmoid():
    """Prior 1000 drives |z| past exp's range: outputs stay valid, no overflow."""
    big = [ModalityConfig('audio', prior=1000.0), ModalityConfig('vision')]
    eng = engine('speaking_to_robot', modalities=big)
    with np.errstate(over='raise'):
        out = eng.update(inp('audio', 1, 10.0, ['speech'], [1e-4]), 10.0).output
    # p clipped to eps 1e-3: logit = ln(0.001 / 0.999) = -6.9067548; z = 1000 * that = -6906.75
    # P = sigmoid(z) ~ 0 (about 1e-3000, below float range) -> scores [0, 1].
    assert out.valid and out.decision == 'not_speaking'
    np.testing.assert_allclose(out.scores, [0.0, 1.0], atol=1e-30)
    assert out.confidence == pytest.approx(0.75)  # max(P, 1 - P) = 1, times 0.75 (one cue)
    # log_linear: weight 1000 * 0.9 = 900, z = +-900 * logit(0.9) = +-1977.5 -> P 1, resp. 0.
    eng = engine('log_linear', modalities=big)
    with np.errstate(over='raise'):
        out = eng.update(inp('audio', 1, 10.0, ['speech', 'music'], [0.9, 0.1]), 10.0).output
    np.testing.assert_allclose(out.scores, [1.0, 0.0], atol=1e-30)
    assert out.decision == 'speech'


def test_reset_forgets_everything():
    """reset() forgets inputs and counters."""
    eng = engine()
    eng.update(inp('audio', 1, 1.0, ['speech'], [0.4]), 1.0)
    eng.reset()
    assert not eng.evaluate(1.0).valid
    assert eng.counters()['audio']['received'] == 0
    assert eng.update(inp('audio', 1, 1.0, ['speech'], [0.4]), 1.0).accepted


def test_encoder_restart_with_lower_seq_but_newer_stamp_is_accepted():
    """Only an equal seq is a duplicate: a restarted encoder is accepted."""
    eng = engine()
    eng.update(inp('audio', 7, 1.0, ['speech'], [0.4]), 1.0)
    assert eng.update(inp('audio', 0, 1.1, ['speech'], [0.4]), 1.1).accepted


def test_gaps_in_an_encoders_seq_are_counted_as_lost():
    """Arrivals that never came are counted; rejects, restarts and other sources are not."""
    eng = engine()
    good = [0.5]
    for seq in (1, 2, 5):                 # 3 and 4 never arrived
        eng.update(inp('audio', seq, seq * 0.1, ['speech'], good), seq * 0.1)
    assert eng.counters()['audio']['lost'] == 2
    eng.update(inp('audio', 6, 0.6, ['speech'], [math.nan]), 0.6)   # rejected, not lost
    eng.update(inp('audio', 7, 0.7, ['speech'], good), 0.7)
    eng.update(inp('audio', 7, 0.7, ['speech'], good), 0.7)          # duplicate
    eng.update(inp('audio', 0, 0.8, ['speech'], good), 0.8)          # encoder restarted
    eng.update(inp('audio', 1, 0.9, ['speech'], good), 0.9)
    eng.update(inp('audio', 1 + MAX_SEQ_GAP + 1, 1.0, ['speech'], good), 1.0)  # not a gap
    eng.update(inp('vision', 9, 1.0, ['cat'], [0.9]), 1.0)
    eng.update(inp('vision', 12, 1.1, ['cat'], [0.9]), 1.1)
    # An input naming another modality on audio's topic says nothing of audio's seq.
    eng.update(inp('vision', 500, 1.2, ['cat'], [0.9]), 1.2, arrived_on='audio')
    counts = eng.counters()
    assert counts['audio']['lost'] == 2 and counts['vision']['lost'] == 2, counts
    assert counts['audio']['rejected'] == 2 and counts['audio']['dropped'] == 1, counts
    # A run-time reconfiguration keeps the counts and each source's place in its seq.
    eng.reconfigure(eng.config)
    eng.update(inp('vision', 14, 1.3, ['cat'], [0.9]), 1.3)
    assert eng.counters()['vision']['lost'] == 3


def test_import_needs_neither_ros_nor_torch():
    """The core imports without rclpy and loads torch only for strategies that need it."""
    code = ('import sys, late_fusion_ros.core.fusion; '
            "print(sorted(m for m in ('rclpy', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True, env=os.environ)
    assert out.stdout.strip() == '[]'


def test_input_confidence_of_a_detector_counts_both_ways():
    """One score is a detector: 0.1 is as sure as 0.9; several scores: the best one."""
    from late_fusion_ros.core.fusion.engine import input_confidence
    assert input_confidence(np.array([0.1], np.float32)) == pytest.approx(0.9)
    assert input_confidence(np.array([0.9], np.float32)) == pytest.approx(0.9)
    assert input_confidence(np.array([0.2, 0.5, 0.3], np.float32)) == pytest.approx(0.5)
    assert input_confidence(np.zeros(0, np.float32)) == 1.0
