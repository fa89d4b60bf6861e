"""The sans-I/O rule of DESIGN.md, enforced.

boomerang/sip and boomerang/media take bytes and ``now`` and return events
and bytes: they import nothing that does I/O, reads a clock or draws random
numbers, and nothing from the layers above them. media may use the SIP
core's models (SDP); the SIP core never imports media.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "boomerang"

# Standard-library modules a sans-I/O core may import.
ALLOWED_STDLIB = {
    "__future__", "abc", "array", "base64", "binascii", "bisect", "collections",
    "dataclasses", "enum", "functools", "hashlib", "heapq", "hmac", "ipaddress",
    "itertools", "math", "operator", "re", "string", "struct", "typing",
    "typing_extensions", "urllib", "weakref", "wave", "io", "zlib", "fractions",
    "numbers", "statistics", "textwrap", "types", "warnings", "codecs", "unicodedata",
    "contextlib", "copy", "sys",
}
# Third-party modules allowed per layer.
ALLOWED_THIRD_PARTY = {"sip": set(), "media": {"numpy", "g722", "G722"}}  # PyPI G722
ALLOWED_INTERNAL = {"sip": {"boomerang.sip"}, "media": {"boomerang.sip", "boomerang.media"}}
# Calls that would smuggle a clock or randomness in through an allowed module.
FORBIDDEN_ATTRIBUTES = {"time", "monotonic", "perf_counter", "urandom", "getrandom"}


def _module_files(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = "boomerang." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: -(node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def _violations(layer: str) -> list[str]:
    problems: list[str] = []
    for path in _module_files(layer):
        for line, name in _imports(path):
            top = name.split(".")[0]
            where = f"{path.relative_to(PACKAGE.parent)}:{line}"
            if top == "boomerang":
                if not any(name == p or name.startswith(p + ".") for p in ALLOWED_INTERNAL[layer]):
                    problems.append(f"{where}: imports {name} (a layer above or beside)")
            elif top not in ALLOWED_STDLIB and top not in ALLOWED_THIRD_PARTY[layer]:
                problems.append(f"{where}: imports {name} (I/O, clock or randomness)")
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES
                    and isinstance(node.value, ast.Name) and node.value.id in ("time", "os")):
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: "
                                f"calls {node.value.id}.{node.attr}")
    return problems


@pytest.mark.parametrize("layer", ["sip", "media"])
def test_sans_io_layers_import_no_io_and_nothing_above(layer: str) -> None:
    assert _module_files(layer), f"no modules found under boomerang/{layer}"
    assert _violations(layer) == []


def test_the_checker_catches_a_forbidden_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "boomerang" / "sip"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text(
        "import socket\nfrom ..call import x\nimport time\ntime.monotonic()\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path / "boomerang")
    problems = _violations("sip")
    assert any("socket" in p for p in problems)
    assert any("boomerang.call" in p for p in problems)
    assert any("time.monotonic" in p for p in problems)
