"""Where attachments' files are kept: the instance folder by default, an S3-compatible bucket when
OBJECTPLATFORM_STORAGE_URL names one, so that several web nodes share them. A file is named by its key, the
`path` of the attachment value that holds it ("<object>/<uuid>/<name>")."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from .config import Settings


class AttachmentStore(Protocol):
    """What every store does; a missing key is FileNotFoundError for `open`, nothing for `delete`."""

    where: str  # the folder or the bucket's s3:// URL, for messages

    def put(self, key: str, content: bytes, content_type: str) -> None: ...

    def open(self, key: str) -> BinaryIO: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def keys(self) -> Iterator[str]: ...


def attachment_store(settings: Settings) -> AttachmentStore:
    """The store `settings` configure: the bucket of `storage_url`, else the instance's attachments folder."""
    if settings.storage_url:
        return BucketStore(settings)
    return FolderStore(settings.attachments_path)


def _checked(key: str) -> str:
    """`key` when it names a file below the store's root (attachment values are validated so; this is the guard)."""
    parts = PurePosixPath(key).parts
    if not parts or key.startswith("/") or "\\" in key or any(p in ("..", ".") for p in parts):
        raise FileNotFoundError(key)
    return key


class FolderStore:
    """Files under a folder of this machine, one per key (the embedded default: instance/attachments)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.where = str(folder)

    def _path(self, key: str) -> Path:
        return self.folder / _checked(key)

    def put(self, key: str, content: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # written aside and renamed: a reader never sees half a file
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".upload-", delete=False) as out:
            out.write(content)
        os.replace(out.name, path)

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        if not path.is_file():  # a folder's name is no file either
            raise FileNotFoundError(key)
        return path.open("rb")

    def exists(self, key: str) -> bool:
        try:
            return self._path(key).is_file()
        except FileNotFoundError:
            return False

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def keys(self) -> Iterator[str]:
        if self.folder.is_dir():
            for path in sorted(self.folder.rglob("*")):
                if path.is_file() and not path.name.startswith(".upload-"):
                    yield path.relative_to(self.folder).as_posix()


class BucketStore:
    """Objects in an S3-compatible bucket under a prefix (boto3), shared by every node of the site."""

    def __init__(self, settings: Settings):
        import boto3  # only a site that keeps its attachments in a bucket needs it (the `s3` extra)

        bucket, _, prefix = settings.storage_url.removeprefix("s3://").partition("/")
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.where = settings.storage_url
        self.client = boto3.client(
            "s3", endpoint_url=settings.storage_endpoint_url, region_name=settings.storage_region,
            aws_access_key_id=settings.storage_access_key_id,
            aws_secret_access_key=settings.storage_secret_access_key)

    def _name(self, key: str) -> str:
        return self.prefix + _checked(key)

    def put(self, key: str, content: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=content, ContentType=content_type)

    def open(self, key: str) -> BinaryIO:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._name(key))["Body"]
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(key) from None

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as e:
            if e.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        except FileNotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def keys(self) -> Iterator[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:
            for item in page.get("Contents", ()):
                yield item["Key"].removeprefix(self.prefix)
