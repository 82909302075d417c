"""Transcript normalisation, letter (`.ltr`) conversion and letter vocabularies.

    >>> from w2v2cli.data.text import normalize_text, to_letters, letter_counts
    >>> normalize_text("Grüß Gott, Herr Müller!", "de")
    'grüß gott herr müller'
    >>> to_letters("A MAN")
    'A | M A N |'

Normalisation, per language (`normalize_text(text, lang)`), in this order:

1. Unicode NFKC (compatibility forms and ligature-like code points fold: "ﬁ" -> "fi", full-width letters
   -> ASCII, a decomposed "e" + combining acute -> "é"). Typographic apostrophes (’ ʼ ´ `) become "'".
2. Case: English is UPPER case (the LibriSpeech convention, so LibriSpeech transcripts are unchanged);
   every other language is lower case (the MLS / Common Voice fine-tuning convention, and it keeps
   German "ß", which upper-casing would turn into "SS").
3. Punctuation and symbols (Unicode categories P* and S*) become spaces, so "well-known" is two words
   and "end." loses its dot. An apostrophe is kept only inside a word ("DON'T", "l'homme") in the
   languages that write it there (en, fr, it, nl, pt, ca); elsewhere it is dropped.
4. Runs of white space collapse to one space; leading and trailing space is removed.
5. What remains must be in the language's alphabet (`ALPHABETS`; for a language not listed: any
   Unicode letter or combining mark). Anything else - digits, letters of another script - is an
   *unknown character*: `normalize_text` raises `UnknownCharacterError` naming it, because a CTC model
   cannot learn to spell "1984" from letters it never sees. Spell numbers out in the source text.

Letters: `to_letters("A MAN") == "A | M A N |"` - fairseq's `.ltr` format (letters separated by spaces,
"|" between words and after the last one). `letter_counts` counts `.ltr` symbols for `dict.ltr.txt`,
written most frequent first (ties in code-point order), as `fairseq-preprocess --only-source` does.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable

WORD_SEP = "|"

_LOWER_LATIN = "abcdefghijklmnopqrstuvwxyz"

#: Letters allowed after normalisation, per language (apostrophe where the language keeps it).
ALPHABETS: dict[str, str] = {
    "en": _LOWER_LATIN.upper() + "'",
    "de": _LOWER_LATIN + "äöüß",
    "fr": _LOWER_LATIN + "àâæçéèêëîïôœùûüÿ'",
    "es": _LOWER_LATIN + "áéíóúñü",
    "it": _LOWER_LATIN + "àèéìíîòóùú'",
    "nl": _LOWER_LATIN + "áéíóúàèëïöüĳ'",
    "pt": _LOWER_LATIN + "áâãàçéêíóôõú'",
    "ca": _LOWER_LATIN + "àçéèíïóòúü·'",
    "pl": _LOWER_LATIN + "ąćęłńóśźż",
}

#: Languages written in upper case (LibriSpeech convention); the rest are lower case.
UPPER_CASE_LANGS = frozenset({"en"})

_APOSTROPHES = {"\u2019": "'", "\u02bc": "'", "\u00b4": "'", "`": "'", "\u2018": "'"}


class UnknownCharacterError(ValueError):
    """A transcript keeps a character outside the language's alphabet after normalisation."""

    def __init__(self, char: str, text: str, lang: str):
        name = unicodedata.name(char, f"U+{ord(char):04X}")
        super().__init__(f"unknown character {char!r} ({name}) for language '{lang}' in: {text!r}")
        self.char = char


def base_lang(lang: str) -> str:
    """'en-US' / 'pt_BR' / 'fr' -> 'en' / 'pt' / 'fr'."""
    return lang.replace("_", "-").split("-")[0].lower()


def _keeps_apostrophe(lang: str) -> bool:
    return "'" in ALPHABETS.get(lang, "'")


def _allowed(char: str, lang: str) -> bool:
    alphabet = ALPHABETS.get(lang)
    if alphabet is not None:
        return char in alphabet
    return char == "'" or unicodedata.category(char)[0] in "LM"


def normalize_text(text: str, lang: str = "en") -> str:
    """Normalise one transcript for language `lang` (see the module docstring for the rules).

    Raises `UnknownCharacterError` (a ValueError) for characters outside the language's alphabet.
    """
    lang = base_lang(lang)
    text = unicodedata.normalize("NFKC", text)
    text = "".join(_APOSTROPHES.get(c, c) for c in text)
    text = text.upper() if lang in UPPER_CASE_LANGS else text.lower()
    chars = []
    for c in text:
        if c == "'":
            chars.append(c)
        elif c.isspace() or unicodedata.category(c)[0] in "PSZC":
            chars.append(" ")
        else:
            chars.append(c)
    words = []
    keep_apos = _keeps_apostrophe(lang)
    for word in "".join(chars).split():
        if "'" in word:
            # an apostrophe survives only between two letters ("don't"), never at a word's edge
            word = word.strip("'")
            if not keep_apos:
                word = word.replace("'", "")
        if word:
            words.append(word)
    out = " ".join(words)
    for c in out:
        if c != " " and not _allowed(c, lang):
            raise UnknownCharacterError(c, out, lang)
    return out


def to_letters(words: str) -> str:
    """fairseq `.ltr` line: "A MAN" -> "A | M A N |"."""
    words = " ".join(words.split())
    if not words:
        return WORD_SEP
    return " ".join(words.replace(" ", WORD_SEP)) + " " + WORD_SEP


def letter_counts(ltr_lines: Iterable[str]) -> list[tuple[str, int]]:
    """Symbol counts of `.ltr` lines, most frequent first, ties in code-point order (dict.ltr.txt order)."""
    counts: Counter[str] = Counter()
    for line in ltr_lines:
        counts.update(line.split())
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def format_dict(counts: list[tuple[str, int]]) -> str:
    """Text of a fairseq `dict.ltr.txt`: one `symbol count` per line."""
    return "".join(f"{sym} {n}\n" for sym, n in counts)


def ltr_to_words(line: str) -> str:
    """`A | M A N |` -> `A MAN` (fairseq letter targets back to words)."""
    return " ".join("".join(word.split()) for word in line.split("|") if word.strip())
