"""The CRM as an app: its metadata folders and its demo company, through `objectplatform.runtime.apps`.

The YAML still sits at the repository's root (object_defs/, flows/, report_templates/, demo/); `app` is
what the `crm` entry point of the `objectplatform.apps` group names.
"""

from __future__ import annotations

from pathlib import Path

from objectplatform.runtime.apps import App, Demo, DemoResult, DemoUnavailable, DemoUser

ROOT = Path(__file__).resolve().parents[1]  # the CRM's metadata layer (for now the repository's root)


def _demo_module():
    """objectplatform_crm.demo, which needs Faker (the `demo` extra)."""
    try:
        from . import demo
    except ModuleNotFoundError as e:
        if e.name != "faker":
            raise
        raise DemoUnavailable("the CRM demo needs Faker, which is not installed: "
                              "pip install 'objectplatform[demo]' (or `make install`)") from None
    return demo


def _load_demo(platform) -> DemoResult:
    return _demo_module().load_demo(platform)


def _demo_users() -> list[DemoUser]:
    return _demo_module().demo_users()


app = App(name="crm", layers=(ROOT,), demo=Demo(load=_load_demo, users=_demo_users))
