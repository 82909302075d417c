"""The layers of architecture.md: no module imports from a layer above its own (lazy imports included)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import w2v2cli

LAYERS = {
    "errors": 0,
    "textio": 1, "config": 1, "vocab": 1, "audio": 1, "runtime": 1,
    "data": 2, "model": 2, "lm": 2,
    "checkpoint": 3, "score": 3, "synth": 3,
    "decode": 4,
    "train": 5,
    "cli": 6, "__main__": 6, "__init__": 6,
}
PACKAGE = Path(w2v2cli.__file__).parent


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_no_module_imports_from_a_layer_above():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = _unit(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.startswith("w2v2cli.") and LAYERS[_unit(name)] > LAYERS[unit]:
                    wrong.append(f"{path.relative_to(PACKAGE)}:{node.lineno} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_checkpoint_io_imports_no_converter():
    source = (PACKAGE / "checkpoint" / "io.py").read_text(encoding="utf-8")
    assert "checkpoint.fairseq" not in source and "checkpoint.hf_dir" not in source


ARCHITECTURE = PACKAGE.parent / "architecture.md"


def _modules() -> set[str]:
    """Every module of the package as architecture.md names it (`train/trainer.py`, `config.py`)."""
    return {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py")}


def test_architecture_md_names_every_module_and_only_modules_that_exist():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    named = set(re.findall(r"`([a-z_0-9]+(?:/[a-z_0-9]+)?\.py)`", text)) - {"tests/test_architecture.py"}
    assert sorted(_modules() - named) == [], "modules missing from architecture.md"
    assert sorted(named - _modules()) == [], "architecture.md names modules that do not exist"


def test_no_function_is_longer_than_80_lines():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} "
                            f"({node.end_lineno - node.lineno + 1} lines)")
    assert not long, "\n".join(long)
