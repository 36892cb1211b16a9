# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Words of a transcript: normalisation, word error rate and the phrase table."""

from dataclasses import dataclass
import re
from typing import Dict, List, Mapping, Sequence, Tuple

# What a spoken word is, for matching and scoring: lower case, apostrophes inside words kept
# ("don't"), every other punctuation mark and hyphen a word break ("come-here" = "come here").
_NON_WORD = re.compile(r"[^a-z0-9']+")

# The default phrase table: label -> phrases that raise it. The node's parameters
# (phrase_labels, phrases.<label>) replace it; config/late_fusion.yaml spells it out.
DEFAULT_PHRASES: Dict[str, List[str]] = {
    'addressed_to_robot': ['robot', 'hey robot'],
    'stop': ['stop', 'halt'],
    'come_here': ['come here', 'come to me'],
}


def normalize_words(text: str) -> List[str]:
    """Return the words of `text` in lower case without punctuation (for matching and WER)."""
    words = _NON_WORD.sub(' ', text.lower()).split()
    return [w.strip("'") for w in words if w.strip("'")]


def word_errors(reference: str, hypothesis: str) -> Tuple[int, int]:
    """
    Return (word edits, reference words): the Levenshtein distance over normalised words.

    Substitutions, insertions and deletions each cost one. Written here (a dozen lines)
    rather than taken from jiwer, which would be a dependency for the tests and the
    benchmark only; the test suite checks it against hand-counted cases.
    """
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[:], i
        for j, h in enumerate(hyp, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (r != h))
    return row[-1], len(ref)


def wer(reference: str, hypothesis: str) -> float:
    """Return the word error rate of `hypothesis` against `reference` (0 for two empties)."""
    edits, n = word_errors(reference, hypothesis)
    return edits / n if n else float(edits > 0)


@dataclass(frozen=True)
class ScoredWord:
    """A recognised word and the model's probability for it (what phrase matching needs)."""

    text: str
    probability: float = 1.0


class PhraseTable:
    """
    Labels raised by phrases heard in a transcript, e.g. 'stop' by "stop" or "halt".

    A phrase matches where its words appear consecutively in the transcript, compared after
    normalize_words (case and punctuation ignored: "Robot, stop!" holds "robot" and "stop").
    A label's score is the mean model probability of the words of its best-matching phrase,
    0 when none of its phrases is heard: a score says how surely the phrase was said.
    """

    def __init__(self, phrases: Mapping[str, Sequence[str]]):
        """Build from {label: [phrase, ...]}; ValueError for an empty label or phrase."""
        self.labels: List[str] = []
        self._phrases: List[List[List[str]]] = []
        for label, texts in phrases.items():
            if not label or not isinstance(label, str):
                raise ValueError(f'phrase label must be a non-empty string, got {label!r}')
            if isinstance(texts, str):
                texts = [texts]
            split = [normalize_words(t) for t in texts]
            if not split or any(not words for words in split):
                raise ValueError(f'label {label!r}: every phrase needs at least one word, '
                                 f'got {list(texts)!r}')
            self.labels.append(label)
            self._phrases.append(split)

    def scores(self, words: Sequence[ScoredWord]) -> List[float]:
        """Return one score per label (see the class docstring) for a transcript's words."""
        # A model word may hold several normalised words ("robot's" is one, "come-here" two);
        # each inherits the probability of the word it came from.
        flat = [(w, word.probability) for word in words for w in normalize_words(word.text)]
        tokens = [w for w, _ in flat]
        out = []
        for phrases in self._phrases:
            best = 0.0
            for phrase in phrases:
                n = len(phrase)
                for i in range(len(tokens) - n + 1):
                    if tokens[i:i + n] == phrase:
                        best = max(best, sum(p for _, p in flat[i:i + n]) / n)
            out.append(float(best))
        return out
