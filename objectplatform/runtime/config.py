"""Settings from the `OBJECTPLATFORM_*` environment variables, with the embedded defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository: object_defs/, flows/, report_templates/


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str | None = None
    secret_key: str = "dev-only-secret-key"
    templates: tuple[str, ...] = ()
    custom_metadata: Path | None = None
    secure_cookies: bool = False  # served over HTTPS: session cookies only over it
    instance_path: Path = field(default=ROOT / "instance")
    root: Path = ROOT

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> Settings:
        """Read OBJECTPLATFORM_DATABASE_URL, _REDIS_URL, _SECRET_KEY, _TEMPLATES (comma list),
        _CUSTOM_METADATA, _INSTANCE_PATH and _SECURE_COOKIES (1: HTTPS only); unset ones take the
        defaults (SQLite under instance/)."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            return env.get(f"OBJECTPLATFORM_{name}") or None

        instance = Path(get("INSTANCE_PATH") or ROOT / "instance")
        custom = get("CUSTOM_METADATA")
        values = {
            "database_url": get("DATABASE_URL") or f"sqlite:///{instance / 'objectplatform.db'}",
            "redis_url": get("REDIS_URL"),
            "secret_key": get("SECRET_KEY") or cls.secret_key,
            "templates": tuple(t.strip() for t in (get("TEMPLATES") or "").split(",") if t.strip()),
            "custom_metadata": Path(custom) if custom else None,
            "instance_path": instance,
            "secure_cookies": get("SECURE_COOKIES") == "1",
        }
        values.update(overrides)
        return cls(**values)

    @property
    def attachments_path(self) -> Path:
        return self.instance_path / "attachments"
