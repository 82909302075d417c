"""w2v2cli.data.text: normalisation rules, letters and the letter dictionary."""

from __future__ import annotations

import pytest

from w2v2cli.data.text import UnknownCharacterError, format_dict, letter_counts, normalize_text, to_letters


def test_normalize_text_rules():
    assert normalize_text("Grüß Gott, Herr Müller!", "de") == "grüß gott herr müller"
    assert normalize_text("Don’t stop—it's ‘fine’.", "en") == "DON'T STOP IT'S FINE"
    assert normalize_text("L'homme a vu l’église.", "fr") == "l'homme a vu l'église"
    assert normalize_text("ﬁne ＡＢＣ", "en") == "FINE ABC"  # NFKC
    assert normalize_text("Cafe\u0301 — niño?", "es") == "café niño"  # combining accent composed
    assert normalize_text("well-known 'quoted'", "en") == "WELL KNOWN QUOTED"
    assert normalize_text("O'Brien", "de") == "obrien"  # German keeps no apostrophe
    with pytest.raises(UnknownCharacterError, match="'1'"):
        normalize_text("in 1984", "en")
    with pytest.raises(UnknownCharacterError, match="CYRILLIC"):
        normalize_text("hello мир", "en")
    assert normalize_text("Ελληνικά κείμενα", "el") == "ελληνικά κείμενα"  # unlisted language: any letter


def test_letters_and_dict():
    assert to_letters("A MAN") == "A | M A N |"
    assert to_letters("  HE  SAID ") == "H E | S A I D |"
    counts = letter_counts(["A B A |", "C | A |"])
    assert counts == [("A", 3), ("|", 3), ("B", 1), ("C", 1)]  # count desc, ties by code point
    assert format_dict(counts) == "A 3\n| 3\nB 1\nC 1\n"
