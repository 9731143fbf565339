"""Guard: every field type and every metadata kind is documented in docs/metadata.md, every setting in the README."""

import json
from pathlib import Path

import pytest
from support import CRM_LAYERS

from objectplatform.metadata import FIELD_TYPES
from objectplatform.runtime import Settings
from objectplatform.runtime.passwords import COST_VARIABLE

DOC = (Path(__file__).parents[1] / "docs" / "metadata.md").read_text(encoding="utf-8")
README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
SCHEMAS = Path(__file__).parents[1] / "objectplatform" / "metadata" / "schemas"


@pytest.mark.parametrize("type_name", sorted(FIELD_TYPES))
def test_field_type_is_documented(type_name):
    assert f"`{type_name}`" in DOC


@pytest.mark.parametrize("kind", sorted(p.stem for p in SCHEMAS.glob("*.json") if p.stem != "common"))
def test_kind_is_documented(kind):
    assert json.loads((SCHEMAS / f"{kind}.json").read_text())["$schema"].endswith("2020-12/schema")
    assert f"kind: {kind}" in DOC


def test_flow_and_report_examples_load(tmp_path):
    """The examples an administrator copies from the docs load without a problem."""
    from objectplatform.metadata import default_layers, load_metadata

    start = DOC.index("kind: approval_flow\nname: order_approval")
    docs = DOC[start : DOC.index("```", start)].split("---\n")
    (tmp_path / "flows").mkdir()
    (tmp_path / "report_templates").mkdir()
    (tmp_path / "flows" / "examples.yaml").write_text("---\n".join(d for d in docs if "kind: report" not in d))
    (tmp_path / "report_templates" / "examples.yaml").write_text(next(d for d in docs if "kind: report" in d))
    md = load_metadata(default_layers(Path(__file__).parents[1], [], tmp_path, CRM_LAYERS))
    assert {"enterprise", "lead_no_follow_up", "order_approval"} <= set(md.flows)  # beside the shipped flows
    assert "leads_by_campaign" in md.reports


class _Asked(dict):
    """An empty environment that notes every variable read from it."""

    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def get(self, name, default=None):
        self.names.append(name)
        return default


def test_every_setting_is_in_the_readme_configuration_and_deployment():
    env = _Asked()
    Settings.from_env(env)
    assert len(env.names) == 26 and all(name.startswith("OBJECTPLATFORM_") for name in env.names)
    configuration = README[README.index("## Configuration"):README.index("## Operations")]
    deployment = README[README.index("## Deployment"):README.index("## The `objectplatform` command")]
    for name in [*env.names, COST_VARIABLE]:
        assert f"`{name}`" in configuration, name
        short = name.removeprefix("OBJECTPLATFORM")
        assert f"`{name}`" in deployment or f"`{short}`" in deployment, name
