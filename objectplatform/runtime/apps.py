"""Apps: the plugin API a set of metadata ships its own Python through (the CRM is one, an implementer's is another).

(How it works: docs/engine.md, "objectplatform/runtime/apps.py".)"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from objectplatform.metadata import MetadataError, Problem
from objectplatform.metadata.problems import closest

ENTRY_POINTS = "objectplatform.apps"
SETTING = "OBJECTPLATFORM_APPS"


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    display_name: str


@dataclass(frozen=True)
class DemoResult:
    counts: Mapping[str, int]  # object name -> records created (inline child lines included)
    users: tuple[DemoUser, ...]  # the users created, with the passwords they sign in with


@dataclass(frozen=True)
class Demo:
    """An app's demo data: `load(platform)` fills an empty migrated database; `users()` lists the users it
    creates (for a database that holds them already). Either may raise `DemoUnavailable`. Given a folder (an
    industry edition's `demo/`, `objectplatform demo --template`), both read that folder's demo, in the app's
    format, instead of the app's own."""

    load: Callable[..., DemoResult]  # load(platform, folder=None)
    users: Callable[..., list[DemoUser]]  # users(folder=None)


class DemoUnavailable(Exception):
    """The demo cannot run here (say, an optional dependency is not installed); the message says what to do."""


@dataclass(frozen=True)
class App:
    """What an app brings: `layers` (folders holding object_defs/, flows/, report_templates/, in order, loaded
    after the engine's base layer, whose `user` and `department` an app extends rather than defines);
    `register(registry)`, run for each platform built (after the engine's plugins); `pages(flask_app)`,
    run by the web app factory to add the app's views (a blueprint); `demo`, for `objectplatform demo`."""

    name: str
    layers: tuple[Path, ...]
    register: Callable[[Any], None] | None = None
    pages: Callable[[Any], None] | None = None
    demo: Demo | None = None


def find_apps(names: Sequence[str]) -> tuple[App, ...]:
    """The apps named (entry point names, or `module:attribute`); a MetadataError lists every name that
    resolves to no app, with a "did you mean"."""
    found, problems = [], []
    for name in names:
        app = _resolve(name)
        if app is None:
            available = sorted(ep.name for ep in entry_points(group=ENTRY_POINTS))
            problems.append(Problem.at(SETTING, 0, 0, f"unknown app {name!r} (installed: {', '.join(available)})",
                                       hint=closest(name, available)))
        else:
            found.append(app)
    if problems:
        raise MetadataError(problems)
    return tuple(found)


def app_layers(apps: Sequence[App]) -> list[Path]:
    """The metadata layers of `apps`, in the order the apps are named."""
    return [layer for app in apps for layer in app.layers]


@functools.cache  # the installed apps do not change while a process runs; scanning entry points costs ~9 ms
def _resolve(name: str) -> App | None:
    if ":" in name:
        module, _, attribute = name.partition(":")
        try:
            app = getattr(importlib.import_module(module), attribute, None)
        except ModuleNotFoundError as e:
            if e.name is None or not f"{module}.".startswith(f"{e.name}."):
                raise  # the module exists, something it imports does not
            return None
        return app if isinstance(app, App) else None
    for ep in entry_points(group=ENTRY_POINTS, name=name):
        app = ep.load()
        return app if isinstance(app, App) else None
    return None
