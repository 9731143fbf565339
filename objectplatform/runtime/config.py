"""Settings from the `OBJECTPLATFORM_*` environment variables, with the embedded defaults."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ROOT = Path(__file__).resolve().parents[2]  # the repository: industry_templates/, instance/
SECRET_KEY_FILE = "secret_key"  # in the instance folder: the key `objectplatform demo` made for it
DEFAULT_TIME_ZONE = "Asia/Shanghai"
DEFAULT_RECYCLE_BIN_DAYS = 30


@dataclass(frozen=True)
class Settings:
    database_url: str
    read_database_url: str | None = None  # a replica that reports, exports and dashboards read (unset: the database)
    redis_url: str | None = None
    secret_key: str | None = None  # signs the pages' session cookies; `serve` refuses to start without one
    apps: tuple[str, ...] = ("crm",)  # runtime/apps.py: entry point names or module:attribute
    templates: tuple[str, ...] = ()  # from OBJECTPLATFORM_TEMPLATES; open_platform adds those enabled in the database
    templates_path: Path | None = None  # the folder of industry templates (default: industry_templates/ of root)
    custom_metadata: Path | None = None
    secure_cookies: bool = False  # served over HTTPS: session cookies only over it
    instance_path: Path = field(default=ROOT / "instance")
    root: Path = ROOT
    smtp_host: str | None = None  # unset: no email (runtime/email.py)
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "objectplatform@localhost"
    smtp_starttls: bool = False
    time_zone: str = DEFAULT_TIME_ZONE  # the site's days and schedules, and the pages' default (an IANA name)
    recycle_bin_days: int = DEFAULT_RECYCLE_BIN_DAYS  # how long a deleted record may be restored before the purge
    import_batch_size: int = 5000  # rows per committed batch (checkpoint) of an import job
    import_heartbeat_seconds: int = 60  # an import job silent for longer is shown as interrupted
    storage_url: str | None = None  # s3://bucket/prefix: attachments in that bucket (unset: the instance folder)
    storage_endpoint_url: str | None = None  # an S3-compatible service other than AWS (MinIO, Ceph, OSS, ...)
    storage_region: str | None = None
    storage_access_key_id: str | None = None  # unset: boto3's own credentials (AWS_* variables, instance role)
    storage_secret_access_key: str | None = None
    exact_total_limit: int = 100_000  # a list's total is counted up to this many matches, beyond it estimated

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> Settings:
        """Read OBJECTPLATFORM_DATABASE_URL, _READ_DATABASE_URL, _REDIS_URL, _SECRET_KEY, _APPS and _TEMPLATES
        (comma lists), _TEMPLATES_PATH, _CUSTOM_METADATA, _INSTANCE_PATH, _SECURE_COOKIES (1: HTTPS only), the
        optional email's _SMTP_HOST, _SMTP_PORT, _SMTP_USER, _SMTP_PASSWORD, _SMTP_FROM, _SMTP_STARTTLS (1: upgrade
        the connection), _TIMEZONE (an IANA name), _RECYCLE_BIN_DAYS, _IMPORT_BATCH_SIZE, _IMPORT_HEARTBEAT_SECONDS
        and the attachments' bucket: _STORAGE_URL (s3://bucket/prefix), _STORAGE_ENDPOINT_URL, _STORAGE_REGION,
        _STORAGE_ACCESS_KEY_ID, _STORAGE_SECRET_ACCESS_KEY, and _EXACT_TOTAL_LIMIT; unset ones take the defaults (SQLite
        under instance/, read from too, no email, Asia/Shanghai, 30 days, 1000 rows, 60 s, attachments under
        instance/attachments, 100,000 records)."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            return env.get(f"OBJECTPLATFORM_{name}") or None

        instance = Path(get("INSTANCE_PATH") or ROOT / "instance")
        custom = get("CUSTOM_METADATA")
        templates_path = get("TEMPLATES_PATH")
        values = {
            "database_url": get("DATABASE_URL") or f"sqlite:///{instance / 'objectplatform.db'}",
            "read_database_url": get("READ_DATABASE_URL"),
            "redis_url": get("REDIS_URL"),
            "secret_key": get("SECRET_KEY"),
            "apps": _names(get("APPS") or "crm"),
            "templates": _names(get("TEMPLATES") or ""),
            "templates_path": Path(templates_path) if templates_path else None,
            "custom_metadata": Path(custom) if custom else None,
            "instance_path": instance,
            "secure_cookies": get("SECURE_COOKIES") == "1",
            "smtp_host": get("SMTP_HOST"),
            "smtp_port": _port(get("SMTP_PORT") or "25"),
            "smtp_user": get("SMTP_USER"),
            "smtp_password": get("SMTP_PASSWORD"),
            "smtp_from": get("SMTP_FROM") or cls.smtp_from,
            "smtp_starttls": get("SMTP_STARTTLS") == "1",
            "time_zone": _time_zone(get("TIMEZONE") or DEFAULT_TIME_ZONE),
            "recycle_bin_days": _days(get("RECYCLE_BIN_DAYS") or str(DEFAULT_RECYCLE_BIN_DAYS)),
            "import_batch_size": _positive("IMPORT_BATCH_SIZE", get("IMPORT_BATCH_SIZE") or "5000"),
            "import_heartbeat_seconds": _positive("IMPORT_HEARTBEAT_SECONDS", get("IMPORT_HEARTBEAT_SECONDS") or "60"),
            "storage_url": _bucket_url(get("STORAGE_URL")),
            "storage_endpoint_url": get("STORAGE_ENDPOINT_URL"),
            "storage_region": get("STORAGE_REGION"),
            "storage_access_key_id": get("STORAGE_ACCESS_KEY_ID"),
            "storage_secret_access_key": get("STORAGE_SECRET_ACCESS_KEY"),
            "exact_total_limit": _positive("EXACT_TOTAL_LIMIT", get("EXACT_TOTAL_LIMIT") or "100000"),
        }
        values.update(overrides)
        return cls(**values)

    @property
    def template_folder(self) -> Path:
        """Where the industry templates are: one folder each (`objectplatform templates list` shows them)."""
        return self.templates_path or self.root / "industry_templates"

    @property
    def zone(self) -> ZoneInfo:
        """The site's time zone: where days start and schedules run (docs/engine.md, runtime/clock.py)."""
        return ZoneInfo(self.time_zone)

    @property
    def attachments_path(self) -> Path:
        """The attachments' folder when no bucket is configured (runtime/attachment_store.py)."""
        return self.instance_path / "attachments"

    def instance_secret_key(self) -> str:
        """The instance's own random secret key, made on first use and kept in the instance folder (readable by
        its owner only), so that the demo's sessions survive a restart and no two instances share a key."""
        path = self.instance_path / SECRET_KEY_FILE
        if not path.exists():
            self.instance_path.mkdir(parents=True, exist_ok=True)
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
                out.write(secrets.token_urlsafe(32))
        return path.read_text().strip()


def _names(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"OBJECTPLATFORM_SMTP_PORT must be a port number (1-65535), not {text!r}")
    return int(text)


def _days(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 3650:
        raise ValueError(f"OBJECTPLATFORM_RECYCLE_BIN_DAYS must be a number of days (1-3650), not {text!r}")
    return int(text)


def _time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"OBJECTPLATFORM_TIMEZONE must be an IANA time zone, e.g. Asia/Shanghai, "
                         f"not {name!r}") from None
    return name


def _positive(name: str, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"OBJECTPLATFORM_{name} must be a whole number of at least 1, not {text!r}")
    return int(text)


def _bucket_url(text: str | None) -> str | None:
    if text is not None and not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?", text):
        raise ValueError(f"OBJECTPLATFORM_STORAGE_URL must name a bucket as s3://bucket or s3://bucket/prefix, "
                         f"not {text!r}")
    return text
