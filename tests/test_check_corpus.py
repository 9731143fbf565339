"""`objectplatform check` on a corpus of mistakes: it reports each at its file:line:col, never says ok, never crashes.

Each folder under `check_corpus/` is a site layer (object_defs/, flows/, report_templates/) holding one
mistake, loaded on top of the shipped CRM; its `expected.txt` holds the exact lines `check` prints, paths
relative to the folder. The mistakes are those of the shipped YAML's kinds mutated one at a time: wrong
types, unknown names, duplicates, bad labels, schedules and defaults, circular formulas, expressions nested
too deeply, unknown behaviors and their configuration, actions no object has.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from objectplatform.cli import main
from objectplatform.metadata import MetadataError
from objectplatform.runtime import Settings, open_platform

CORPUS = Path(__file__).parent / "check_corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


def test_the_corpus_holds_a_mistake_of_every_kind():
    assert len(CASES) >= 60
    assert sorted(p.parent.name for p in CORPUS.glob("*/expected.txt")) == CASES
    assert all((CORPUS / case / "expected.txt").read_text(encoding="utf-8").strip() for case in CASES)


@pytest.mark.parametrize("case", CASES)
def test_check_reports_the_mistake_at_its_place(case, monkeypatch, capsys):
    monkeypatch.chdir(CORPUS / case)
    monkeypatch.setenv("OBJECTPLATFORM_CUSTOM_METADATA", ".")
    monkeypatch.setenv("OBJECTPLATFORM_APPS", "crm")
    monkeypatch.delenv("OBJECTPLATFORM_TEMPLATES", raising=False)
    expected = (CORPUS / case / "expected.txt").read_text(encoding="utf-8").splitlines()
    count = f"{len(expected)} problem{'' if len(expected) == 1 else 's'} in the metadata"
    assert main(["check"]) == 1  # any exception but MetadataError escapes main() and fails the test
    out, err = capsys.readouterr()
    assert (out, err.splitlines()) == ("", [*expected, count])


def test_a_platform_whose_default_its_field_refuses_does_not_open(monkeypatch):
    """The runtime opens with the same check: a bad default stops it at start, not at the first sign-in."""
    monkeypatch.chdir(CORPUS / "default_boolean_number")
    with pytest.raises(MetadataError) as caught:
        open_platform(Settings.from_env({}, custom_metadata=Path("."), database_url="sqlite://"))
    assert [str(p) for p in caught.value.problems] == [
        "object_defs/site.yaml:6:56: default 17 of gadget.active: must be true or false (at fields.active.default)"
    ]
