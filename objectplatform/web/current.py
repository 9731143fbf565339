"""The platform of the app handling the current request, for the pages and the API (below both)."""

from __future__ import annotations

from flask import current_app

from objectplatform.runtime import Platform


def get_platform() -> Platform:
    """The platform of the app handling the current request."""
    return current_app.extensions["objectplatform"]
