"""`DecodeOptions`: every decoding default written once, and `w2v2 decode` / `w2v2 transcribe` declaring their
shared options from it (same options, same order, same defaults), without importing torch."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from w2v2cli.cli import decode as decode_cli
from w2v2cli.cli import transcribe as transcribe_cli
from w2v2cli.cli._options import DECODE_OPTIONS, decode_options
from w2v2cli.decode import BeamConfig
from w2v2cli.decode.options import DecodeConfig, DecodeOptions, TranscribeConfig
from w2v2cli.errors import ConfigError


def _params(module) -> dict:
    """The click parameters of one command, by name, in --help order."""
    app = typer.Typer()
    app.callback()(lambda: None)  # a group, as in w2v2
    module.register(app)
    command = next(iter(typer.main.get_command(app).commands.values()))
    return {p.name: p for p in command.params}


def test_both_commands_declare_the_shared_options_in_the_same_order_with_the_dataclass_defaults():
    defaults = DecodeOptions()
    names = [name for name, _, _ in DECODE_OPTIONS]
    for module, after in ((decode_cli, ["max_bad_files"]), (transcribe_cli, [])):
        params = list(_params(module))
        start = params.index("decoder")
        assert params[start:] == names + after
        for name, _, field in DECODE_OPTIONS:
            assert _params(module)[name].default == getattr(defaults, field), name
    assert _params(decode_cli)["max_bad_files"].default == DecodeConfig().max_bad_files
    assert _params(transcribe_cli)["ext"].default == ",".join(TranscribeConfig().extensions)


def test_the_command_receives_one_options_object_of_its_class():
    seen = []

    @decode_options
    def cmd(path: str, *, options: TranscribeConfig) -> None:
        seen.append((path, options))

    app = typer.Typer()
    app.callback()(lambda: None)
    app.command("cmd")(cmd)
    res = CliRunner().invoke(app, ["cmd", "x", "--decoder", "beam", "--lexicon", "lex.txt", "--beam", "7",
                                   "--beam-tokens", "3", "--chunk-overlap", "0.5", "--no-progress", "--threads", "2"])
    assert res.exit_code == 0, res.output
    path, options = seen[0]
    assert path == "x" and isinstance(options, TranscribeConfig)
    assert options == TranscribeConfig(decoder="beam", lexicon="lex.txt", beam_size=7, beam_size_token=3,
                                       chunk_overlap_seconds=0.5, progress=False, threads=2)
    with pytest.raises(TypeError, match="DecodeOptions"):
        decode_options(lambda *, options: None)


def test_options_are_checked():
    DecodeConfig().check()
    for bad, match in ((dict(decoder="fancy"), "viterbi"), (dict(dtype="fp16"), "bf16"),
                       (dict(lexicon="lex.txt"), "--decoder beam"), (dict(decoder="beam", lm="lm.bin"), "--lexicon"),
                       (dict(decoder="beam", beam_size_token=0), "--beam-tokens"), (dict(chunk_seconds=0), "positive"),
                       (dict(max_bad_files=-1), "--max-bad-files")):
        with pytest.raises(ConfigError, match=match):
            DecodeConfig(**bad).check()


def test_one_object_holds_the_beam_search_and_the_run():
    assert BeamConfig is DecodeOptions  # the former name of the beam search's options
    shared = {f.name for f in dataclasses.fields(DecodeOptions)}
    assert shared <= {f.name for f in dataclasses.fields(DecodeConfig)}
    assert shared <= {f.name for f in dataclasses.fields(TranscribeConfig)}


def test_the_options_and_the_commands_import_no_torch():
    code = ("import sys\nimport w2v2cli.cli.decode, w2v2cli.cli.transcribe, w2v2cli.decode.options\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
