"""A seeded sentence generator (small grammars + word lists) for synthetic corpora, per language.

    >>> from w2v2cli.synth.sentences import SentenceGenerator, sentence_pool
    >>> gen = SentenceGenerator("de", seed=3)
    >>> gen.sentence()        # e.g. 'Gestern öffnete der Hund einen Schlüssel auf dem Markt.'
    >>> sentence_pool("The dog slept.")    # 'train', 'dev' or 'test', fixed by the text itself

Each language has a few sentence shapes (subject-verb-object, intransitive, with a place or time
phrase, two clauses joined by a conjunction, reported speech) filled from word lists of some dozens of
nouns, adjectives, verbs, names and phrases, with the agreement each language needs (German case and
gender endings, French and Spanish gender of articles and adjectives). That gives millions of distinct
sentences, so corpora of many hours never repeat a sentence.

Held-out sentences: `sentence_pool(text)` assigns every sentence to a pool by a hash of its
normalised words (5 % "dev", 5 % "test", the rest "train"), independent of seed and corpus; a corpus's
dev/test subsets draw only from their pools, and LM or training text only from "train", so a test
sentence can never appear in training data, whichever seeds made them.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import random
from collections.abc import Callable, Iterator

from w2v2cli.synth import lexicon_en

LANGUAGES = ("en", "de", "fr", "es")

def _words(spec: str) -> list[str]:
    """Whitespace-separated words, duplicates dropped, order (common first) kept."""
    return list(dict.fromkeys(spec.split()))


_EN = {
    "nouns": _words(lexicon_en.NOUNS),
    "things": _words(lexicon_en.THINGS),
    "adjectives": _words(lexicon_en.ADJECTIVES),
    "tverbs": _words(lexicon_en.TVERBS),
    "iverbs": _words(lexicon_en.IVERBS),
    "place_nouns": _words(lexicon_en.PLACE_NOUNS),
    "prepositions": lexicon_en.PREPOSITIONS,
    "times": lexicon_en.TIMES,
    "names": _words(lexicon_en.NAMES),
    "adverbs": _words(lexicon_en.ADVERBS),
    "conj": "and | but | so | because | while",
    "say": "said that | thought that | knew that | believed that | told us that",
}

#: English word lists whose words can be held out of the training pool (see `held_out_word`)
_EN_CONTENT = ("nouns", "things", "adjectives", "tverbs", "iverbs", "names", "adverbs")
#: share of English content words (in percent) that only dev/test sentences use: the test set's OOV words
HELD_OUT_PERCENT = 4

_DE = {
    # (noun, gender)
    "nouns": [("mann", "m"), ("hund", "m"), ("vogel", "m"), ("lehrer", "m"), ("bauer", "m"), ("koch", "m"),
              ("fischer", "m"), ("könig", "m"), ("nachbar", "m"), ("fremde", "m"),
              ("frau", "f"), ("katze", "f"), ("lehrerin", "f"), ("ärztin", "f"), ("königin", "f"),
              ("mutter", "f"), ("bäuerin", "f"), ("köchin", "f"),
              ("kind", "n"), ("mädchen", "n"), ("pferd", "n"), ("schaf", "n")],
    "things": [("schlüssel", "m"), ("brief", "m"), ("korb", "m"), ("stuhl", "m"), ("tisch", "m"),
               ("hut", "m"), ("mantel", "m"), ("apfel", "m"), ("wagen", "m"), ("ball", "m"), ("stein", "m"),
               ("lampe", "f"), ("tasche", "f"), ("kiste", "f"), ("blume", "f"), ("uhr", "f"), ("karte", "f"),
               ("flasche", "f"), ("kerze", "f"), ("tür", "f"), ("jacke", "f"),
               ("buch", "n"), ("fenster", "n"), ("bild", "n"), ("glas", "n"), ("boot", "n"), ("brot", "n"),
               ("seil", "n"), ("messer", "n"), ("geschenk", "n")],
    "adjectives": """alt jung klein groß still froh klug stark schnell langsam freundlich ruhig lustig fremd
        wild weiß schwarz braun leer voll leicht schwer rot grün blau neu warm kalt hell""".split(),
    "tverbs": """sah fand kaufte trug suchte brachte malte öffnete schloss hörte baute holte verlor hielt
        nahm zeigte versteckte reparierte verkaufte putzte""".split(),
    "iverbs": "schlief lachte wartete lächelte ruhte sang arbeitete tanzte verschwand rief weinte".split(),
    "places": """über die brücke | neben dem alten brunnen | im garten | hinter der mühle | unter dem tisch |
        am rand des waldes | auf dem hügel | am fenster | durch das dorf | in der küche | am bahnhof |
        auf dem markt | vor dem haus | bei der kirche | am ufer des flusses""",
    "times": """gestern | heute morgen | am abend | nach dem essen | vor sonnenaufgang | im letzten winter |
        jeden tag | am mittag | spät in der nacht | am sonntag | während des sturms | vor langer zeit""",
    "names": "anna peter maria thomas julia lukas sophie felix greta paul clara jonas lena max".split(),
    "conj": "und | aber | denn",
    "say": "sagte dass | glaubte dass | wusste dass",
}

_DE_PHRASE_NOUNS = set("""brücke brunnen garten mühle tisch rand waldes hügel fenster dorf küche bahnhof markt
    haus kirche ufer flusses essen sonnenaufgang winter tag mittag nacht sonntag sturms zeit abend""".split())

_FR = {
    # (noun, gender)
    "nouns": [("homme", "m"), ("chien", "m"), ("oiseau", "m"), ("professeur", "m"), ("fermier", "m"),
              ("boulanger", "m"), ("marin", "m"), ("roi", "m"), ("voisin", "m"), ("garçon", "m"),
              ("femme", "f"), ("chatte", "f"), ("fermière", "f"), ("reine", "f"), ("voisine", "f"),
              ("fille", "f"), ("boulangère", "f"), ("actrice", "f")],
    "things": [("livre", "m"), ("panier", "m"), ("manteau", "m"), ("chapeau", "m"), ("couteau", "m"),
               ("bateau", "m"), ("gâteau", "m"), ("tableau", "m"), ("sac", "m"), ("verre", "m"),
               ("lettre", "f"), ("clé", "f"), ("lampe", "f"), ("boîte", "f"), ("chaise", "f"),
               ("table", "f"), ("bouteille", "f"), ("fleur", "f"), ("carte", "f"), ("pomme", "f")],
    # (masculine, feminine); placed after the noun
    "adjectives": [("rouge", "rouge"), ("noir", "noire"), ("vert", "verte"), ("blanc", "blanche"),
                   ("bleu", "bleue"), ("gris", "grise"), ("lourd", "lourde"), ("froid", "froide"),
                   ("chaud", "chaude"), ("calme", "calme"), ("rapide", "rapide"), ("fatigué", "fatiguée"),
                   ("content", "contente"), ("étrange", "étrange"), ("cassé", "cassée"), ("doré", "dorée"),
                   ("vide", "vide"), ("timide", "timide"), ("célèbre", "célèbre"), ("sérieux", "sérieuse")],
    "tverbs": """a vu | a trouvé | a porté | a acheté | a cherché | a ouvert | a fermé | a pris | a caché |
        a vendu | a réparé | a nettoyé | a perdu | a gardé | a apporté | a dessiné""",
    "iverbs": """a dormi | a chanté | a ri | a attendu | a travaillé | a dansé | a crié | a pleuré |
        a souri | a marché""",
    "places": """près de la rivière | dans le jardin | sous la table | derrière le moulin | sur la colline |
        à la gare | devant la maison | au marché | dans la cuisine | au bord du lac | sur le pont |
        à travers le village | près de l'église""",
    "times": """hier | ce matin | le soir | après le dîner | avant l'aube | l'hiver dernier | chaque jour |
        à midi | tard dans la nuit | dimanche | pendant l'orage | il y a longtemps""",
    "names": "marie pierre julie thomas claire louis sophie paul camille lucas emma hugo".split(),
    "conj": "et | mais | car | puis",
    "say": "a dit que | pensait que | savait que",
}

_ES = {
    "nouns": [("hombre", "m"), ("perro", "m"), ("pájaro", "m"), ("maestro", "m"), ("campesino", "m"),
              ("panadero", "m"), ("marinero", "m"), ("rey", "m"), ("vecino", "m"), ("niño", "m"),
              ("mujer", "f"), ("gata", "f"), ("maestra", "f"), ("reina", "f"), ("vecina", "f"),
              ("niña", "f"), ("panadera", "f"), ("doctora", "f")],
    "things": [("libro", "m"), ("cesto", "m"), ("abrigo", "m"), ("sombrero", "m"), ("cuchillo", "m"),
               ("barco", "m"), ("pastel", "m"), ("cuadro", "m"), ("vaso", "m"), ("reloj", "m"),
               ("carta", "f"), ("llave", "f"), ("lámpara", "f"), ("caja", "f"), ("silla", "f"),
               ("mesa", "f"), ("botella", "f"), ("flor", "f"), ("manzana", "f"), ("ventana", "f")],
    "adjectives": [("rojo", "roja"), ("negro", "negra"), ("blanco", "blanca"), ("viejo", "vieja"),
                   ("nuevo", "nueva"), ("pequeño", "pequeña"), ("pesado", "pesada"), ("frío", "fría"),
                   ("cansado", "cansada"), ("contento", "contenta"), ("extraño", "extraña"), ("roto", "rota"),
                   ("dorado", "dorada"), ("vacío", "vacía"), ("tranquilo", "tranquila"), ("azul", "azul"),
                   ("verde", "verde"), ("grande", "grande"), ("alegre", "alegre"), ("tímido", "tímida")],
    "tverbs": """vio | encontró | compró | llevó | buscó | abrió | cerró | tomó | escondió | vendió |
        reparó | limpió | perdió | guardó | trajo | pintó""",
    "iverbs": "durmió | cantó | rió | esperó | trabajó | bailó | gritó | lloró | sonrió | caminó",
    "places": """cerca del río | en el jardín | debajo de la mesa | detrás del molino | en la colina |
        en la estación | delante de la casa | en el mercado | en la cocina | junto al lago | sobre el puente |
        por el pueblo | cerca de la iglesia""",
    "times": """ayer | esta mañana | por la noche | después de la cena | antes del amanecer | el invierno pasado |
        cada día | al mediodía | muy tarde | el domingo | durante la tormenta | hace mucho tiempo""",
    "names": "maría pedro lucía juan carmen pablo sofía diego elena javier ana miguel".split(),
    "conj": "y | pero | porque | mientras",
    "say": "dijo que | pensaba que | sabía que",
}


def _phrases(spec: str) -> list[str]:
    return [" ".join(p.split()) for p in spec.split("|") if p.strip()]


class SentenceGenerator:
    """Seeded random sentences for `lang` ('en', 'de', 'fr', 'es'): `sentence()` returns written text
    (capital first letter, final full stop, names capitalised) ready for normalisation."""

    def __init__(self, lang: str, seed: int = 0):
        if lang not in LANGUAGES:
            raise ValueError(f"no sentence grammar for language {lang!r}; have: {', '.join(LANGUAGES)}")
        self.lang = lang
        self.rng = random.Random(f"sentences-{lang}-{seed}")
        self._clause = {"en": self._en, "de": self._de, "fr": self._fr, "es": self._es}[lang]
        table = {"en": _EN, "de": _DE, "fr": _FR, "es": _ES}[lang]
        self.t = {k: (_phrases(v) if isinstance(v, str) else v) for k, v in table.items()}
        self._names = set(self.t["names"])
        # Zipf-like sampling (weight 1 / (rank + 10)) for the long English lists, as cumulative weights
        self._weights: dict[str, list[float]] = {}
        if lang == "en":
            for key in (*_EN_CONTENT, "place_nouns"):
                total, cum = 0.0, []
                for rank in range(len(self.t[key])):
                    total += 1.0 / (rank + 10)
                    cum.append(total)
                self._weights[key] = cum
        self.held_out = {w for key in _EN_CONTENT for w in self.t[key] if held_out_word(w)} if lang == "en" \
            else set()

    # --- English ---------------------------------------------------------------------------
    def _pick(self, key: str) -> str:
        """A word of list `key`, Zipf-like: the list's first (common) words are drawn far more often."""
        weights = self._weights.get(key)
        if weights is None:
            return self.rng.choice(self.t[key])
        return self.rng.choices(self.t[key], cum_weights=weights)[0]

    def _en_np(self, pool: str, article: str | None = None) -> str:
        r = self.rng
        art = article or r.choice(["the", "the", "a", "my", "his", "her", "their", "that"])
        adj = self._pick("adjectives") + " " if r.random() < 0.6 else ""
        np_ = f"{art} {adj}{self._pick(pool)}"
        if art == "a" and np_[2] in "aeiou":
            np_ = "an" + np_[1:]
        return np_

    def _en_place(self) -> str:
        r = self.rng
        adj = self._pick("adjectives") + " " if r.random() < 0.35 else ""
        return f"{r.choice(self.t['prepositions'])} the {adj}{self._pick('place_nouns')}"

    def _en(self) -> str:
        r = self.rng
        subj = self._pick("names") if r.random() < 0.25 else self._en_np("nouns")
        if r.random() < 0.65:
            clause = f"{subj} {self._pick('tverbs')} {self._en_np('things')}"
        else:
            clause = f"{subj} {self._pick('iverbs')}"
        if r.random() < 0.3:
            clause += " " + self._pick("adverbs")
        if r.random() < 0.5:
            clause += " " + self._en_place()
        return self._with_time(clause)

    def _with_time(self, clause: str) -> str:
        """Sometimes (30 %) a time phrase before or after the clause (English, French, Spanish)."""
        r, t = self.rng, self.t
        if r.random() < 0.3:
            clause = (r.choice(t["times"]) + " " + clause) if r.random() < 0.5 \
                else (clause + " " + r.choice(t["times"]))
        return clause

    # --- German ----------------------------------------------------------------------------
    def _de_subject(self) -> str:
        r, t = self.rng, self.t
        if r.random() < 0.25:
            return r.choice(t["names"])
        noun, g = r.choice(t["nouns"])
        art = {"m": "der", "f": "die", "n": "das"}[g]
        return f"{art} {r.choice(t['adjectives'])}e {noun}" if r.random() < 0.6 else f"{art} {noun}"

    def _de_object(self) -> str:
        r, t = self.rng, self.t
        noun, g = r.choice(t["things"])
        if r.random() < 0.5:  # indefinite accusative: einen alten / eine alte / ein altes
            art, end = {"m": ("einen", "en"), "f": ("eine", "e"), "n": ("ein", "es")}[g]
        else:  # definite accusative: den alten / die alte / das alte
            art, end = {"m": ("den", "en"), "f": ("die", "e"), "n": ("das", "e")}[g]
        return f"{art} {r.choice(t['adjectives'])}{end} {noun}" if r.random() < 0.6 else f"{art} {noun}"

    def _de(self) -> str:
        r, t = self.rng, self.t
        subj = self._de_subject()
        verb_obj = (r.choice(t["tverbs"]), self._de_object()) if r.random() < 0.65 else (r.choice(t["iverbs"]), "")
        place = r.choice(t["places"]) if r.random() < 0.5 else ""
        if r.random() < 0.3:  # a fronted time phrase puts the verb second: "gestern sah der mann ..."
            parts = [r.choice(t["times"]), verb_obj[0], subj, verb_obj[1], place]
        else:
            parts = [subj, verb_obj[0], verb_obj[1], place]
        return " ".join(p for p in parts if p)

    # --- French ----------------------------------------------------------------------------
    def _fr_np(self, pool: str, definite: bool) -> str:
        r, t = self.rng, self.t
        noun, g = r.choice(t[pool])
        if definite:
            art = "l'" if noun[0] in "aeiouéh" else {"m": "le ", "f": "la "}[g]
        else:
            art = {"m": "un ", "f": "une "}[g]
        np_ = art + noun
        if r.random() < 0.6:
            np_ += " " + r.choice(t["adjectives"])[0 if g == "m" else 1]
        return np_

    def _fr(self) -> str:
        return self._romance(self._fr_np)

    # --- Spanish ---------------------------------------------------------------------------
    def _es_np(self, pool: str, definite: bool) -> str:
        r, t = self.rng, self.t
        noun, g = r.choice(t[pool])
        art = ({"m": "el", "f": "la"} if definite else {"m": "un", "f": "una"})[g]
        np_ = f"{art} {noun}"
        if r.random() < 0.6:
            np_ += " " + r.choice(t["adjectives"])[0 if g == "m" else 1]
        return np_

    def _es(self) -> str:
        return self._romance(self._es_np)

    # --- French and Spanish share their clause shape ------------------------------------------
    def _romance(self, np_: Callable[[str, bool], str]) -> str:
        """Subject, verb (and object), maybe a place and a time; `np_(pool, definite)` makes the noun phrases."""
        r, t = self.rng, self.t
        subj = r.choice(t["names"]) if r.random() < 0.25 else np_("nouns", True)
        if r.random() < 0.65:
            clause = f"{subj} {r.choice(t['tverbs'])} {np_('things', r.random() < 0.5)}"
        else:
            clause = f"{subj} {r.choice(t['iverbs'])}"
        if r.random() < 0.5:
            clause += " " + r.choice(t["places"])
        return self._with_time(clause)

    # --- sentences -------------------------------------------------------------------------
    def _raw(self) -> str:
        r, t = self.rng, self.t
        roll = r.random()
        if roll < 0.15:
            return f"{self._clause()} {r.choice(t['conj'])} {self._clause()}"
        if roll < 0.25:
            subj = r.choice(t["names"])
            return f"{subj} {r.choice(t['say'])} {self._clause()}"
        return self._clause()

    def _written(self, raw: str) -> str:
        words = [w.capitalize() if w in self._names else w for w in raw.split()]
        text = " ".join(words)
        if self.lang == "de":  # German capitalises nouns
            nouns = {n for n, _ in self.t["nouns"]} | {n for n, _ in self.t["things"]}
            nouns |= _DE_PHRASE_NOUNS
            text = " ".join(w.capitalize() if w in nouns else w for w in text.split())
        text = text[0].upper() + text[1:]
        if self.lang in ("en", "fr", "es", "de") and self.rng.random() < 0.15:
            # a comma before a conjunction, as people write; normalisation removes it
            for c in self.t["conj"]:
                text = text.replace(f" {c} ", f", {c} ", 1) if f" {c} " in text else text
        return text + ("?" if self.rng.random() < 0.05 else ".")

    def sentence(self, min_words: int = 1, max_words: int = 1000) -> str:
        """One written sentence with between `min_words` and `max_words` words."""
        for _ in range(10000):
            raw = self._raw()
            if min_words <= len(raw.split()) <= max_words:
                return self._written(raw)
        raise ValueError(f"no {self.lang} sentence with {min_words}..{max_words} words")

    def unique(self, pool: str | None = "train", min_words: int = 1, max_words: int = 1000,
               seen: set[str] | None = None) -> Iterator[str]:
        """Endless distinct sentences from `pool` ('train', 'dev', 'test' or None for any); `seen` is
        shared so several subsets of one corpus never repeat a sentence."""
        return _unique(lambda: self.sentence(min_words, max_words), pool, seen,
                       lambda words: not self.held_out.isdisjoint(words))


# --- open vocabulary ---------------------------------------------------------------------------
#: how many of the most frequent English words (wordfreq) open-vocabulary sentences draw from
OPEN_VOCAB_WORDS = 30_000
#: frequencies are raised to this power before sampling: common words stay common, rare ones come up more often
OPEN_VOCAB_POWER = 0.6
#: digests (blake2b, 6 bytes) of profanities and slurs in that list, which generated text never uses
_BLOCKED = frozenset("""
    01b18434faa9 0e553ea93148 0e56f4d8790f 0e5e98b118c4 0e66889c487b 168955aea204 1d4c62487b0e
    1ecb2dd0cec4 20cc8965c47e 2561f60372bd 2c82350076cb 2cd033918158 2e46f8d56572 2eeb475b5f55
    3a1a2f107aa0 3bda8ffeef82 438ed034be55 4a103c5b1bff 4f9f764a5c58 50eeb459d451 51ad754d1b08
    51e3cfe8d2c8 53d617f709bb 5527352cb27f 587d000c23e8 607a1c6e3dfa 6276af483481 6f10e75e9e70
    70f2a5b0d326 715b9d8577dc 725fbabc16a1 73139fb1568e 7b31a9d4f152 7cbe913fd81f 8e236ca175d6
    9eba73ee4d5d a6e45c0c82a5 a8f9d9bd4338 ac6ee90fc3b6 ac9306574c2e b65e79168656 b7b712b99e71
    b7c8cd9deab0 bb7dcf599868 c1e67f63655b c4a824938a78 c6597134c36d ca20a7def80d d0d621c47858
    d517d2ba03f4 d81baafc3143 da075443acc5 e331ccd5628e e3ad7ca817f9 e533a067cd5c e7e9ee28e7d1
    eb28ee5e0fa0 f248d66d8d1f
""".split())


def _digest(word: str) -> str:
    return hashlib.blake2b(word.encode(), digest_size=6).hexdigest()


class OpenVocabulary:
    """Sentences of English words drawn by frequency from the `wordfreq` word list: word sequences, not
    grammar, that teach an acoustic model how thousands of spellings sound (the grammar knows ~2,400 words).

        >>> ov = OpenVocabulary(seed=3)
        >>> next(ov.unique("train", 5, 14))    # e.g. 'Strong their officials may the series reaching.'

    The words are the `OPEN_VOCAB_WORDS` most frequent lower-case ones of letters only, with a vowel (no
    acronyms), and without profanity; weights are frequency ** `OPEN_VOCAB_POWER`. Held-out words
    (`held_out_word`) and the dev/test sentence pools are respected as the grammar's are.
    """

    def __init__(self, seed: int = 0):
        try:
            import wordfreq
        except ImportError as e:  # pragma: no cover - a core dependency
            raise ImportError("open-vocabulary sentences need the wordfreq package: pip install wordfreq") from e
        words = [w for w in wordfreq.top_n_list("en", OPEN_VOCAB_WORDS + 10_000)
                 if w.isascii() and w.isalpha() and w.islower() and (len(w) > 1 or w in ("a", "i"))
                 and any(v in w for v in "aeiouy") and _digest(w) not in _BLOCKED][:OPEN_VOCAB_WORDS]
        self.words = words
        weights = [wordfreq.word_frequency(w, "en") ** OPEN_VOCAB_POWER for w in words]
        total = sum(weights)
        self._cum = list(itertools.accumulate(w / total for w in weights))
        self.rng = random.Random(f"open-vocab-{seed}")

    def sentence(self, min_words: int = 5, max_words: int = 14) -> str:
        n = self.rng.randint(max(1, min_words), max(min_words, max_words))
        picks = [self.words[min(bisect.bisect(self._cum, self.rng.random()), len(self.words) - 1)]
                 for _ in range(n)]
        text = " ".join(picks)
        return text[0].upper() + text[1:] + "."

    def unique(self, pool: str | None = "train", min_words: int = 5, max_words: int = 14,
               seen: set[str] | None = None) -> Iterator[str]:
        """Endless distinct sentences from `pool`; training sentences never hold a held-out word."""
        return _unique(lambda: self.sentence(min_words, max_words), pool, seen,
                       lambda words: any(held_out_word(w) for w in words))


def _unique(make: Callable[[], str], pool: str | None, seen: set[str] | None,
            holds_held_out: Callable[[list[str]], bool]) -> Iterator[str]:
    """Endless distinct sentences from `make()` that fall in `pool`; `seen` (shared by a corpus's subsets) keeps
    them distinct, and a training sentence whose words `holds_held_out` is dropped."""
    seen = set() if seen is None else seen
    while True:
        text = make()
        key = _key(text)
        if key in seen or (pool is not None and sentence_pool(text) != pool):
            continue
        if pool == "train" and holds_held_out(key.split()):
            continue  # held-out words never reach training audio or LM text: they are the test's OOVs
        seen.add(key)
        yield text


def _key(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace() or c == "'").split())


def held_out_word(word: str) -> bool:
    """True for the `HELD_OUT_PERCENT` % of words (by a hash, seed-independent) that training text never uses."""
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big") % 100 < HELD_OUT_PERCENT


def sentence_pool(text: str) -> str:
    """'dev', 'test' or 'train' for a sentence, from a hash of its lower-cased words (seed-independent)."""
    bucket = int.from_bytes(hashlib.blake2b(_key(text).encode(), digest_size=8).digest(), "big") % 100
    return "dev" if bucket < 5 else "test" if bucket < 10 else "train"


def pool_for_subset(subset: str) -> str:
    """LibriSpeech / Common Voice / MLS subset name -> sentence pool."""
    s = subset.lower()
    if s.startswith("dev") or s in ("valid", "validation"):
        return "dev"
    if s.startswith("test"):
        return "test"
    return "train"
