"""w2v2cli.synth.sentences: variety, held-out pools and words, open-vocabulary sentences."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from w2v2cli.data.text import normalize_text
from w2v2cli.synth.sentences import (_BLOCKED, LANGUAGES, OpenVocabulary, SentenceGenerator, _digest,
                                      held_out_word, sentence_pool)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_sentence_generator_variety_and_pools(lang):
    gen = SentenceGenerator(lang, seed=5)
    sents = list(itertools.islice(gen.unique(None, 4, 16), 3000))
    assert len({normalize_text(s, lang) for s in sents}) == 3000  # thousands of distinct sentences
    pools = Counter(sentence_pool(s) for s in sents)
    assert 0.03 < pools["test"] / 3000 < 0.07 and 0.03 < pools["dev"] / 3000 < 0.07
    test_only = list(itertools.islice(SentenceGenerator(lang, seed=6).unique("test"), 50))
    assert all(sentence_pool(s) == "test" for s in test_only)
    assert SentenceGenerator(lang, 5).sentence() == SentenceGenerator(lang, 5).sentence()


def test_open_vocabulary_sentences():
    ov = OpenVocabulary(seed=5)
    assert len(ov.words) == 30_000 and len(set(ov.words)) == 30_000
    assert all(w.isalpha() and w.islower() and _digest(w) not in _BLOCKED for w in ov.words)
    sents = list(itertools.islice(ov.unique("train", 5, 14), 2000))
    keys = [normalize_text(s, "en") for s in sents]
    assert len(set(keys)) == 2000 and all(s[0].isupper() and s.endswith(".") for s in sents)
    lengths = Counter(len(k.split()) for k in keys)
    assert min(lengths) == 5 and max(lengths) == 14 and len(lengths) == 10
    assert all(sentence_pool(s) == "train" for s in sents)
    words = Counter(w for k in keys for w in k.lower().split())
    assert not any(held_out_word(w) for w in words)  # the test set's OOV words stay out of training text
    assert len(words) > 8000  # the grammar has ~2,400 words in all
    assert set(words) <= set(ov.words)
    # frequency ** 0.6: function words lead, as in real text, but "the" is ~0.5 % of the words, not ~5 %
    top = [w for w, _ in words.most_common(3)]
    assert set(top) <= {"the", "to", "and", "of", "a", "in", "i", "is", "you", "that"}
    assert 0.003 < words["the"] / sum(words.values()) < 0.01
    dev = list(itertools.islice(OpenVocabulary(seed=5).unique("dev"), 20))
    assert all(sentence_pool(s) == "dev" for s in dev)
    assert list(itertools.islice(OpenVocabulary(seed=5).unique("train", 5, 14), 5)) == sents[:5]
