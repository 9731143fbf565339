"""Attachments through one store: the instance folder by default, an S3 bucket when OBJECTPLATFORM_STORAGE_URL names
one. The bucket is moto's S3 server, a real HTTP server on loopback, so the bucket store speaks S3 over the wire as it
would to AWS or MinIO; two web nodes on the same database and bucket serve each other's uploads."""

from __future__ import annotations

import base64
import io
import socket
import tarfile
import uuid

import boto3
import pytest
from moto.server import ThreadedMotoServer
from PIL import Image
from support import FixedClock, shared_site
from test_api import PASSWORD, SITE_LAYER, Api
from test_api import people as people  # noqa: F401  (fixtures)
from test_pages import login
from test_visits import SHOP, T0, account, act, visit

from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.attachment_store import BucketStore, FolderStore, attachment_store
from objectplatform.runtime.backup import create_backup, restore_backup
from objectplatform.runtime.errors import Conflict
from objectplatform.web import create_app


def _jpeg() -> bytes:
    """A 16 × 16 grey JPEG: the photo taken on site (a check-in keeps it in photo_original, stamped in photo)."""
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (128, 128, 128)).save(out, "JPEG")
    return out.getvalue()


CREDENTIALS = {"OBJECTPLATFORM_STORAGE_REGION": "us-east-1", "OBJECTPLATFORM_STORAGE_ACCESS_KEY_ID": "testing",
               "OBJECTPLATFORM_STORAGE_SECRET_ACCESS_KEY": "testing"}
JPEG = _jpeg()
PHOTO = {"filename": "门头.jpg", "content_base64": base64.b64encode(JPEG).decode(), "content_type": "image/jpeg"}


@pytest.fixture(scope="module")
def metadata():
    return shared_site({"flows/standard.yaml": SITE_LAYER})


@pytest.fixture(scope="module")
def s3() -> str:
    """The endpoint URL of an S3 server on a free loopback port, for this module's tests."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def bucket(s3) -> str:
    """A new, empty bucket's name."""
    name = f"op-{uuid.uuid4().hex[:12]}"
    client(s3).create_bucket(Bucket=name)
    return name


def client(s3: str):
    return boto3.client("s3", endpoint_url=s3, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def bucket_env(s3: str, bucket: str) -> dict[str, str]:
    return {"OBJECTPLATFORM_STORAGE_URL": f"s3://{bucket}/site-a", "OBJECTPLATFORM_STORAGE_ENDPOINT_URL": s3,
            **CREDENTIALS}


@pytest.fixture
def platform(migrated_database_url, tmp_path, metadata, s3, bucket):
    """A web node keeping its attachments in the bucket, under the prefix site-a/."""
    settings = Settings.from_env(bucket_env(s3, bucket), database_url=migrated_database_url,
                                 instance_path=tmp_path / "node-1")
    platform = open_platform(settings, metadata)
    platform.clock = FixedClock(T0)
    try:
        yield platform
    finally:
        platform.close()


@pytest.fixture
def api(platform, people) -> Api:  # noqa: F811
    return Api(create_app(platform).test_client())


def test_a_check_in_photo_lands_in_the_bucket_and_every_node_serves_it(platform, api, s3, bucket, tmp_path):
    mine = visit(api, account(api, location=SHOP))
    status, body = act(api, mine, "check_in", lat=SHOP["lat"], lng=SHOP["lng"], photo=PHOTO)
    photo = body["record"]["photo_original"]
    assert (status, photo["name"], photo["size"], photo["content_type"]) == (200, "门头.jpg", len(JPEG),
                                                                             "image/jpeg")
    assert photo["path"].startswith("visit/") and photo["path"].endswith("/门头.jpg")
    stored = client(s3).get_object(Bucket=bucket, Key=f"site-a/{photo['path']}")
    assert (stored["Body"].read(), stored["ContentType"]) == (JPEG, "image/jpeg")
    assert not (tmp_path / "node-1" / "attachments").exists()  # nothing on this machine's disk

    second = open_platform(Settings.from_env(bucket_env(s3, bucket), database_url=platform.settings.database_url,
                                             instance_path=tmp_path / "node-2"), platform.metadata)
    try:
        for node in (platform, second):
            browser = create_app(node).test_client()
            login(browser, "rep1", PASSWORD)
            download = browser.get(f"/o/visit/{mine}/file/photo_original")
            assert (download.status_code, download.data, download.mimetype) == (200, JPEG, "image/jpeg")
            assert download.headers["Content-Disposition"] == (
                "attachment; filename=.jpg; filename*=UTF-8''%E9%97%A8%E5%A4%B4.jpg")  # 门头.jpg
    finally:
        second.close()

    status, _ = api.delete(f"/objects/visit/records/{mine}", "admin")
    browser = create_app(platform).test_client()
    login(browser, "rep1", PASSWORD)
    assert (status, browser.get(f"/o/visit/{mine}/file/photo_original").status_code) == (204, 404)
    # the file stays while the record may come back from the recycle bin, and comes back with it
    _, entries = api.get("/recycle_bin", "admin")
    status, _ = api.post(f"/recycle_bin/{entries['items'][0]['id']}/restore", "admin")
    assert (status, browser.get(f"/o/visit/{mine}/file/photo_original").data) == (200, JPEG)


def test_a_file_missing_from_the_bucket_is_a_404_not_a_500(platform, api, s3, bucket):
    mine = visit(api, account(api, location=SHOP))
    _, body = act(api, mine, "check_in", lat=SHOP["lat"], lng=SHOP["lng"], photo=PHOTO)
    client(s3).delete_object(Bucket=bucket, Key=f"site-a/{body['record']['photo']['path']}")
    browser = create_app(platform).test_client()
    login(browser, "rep1", PASSWORD)
    assert browser.get(f"/o/visit/{mine}/file/photo").status_code == 404


def test_a_backup_takes_the_bucket_s_files_and_a_restore_puts_them_into_another(
        platform, api, s3, bucket, backend, templates, tmp_path):
    mine = visit(api, account(api, location=SHOP))
    photo = act(api, mine, "check_in", lat=SHOP["lat"], lng=SHOP["lng"], photo=PHOTO)[1]["record"]["photo_original"]
    archive = tmp_path / "site.tar.gz"
    assert create_backup(platform.settings, archive)["attachments"] == 2  # the original and the stamped copy
    with tarfile.open(archive) as tar:
        assert tar.extractfile(f"attachments/{photo['path']}").read() == JPEG

    other = f"op-{uuid.uuid4().hex[:12]}"
    client(s3).create_bucket(Bucket=other)
    client(s3).put_object(Bucket=other, Key="site-a/product/ef56/old.png", Body=b"\x89PNG")
    with templates.blank(backend, tmp_path) as target_url:
        target = Settings.from_env(bucket_env(s3, other), database_url=target_url, instance_path=tmp_path / "b")
        with pytest.raises(Conflict) as refused:
            restore_backup(target, archive)
        assert str(refused.value.message) == f"s3://{other}/site-a holds files: restore into an empty folder, or " \
                                             "add --force to move it aside"
        done = restore_backup(target, archive, force=True)
    assert (done["attachments"], done["moved"]) == (3, [])  # the bucket keeps what it held
    stored = client(s3).get_object(Bucket=other, Key=f"site-a/{photo['path']}")
    assert (stored["Body"].read(), stored["ContentType"]) == (JPEG, "image/jpeg")


@pytest.mark.parametrize("kind", ["folder", "bucket"])
def test_both_stores_keep_put_open_list_and_delete_alike(kind, s3, bucket, tmp_path):
    env = bucket_env(s3, bucket) if kind == "bucket" else {}
    store = attachment_store(Settings.from_env(env, database_url="sqlite://", instance_path=tmp_path))
    assert isinstance(store, BucketStore if kind == "bucket" else FolderStore)
    assert store.where == (f"s3://{bucket}/site-a" if kind == "bucket" else str(tmp_path / "attachments"))
    store.put("payment/ab12/回单.pdf", b"%PDF-1.4 receipt", "application/pdf")
    store.put("visit/cd34/门头.jpg", JPEG, "image/jpeg")
    with store.open("payment/ab12/回单.pdf") as content:
        assert content.read() == b"%PDF-1.4 receipt"
    assert (store.exists("visit/cd34/门头.jpg"), store.exists("visit/cd34/other.jpg")) == (True, False)
    assert list(store.keys()) == ["payment/ab12/回单.pdf", "visit/cd34/门头.jpg"]
    store.delete("visit/cd34/门头.jpg")
    store.delete("visit/cd34/门头.jpg")  # deleting what is gone is no error
    assert list(store.keys()) == ["payment/ab12/回单.pdf"]
    for key in ("visit/cd34/门头.jpg", "payment/ab12", "../secret_key", "/etc/passwd", "a/../../b"):
        with pytest.raises(FileNotFoundError):
            store.open(key)
        assert store.exists(key) is False


def test_the_storage_url_must_name_a_bucket():
    for url in ("/srv/files", "s3://", "https://bucket.example.com/x"):
        with pytest.raises(ValueError) as refused:
            Settings.from_env({"OBJECTPLATFORM_STORAGE_URL": url}, database_url="sqlite://")
        assert str(refused.value) == (f"OBJECTPLATFORM_STORAGE_URL must name a bucket as s3://bucket or "
                                      f"s3://bucket/prefix, not {url!r}")
    assert Settings.from_env({}, database_url="sqlite://").storage_url is None
