"""The CRM as an app: its metadata folders and its demo company, through `objectplatform.runtime.apps`.

Its YAML sits beside this module (object_defs/, flows/, report_templates/, and demo/ for `demo.py`); `app` is
what the `crm` entry point of the `objectplatform.apps` group names.
"""

from __future__ import annotations

from pathlib import Path

from objectplatform.runtime.apps import App, Demo, DemoResult, DemoUnavailable, DemoUser

from . import ordering, targets

LAYER = Path(__file__).resolve().parent  # the CRM's metadata layer: object_defs/, flows/, report_templates/


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


def _load_demo(platform, folder: Path | None = None) -> DemoResult:
    return _demo_module().load_demo(platform, folder)


def _demo_users(folder: Path | None = None) -> list[DemoUser]:
    return _demo_module().demo_users(folder)


def _register(registry) -> None:
    """The CRM's Python: its order action and its targets' owner."""
    ordering.register(registry)
    targets.register(registry)


app = App(name="crm", layers=(LAYER,), register=_register, demo=Demo(load=_load_demo, users=_demo_users))
