"""The course's own text set (fsl_utils/data/intents.tsv): its shape, its provenance note, the loader's errors,
and that an installed (non-editable) copy of the package carries it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from fsl_utils.data import TextClasses, load_intents
from fsl_utils.data.intents import INTENTS_FILE


def test_the_shipped_set_is_twelve_intents_of_twenty_distinct_requests():
    data = load_intents()
    assert isinstance(data, TextClasses)
    assert data.n_classes == 12 and data.n_per_class == 20
    assert all(len(group) == 20 for group in data.sentences)
    flat = data.flat()
    assert len(flat) == 240 and len(set(flat)) == 240 and flat[:20] == data.sentences[0]
    assert {"alarm", "reminder", "bank balance", "money transfer"} <= set(data.class_names)  # the near neighbours


def test_the_file_states_its_provenance_and_licence():
    header = [line for line in INTENTS_FILE.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    text = " ".join(header)
    assert "written for the course" in text and "not collected from users, scraped or downloaded" in text
    assert "Licence: CC0-1.0" in text


def test_malformed_files_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("# comment\nweather\tIs it sunny?\nno tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:3: expected 'class<TAB>sentence'"):
        load_intents(bad)
    bad.write_text("a\tone\na\ttwo\nb\tthree\n", encoding="utf-8")
    with pytest.raises(ValueError, match="same number of sentences"):
        load_intents(bad)
    bad.write_text("a\tone\nb\tone\n", encoding="utf-8")
    with pytest.raises(ValueError, match="appears twice"):
        load_intents(bad)
    good = tmp_path / "good.tsv"
    good.write_text("b\tthree\na\tone\n\nb\tfour\na\ttwo\n", encoding="utf-8")
    data = load_intents(good)
    assert data.class_names == ["b", "a"] and data.sentences == [["three", "four"], ["one", "two"]]


def test_every_data_file_of_the_package_is_declared_package_data():
    """Colab installs the course with pip from git, not editable: a wheel carries only .py files unless
    pyproject.toml declares the others as package data."""
    root = Path(__file__).resolve().parents[1]
    declared = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["fsl_utils"]
    package = root / "fsl_utils"
    data_files = [p.relative_to(package) for p in package.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert INTENTS_FILE.relative_to(package) in data_files
    for path in data_files:
        assert any(path.match(pattern) for pattern in declared), f"fsl_utils/{path} is not declared in [tool.setuptools.package-data]"
