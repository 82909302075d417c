"""Vocabulary: fairseq dict.ltr.txt order, encode/decode, transformers vocab.json, SentencePiece, round trips."""

from __future__ import annotations

import pytest

from w2v2cli.errors import CheckpointError, ManifestError
from w2v2cli.vocab import Vocabulary, collapse_ctc, letters_from_words

LIBRI_LETTERS = "| E T A O N I H S R D L U M W C F G Y P B V K ' X J Q Z".split()


@pytest.fixture
def libri_dict(tmp_path):
    path = tmp_path / "dict.ltr.txt"
    path.write_text("".join(f"{sym} {1000 - i}\n" for i, sym in enumerate(LIBRI_LETTERS)))
    return path


def test_fairseq_dict_has_32_outputs_with_blank_s_first(libri_dict):
    vocab = Vocabulary.from_fairseq_dict(libri_dict)
    assert len(vocab) == 32  # REFERENCE.md: LibriSpeech letters + fairseq specials
    assert vocab.tokens[:6] == ["<s>", "<pad>", "</s>", "<unk>", "|", "E"]
    assert vocab.blank == 0 and vocab.blank_token == "<s>"
    assert vocab.encode("A | M A N |") == [7, 4, 17, 7, 9, 4]
    assert vocab.decode([7, 4, 17, 7, 9, 4]) == "A MAN"
    # blanks/pad/eos vanish, repeated separators collapse, no leading/trailing space
    assert vocab.decode([0, 4, 7, 1, 4, 4, 17, 2, 7, 9, 4, 0]) == "A MAN"
    assert vocab.to_fairseq_dict().splitlines()[:2] == ["| 1", "E 1"]


def test_encode_names_bad_symbol(libri_dict):
    vocab = Vocabulary.from_fairseq_dict(libri_dict)
    with pytest.raises(ValueError, match=r"'é' is not in the vocabulary"):
        vocab.encode("C A F é |")


def test_fairseq_dict_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "dict.ltr.txt"
    bad.write_text("A 10\nB\n")
    with pytest.raises(ManifestError, match=r"dict.ltr.txt:2: expected 'SYMBOL COUNT'"):
        Vocabulary.from_fairseq_dict(bad)
    bad.write_text("A 10\nA 5\n")
    with pytest.raises(ManifestError, match=r":2: duplicate symbol 'A'"):
        Vocabulary.from_fairseq_dict(bad)
    bad.write_text("A ten\n")
    with pytest.raises(ManifestError, match=r":1: count 'ten'"):
        Vocabulary.from_fairseq_dict(bad)
    with pytest.raises(ManifestError, match="cannot read dictionary"):
        Vocabulary.from_fairseq_dict(tmp_path / "missing.txt")


def test_hf_vocab_round_trip_swaps_blank_name(libri_dict):
    vocab = Vocabulary.from_fairseq_dict(libri_dict)
    mapping, specials = vocab.to_hf_vocab()
    # transformers names the CTC blank <pad> (index 0); fairseq's <pad> becomes <s> at index 1
    assert mapping["<pad>"] == 0 and mapping["<s>"] == 1 and mapping["|"] == 4 and mapping["Z"] == 31
    assert specials["pad_token"] == "<pad>" and specials["word_delimiter_token"] == "|"
    back = Vocabulary.from_hf_vocab(mapping)
    assert back.blank == 0 and len(back) == 32
    assert back.decode(vocab.encode("T H E | C A T |")) == "THE CAT"


def test_hf_vocab_errors():
    with pytest.raises(ValueError, match="not contiguous"):
        Vocabulary.from_hf_vocab({"<pad>": 0, "a": 2})
    with pytest.raises(ValueError, match="no pad token"):
        Vocabulary.from_hf_vocab({"a": 0, "b": 1})
    with pytest.raises(ValueError, match="several vocabularies"):
        Vocabulary.from_hf_vocab({"en": {"<pad>": 0}, "fr": {"<pad>": 0}})


def test_dict_round_trip_and_bad_dict(libri_dict):
    vocab = Vocabulary.from_fairseq_dict(libri_dict)
    assert Vocabulary.from_dict(vocab.to_dict()) == vocab
    with pytest.raises(CheckpointError, match="unknown vocabulary keys"):
        Vocabulary.from_dict({"tokens": ["a"], "colour": 1})
    with pytest.raises(CheckpointError, match="blank index 5"):
        Vocabulary.from_dict({"tokens": ["a", "b"], "blank": 5})


def test_spm_vocab_trains_encodes_decodes_and_serialises():
    lines = ["the cat sat on the mat", "a man walked into the room", "hello world this is speech"] * 10
    vocab = Vocabulary.train_spm(lines, vocab_size=30)
    assert vocab.kind == "spm" and vocab.tokens[0] == "<blank>" and vocab.blank == 0
    ids = vocab.encode("the cat sat")
    assert ids and min(ids) >= 1 and max(ids) < len(vocab)
    assert vocab.decode(ids) == "the cat sat"
    assert vocab.decode([0] + ids + [0]) == "the cat sat"
    again = Vocabulary.from_dict(vocab.to_dict())  # model bytes travel inside config.yaml
    assert again == vocab and again.encode("the cat sat") == ids
    with pytest.raises(ValueError, match="only letter vocabularies"):
        vocab.to_hf_vocab()


def test_letters_from_words_and_collapse():
    assert letters_from_words("A MAN") == "A | M A N |"
    assert collapse_ctc([0, 5, 5, 0, 5, 7, 7, 0]) == [5, 5, 7]
