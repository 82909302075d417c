"""Recipe shell utilities: the Kaldi-style option parser, the manifest subset and combine tools, bash -n and shellcheck on every script."""

import re
import subprocess
from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def _script(tmp_path: Path) -> Path:
    script = tmp_path / "run.sh"
    script.write_text(
        "#!/usr/bin/env bash\nset -euo pipefail\n"
        "stage=0          # first stage\n"
        "stop_stage=100   # last stage\n"
        "lm_weight=2.0    # LM weight\n"
        f". {RECIPES}/utils/parse_options.sh\n"
        'echo "$stage $stop_stage $lm_weight $*"\n'
    )
    return script


def test_options_override_defaults_and_leave_positionals(tmp_path):
    out = subprocess.run(["bash", _script(tmp_path), "--stage", "3", "--lm-weight=0.5", "pos1"],
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["3", "100", "0.5", "pos1"]


def test_unknown_option_fails_and_lists_valid_ones(tmp_path):
    res = subprocess.run(["bash", _script(tmp_path), "--stgae", "3"], capture_output=True, text=True)
    assert res.returncode == 1
    assert "unknown option --stgae" in res.stderr and "--stop-stage" in res.stderr


def test_help_lists_defaults_and_comments(tmp_path):
    out = subprocess.run(["bash", _script(tmp_path), "--help"], capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if "--lm-weight" in l)
    assert "2.0" in line and "LM weight" in line


@pytest.mark.parametrize("recipe", ["demo", "librispeech", "xlsr"])
def test_help_lists_every_option_of_the_recipes(recipe):
    """Every `name=default  # comment` line is an option in --help, quoted defaults with spaces included."""
    script = RECIPES / recipe / "run.sh"
    out = subprocess.run(["bash", script, "--help"], capture_output=True, text=True, check=True).stdout
    declared = [l.split("=")[0] for l in script.read_text().splitlines() if re.match(r"^[a-z_]+=.*\s# ", l)]
    listed = [l.split()[0] for l in out.splitlines()[2:]]
    assert listed == ["--" + name.replace("_", "-") for name in declared] and len(listed) > 10
    if recipe == "xlsr":
        assert '--langs                "de fr es"' in out


def test_missing_value_is_an_error(tmp_path):
    res = subprocess.run(["bash", _script(tmp_path), "--stage"], capture_output=True, text=True)
    assert res.returncode == 1 and "needs a value" in res.stderr


def _manifest(tmp_path: Path, n: int) -> Path:
    src = tmp_path / "train"
    src.with_suffix(".tsv").write_text("/corpus\n" + "".join(f"u{i}.flac\t{1000 + i}\n" for i in range(n)))
    src.with_suffix(".wrd").write_text("".join(f"WORD{i}\n" for i in range(n)))
    src.with_suffix(".ltr").write_text("".join(f"W {i} |\n" for i in range(n)))
    return src


def test_subset_keeps_rows_aligned_and_is_seeded(tmp_path):
    src = _manifest(tmp_path, 50)
    for name in ("a", "b"):
        subprocess.run(["bash", RECIPES / "utils/subset_manifest.sh", src, tmp_path / name, "10", "7"], check=True)
    tsv = (tmp_path / "a.tsv").read_text().splitlines()
    wrd = (tmp_path / "a.wrd").read_text().splitlines()
    ltr = (tmp_path / "a.ltr").read_text().splitlines()
    assert tsv[0] == "/corpus" and len(tsv) == 11 and len(wrd) == 10 and len(ltr) == 10
    ids = [int(row.split("\t")[0][1:-5]) for row in tsv[1:]]
    assert ids == sorted(ids) and len(set(ids)) == 10
    assert wrd == [f"WORD{i}" for i in ids] and ltr == [f"W {i} |" for i in ids]
    assert (tmp_path / "b.tsv").read_text() == (tmp_path / "a.tsv").read_text()


@pytest.mark.parametrize("n, problem", [(60, "has 50 rows"), (10, "has 49 lines")])
def test_subset_errors(tmp_path, n, problem):
    src = _manifest(tmp_path, 50)
    if problem.startswith("has 49"):
        src.with_suffix(".wrd").write_text("".join(f"WORD{i}\n" for i in range(49)))
    res = subprocess.run(["bash", RECIPES / "utils/subset_manifest.sh", src, tmp_path / "c", str(n), "1"],
                         capture_output=True, text=True)
    assert res.returncode != 0 and problem in res.stderr
    assert not (tmp_path / "c.tsv").exists()


def _speaker_manifest(tmp_path: Path) -> Path:
    """4 speakers x 10 utterances of 3 s each (48,000 samples), labels naming speaker and utterance."""
    rows, wrd = [], []
    for spk in ("101", "202", "303", "404"):
        for utt in range(10):
            rows.append(f"{spk}/7/{spk}-7-{utt:04d}.flac\t48000")
            wrd.append(f"S{spk} U{utt}")
    src = tmp_path / "train"
    src.with_suffix(".tsv").write_text("/corpus\n" + "".join(r + "\n" for r in rows))
    src.with_suffix(".wrd").write_text("".join(w + "\n" for w in wrd))
    return src


def test_subset_speakers_keeps_few_voices_and_minutes(tmp_path):
    src = _speaker_manifest(tmp_path)
    dst = tmp_path / "lab"
    res = subprocess.run(["bash", RECIPES / "utils/subset_speakers.sh", src, dst, "2", "0.5", "3"],
                         capture_output=True, text=True, check=True)
    root, *rows = dst.with_suffix(".tsv").read_text().splitlines()
    labels = dst.with_suffix(".wrd").read_text().splitlines()
    assert root == "/corpus" and len(rows) == 10  # 0.5 min = 30 s = ten 3 s utterances
    speakers = {r.split("/")[0] for r in rows}
    assert len(speakers) == 2 and f"from 2 speakers" in res.stderr
    for row, label in zip(rows, labels):  # the labels stay paired with their rows, in the original order
        spk, utt = row.split("/")[0], int(row.split("-")[-1][:4])
        assert label == f"S{spk} U{utt}"
    assert rows == sorted(rows)
    again = tmp_path / "again"
    subprocess.run(["bash", RECIPES / "utils/subset_speakers.sh", src, again, "2", "0.5", "3"], check=True,
                   capture_output=True)
    assert again.with_suffix(".tsv").read_text() == dst.with_suffix(".tsv").read_text()  # seeded


def test_subset_speakers_all(tmp_path):
    src = _speaker_manifest(tmp_path)
    for nspk, minutes, n_rows in (("all", "all", 40), ("all", "0.5", 10), ("3", "all", 30)):
        dst = tmp_path / f"lab-{nspk}-{minutes.replace('.', '_')}"
        res = subprocess.run(["bash", RECIPES / "utils/subset_speakers.sh", src, dst, nspk, minutes, "3"],
                             capture_output=True, text=True, check=True)
        rows = dst.with_suffix(".tsv").read_text().splitlines()[1:]
        assert len(rows) == n_rows and rows == sorted(rows), (nspk, minutes)
        assert len({r.split("/")[0] for r in rows}) == (4 if nspk == "all" else 3) or n_rows == 10
        assert f"from {4 if nspk == 'all' else 3} speakers" in res.stderr
    assert (tmp_path / "lab-all-all.tsv").read_text() == src.with_suffix(".tsv").read_text()


def test_subset_speakers_refuses_more_speakers_than_there_are(tmp_path):
    src = _speaker_manifest(tmp_path)
    res = subprocess.run(["bash", RECIPES / "utils/subset_speakers.sh", src, tmp_path / "x", "5", "1", "0"],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "asked for 5 speakers but" in res.stderr and "has 4" in res.stderr
    assert not (tmp_path / "x.tsv").exists()


SCRIPTS = sorted(p for p in [*RECIPES.rglob("*.sh"), *(RECIPES.parent / "tools").glob("*.sh")])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(RECIPES.parent)))
def test_bash_syntax_and_shellcheck(script):
    """Every recipe and tool script parses (bash -n) and passes shellcheck (the Debian package, installed by
    tools/install_system_deps.sh; settings in .shellcheckrc: helpers are followed from each script's folder)."""
    syntax = subprocess.run(["bash", "-n", script], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    check = subprocess.run(["shellcheck", script], capture_output=True, text=True, cwd=RECIPES.parent)
    assert check.returncode == 0, check.stdout


def test_shellcheck_catches_what_it_should(tmp_path):
    bad = tmp_path / "bad.sh"
    bad.write_text('#!/usr/bin/env bash\nfor f in $(ls *.txt); do rm $f; done\n')
    check = subprocess.run(["shellcheck", bad], capture_output=True, text=True)
    assert check.returncode == 1 and "SC2045" in check.stdout and "SC2086" in check.stdout


def test_combine_manifests_rewrites_rows_to_the_common_root_and_joins_labels(tmp_path):
    for name, root, rows, words in (("a", tmp_path / "c" / "one", ["x/1.flac\t100", "x/2.flac\t200"], ["HI", "YO"]),
                                    ("b", tmp_path / "c" / "two", ["y/3.flac\t300"], ["OK"])):
        (tmp_path / f"{name}.tsv").write_text("\n".join([str(root)] + rows) + "\n")
        (tmp_path / f"{name}.wrd").write_text("\n".join(words) + "\n")
    (tmp_path / "a.ltr").write_text("H I |\nY O |\n")  # b has no .ltr: no combined .ltr
    tool = RECIPES / "utils" / "combine_manifests.py"
    subprocess.run(["python3", tool, tmp_path / "all", tmp_path / "a", tmp_path / "b"], check=True,
                   capture_output=True)
    assert (tmp_path / "all.tsv").read_text().splitlines() == [str(tmp_path / "c"), "one/x/1.flac\t100",
                                                               "one/x/2.flac\t200", "two/y/3.flac\t300"]
    assert (tmp_path / "all.wrd").read_text() == "HI\nYO\nOK\n" and not (tmp_path / "all.ltr").exists()
    (tmp_path / "b.wrd").write_text("OK\nEXTRA\n")
    bad = subprocess.run(["python3", tool, tmp_path / "bad", tmp_path / "a", tmp_path / "b"], capture_output=True,
                         text=True)
    assert bad.returncode == 1 and bad.stderr.strip() == (f"combine_manifests.py: {tmp_path / 'b'}.wrd has 2 lines, "
                                                          f"{tmp_path / 'b'}.tsv has 1 rows")
    assert not (tmp_path / "bad.tsv").exists()
