"""Recipe shell utilities: the Kaldi-style option parser and the manifest subset tool."""

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
