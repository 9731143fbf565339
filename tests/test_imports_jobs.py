"""Imports as jobs: CSV, XLSX and vCard files through POST /objects/{o}/imports and GET /jobs/{id}
(in-process, and on Redis with a real rq worker), and the CLI's import of .xlsx and .vcf files."""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import replace

import openpyxl
import pytest
from support import shipped_crm
from test_api import PASSWORD, Api
from test_api import api as api  # noqa: F401  (fixtures)
from test_api import app as app  # noqa: F401
from test_api import metadata as metadata  # noqa: F401
from test_api import people as people  # noqa: F401
from test_jobs import rq_setup as rq_setup  # noqa: F401
from test_jobs import rq_worker, wait_until

from objectplatform.cli import main
from objectplatform.runtime import Settings, open_platform
from objectplatform.runtime.imports import card_values, parse_vcards
from objectplatform.runtime.jobs import JobRunner
from objectplatform.web import create_app

LEADS_CSV = (
    "\ufeff姓名,公司名称,Mobile,email,线索来源\n"
    "王伟,北京华信银行,13800000001,,展会\n"
    "李娜,上海浦江证券,,not-an-email,expo\n"
    "张敏,北京中科智远,13800000003,zhangmin@example.cn,Website\n"
    ",上海东昊精密,13800000004,,flyer\n"
    "刘洋,上海优选零售,13800000005,,referral\n"
)
SOURCES = "referral, promotion, campaign, telemarketing, website, expo, business_card, other"
CSV_ERRORS = [  # each message in English, and by its reason and params for the pages to say in their language
    {"row": 3, "fields": {"email": ["not a valid email address"]},
     "reasons": {"email": [{"reason": "value.not_an_email", "template": "not a valid email address", "params": {}}]}},
    {"row": 5, "fields": {"source": [f"'flyer' is not one of: {SOURCES}"], "name": ["is required"]},
     "reasons": {"source": [{"reason": "value.not_an_option", "template": "'{input}' is not one of: {allowed}",
                             "params": {"input": "flyer", "allowed": SOURCES}}],
                 "name": [{"reason": "value.required", "template": "is required", "params": {}}]}},
]

VCARDS = (
    "BEGIN:VCARD\r\n"
    "VERSION:3.0\r\n"
    "N:王;伟;;;\r\n"
    "FN:王伟\r\n"
    "ORG:北京华信银行;信息技术部\r\n"
    "TITLE:技术总监\r\n"
    "TEL;TYPE=CELL,VOICE:13800000001\r\n"
    "TEL;TYPE=WORK,VOICE:010-88886666\r\n"
    "EMAIL;TYPE=INTERNET,WORK:wangwei@example.cn\r\n"
    "ADR;TYPE=WORK:;;中关村大街1号;北京;北京市;100080;中国\r\n"
    "NOTE:展会上交换的名片\\, 对CRM\r\n"
    " 感兴趣\r\n"
    "END:VCARD\r\n"
    "BEGIN:VCARD\r\n"
    "VERSION:4.0\r\n"
    "N:Smith;Anna;;;\r\n"
    "ORG:Example Ltd.\r\n"
    "TITLE:Purchasing Manager\r\n"
    'TEL;VALUE=uri;TYPE="work,voice":tel:+86-21-5555-0100\r\n'
    "TEL;VALUE=uri;TYPE=cell:tel:+86-139-0000-0002\r\n"
    "item1.EMAIL;TYPE=work:anna@example.com\r\n"
    "ADR;TYPE=work:;;100 Century Ave;Shanghai;;200120;China\r\n"
    "NOTE:Met at the expo\\nwants a demo\r\n"
    "END:VCARD\r\n"
)
WANG = {
    "name": "王伟", "company": "北京华信银行", "title": "技术总监", "mobile": "13800000001", "phone": "010-88886666",
    "email": "wangwei@example.cn", "address": "中关村大街1号, 北京, 北京市, 100080, 中国",
    "description": "展会上交换的名片, 对CRM感兴趣", "source": "business_card",
}
ANNA = {
    "name": "Anna Smith", "company": "Example Ltd.", "title": "Purchasing Manager", "mobile": "+86-139-0000-0002",
    "phone": "+86-21-5555-0100", "email": "anna@example.com", "address": "100 Century Ave, Shanghai, 200120, China",
    "description": "Met at the expo\nwants a demo", "source": "business_card",
}
VCARD_FIELDS = tuple(WANG)


def upload(api: Api, as_: str, name: str, data: bytes, obj: str = "lead", **form):
    """POST the file as multipart; (status, body)."""
    return api.call("POST", f"/objects/{obj}/imports", as_, data={"file": (io.BytesIO(data), name), **form},
                    content_type="multipart/form-data")


def finished(api: Api, as_: str, job_id: str) -> dict:
    """The job's status once its in-process thread has ended (at once for a job on rq)."""
    api.client.application.extensions["objectplatform"].jobs.wait(job_id)
    status, body = api.get(f"/jobs/{job_id}", as_)
    assert status == 200, body
    return body


def leads(platform) -> list[dict]:
    return sorted(platform.records.list("lead", limit=500).items, key=lambda r: r["name"] or "")


def xlsx_bytes(rows: list[list]) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --- the API, jobs in-process -----------------------------------------------------------------


def test_csv_import_keeps_the_valid_rows_and_reports_the_bad_ones(api, platform, people):
    status, body = upload(api, "boss", "leads.csv", LEADS_CSV.encode())
    assert status == 202 and set(body) == {"job_id"}
    job_id = body["job_id"]
    assert finished(api, "boss", job_id) == {
        "id": job_id,
        "status": "finished",
        "progress": {"done": 5, "total": 5},
        "result": {"created": 3, "failed": 2, "errors": CSV_ERRORS, "all_or_nothing": False, "committed": [[2, 6]]},
        "error": None,
    }
    rows = [(r["name"], r["company"], r["mobile"], r["source"], r["owner"], r["created_by"]) for r in leads(platform)]
    assert rows == [
        ("刘洋", "上海优选零售", "13800000005", "referral", people["boss"], people["boss"]),
        ("张敏", "北京中科智远", "13800000003", "website", people["boss"], people["boss"]),
        ("王伟", "北京华信银行", "13800000001", "expo", people["boss"], people["boss"]),
    ]
    not_found = (404, {"error": {"code": "not_found", "message": f"no job {job_id}"}})
    assert api.get(f"/jobs/{job_id}", "admin") == not_found
    assert api.get(f"/jobs/{job_id}", "rep1") == not_found
    assert api.get("/jobs/nonsense", "boss") == (404, {"error": {"code": "not_found", "message": "no job nonsense"}})


def test_all_or_nothing_imports_nothing_when_a_row_fails(api, platform):
    status, body = upload(api, "boss", "leads.csv", LEADS_CSV.encode(), all_or_nothing="true")
    assert status == 202
    assert finished(api, "boss", body["job_id"])["result"] == {
        "created": 0, "failed": 2, "errors": CSV_ERRORS, "all_or_nothing": True, "committed": []}
    assert leads(platform) == []


def test_xlsx_import_resolves_labels_picklists_and_lookups(api, platform, people):
    campaign = platform.records.create("campaign", {"name": "2026春季展会", "type": "expo"}, system=True)["id"]
    data = xlsx_bytes([
        ["name", "Company", "手机", "source", "市场活动"],
        ["周杰", "云图科技", 13900000001, "Trade show", "2026春季展会"],
        [None, None, None, None, None],
        ["吴昊", "星辰", 13900000002, "官网", "no such campaign"],
    ])
    status, body = upload(api, "admin", "leads.xlsx", data)
    assert status == 202
    job = finished(api, "admin", body["job_id"])
    assert (job["status"], job["progress"], job["result"]) == ("finished", {"done": 2, "total": 2}, {
        "created": 1, "failed": 1, "all_or_nothing": False, "committed": [[2, 4]],
        "errors": [{"row": 4, "fields": {"campaign": ["must be a record id (a positive whole number)"]},
                    "reasons": {"campaign": [{"reason": "value.not_an_id", "params": {},
                                              "template": "must be a record id (a positive whole number)"}]}}]})
    rows = [(r["name"], r["company"], r["mobile"], r["source"], r["campaign"], r["owner"]) for r in leads(platform)]
    assert rows == [
        ("周杰", "云图科技", "13900000001", "expo", campaign, people["admin"]),
    ]


def test_vcard_3_and_4_become_leads(api, platform, people):
    status, body = upload(api, "boss", "cards.vcf", VCARDS.encode())
    assert status == 202
    job = finished(api, "boss", body["job_id"])
    assert (job["status"], job["result"]) == (
        "finished", {"created": 2, "failed": 0, "errors": [], "all_or_nothing": False, "committed": [[1, 14]]})
    assert [{f: r[f] for f in VCARD_FIELDS} for r in leads(platform)] == [ANNA, WANG]
    assert {r["owner"] for r in leads(platform)} == {people["boss"]}


def test_vcard_parsing_without_fn_and_with_fax():
    lead = shipped_crm().objects["lead"].vcard_import  # lead.yaml's imports: vcard:

    def cards(text, vcard=lead):
        return [(line, card_values(vcard, properties)) for line, properties in parse_vcards(text)]

    text = "BEGIN:VCARD\nVERSION:3.0\nN:李;娜\nTEL;TYPE=FAX:010-1\nTEL:021-6666 8888\nEND:VCARD\n"
    assert parse_vcards(text) == [(1, {"FN": "李娜", "TEL": "021-6666 8888"})]
    assert cards(text) == [(1, {"name": "李娜", "phone": "021-6666 8888", "source": "business_card"})]
    assert cards("BEGIN:VCARD\nN:Doe;John\nEND:VCARD", replace(lead, set={})) == [(1, {"name": "John Doe"})]


def test_bad_uploads_are_refused_before_any_job(api, platform):
    def error(status, message, fields=None):
        return status, {"error": {"code": "bad_request" if status == 400 else "forbidden", "message": message,
                                  **({"fields": fields} if fields else {})}}

    assert api.call("POST", "/objects/lead/imports", "boss", data={}, content_type="multipart/form-data") == error(
        400, 'send the file as the multipart/form-data field "file"', {"file": ["is required"]})
    assert upload(api, "boss", "leads.txt", b"name\nx\n") == error(
        400, "leads.txt: unknown file type '.txt'; import a .csv, .xlsx or .vcf file")
    assert upload(api, "boss", "leads.csv", b"") == error(
        400, "leads.csv: empty file; the first row must name the columns")
    status, body = upload(api, "boss", "leads.csv", "name,compnay\n周杰,云图\n".encode())
    assert status == 400
    assert body["error"]["message"].startswith(
        "leads.csv: unknown column 'compnay' (did you mean 'company'?) (the fields of lead: name, company, ")
    assert upload(api, "boss", "leads.csv", b"name\nx\n", all_or_nothing="maybe") == error(
        400, "all_or_nothing must be true or false", {"all_or_nothing": ["must be true or false"]})
    assert upload(api, "boss", "cards.vcf", b"hello") == error(
        400, "cards.vcf: no vCard (BEGIN:VCARD ... END:VCARD) in the file")
    assert upload(api, "boss", "leads.xlsx", b"not a zip") == error(
        400, "leads.xlsx: not a readable XLSX file (BadZipFile)")
    assert upload(api, "rep1", "leads.csv", b"name\nx\n") == error(
        403, "your roles do not allow the action Import on leads")
    assert upload(api, "finance", "leads.csv", b"name\nx\n") == error(
        403, "your roles do not allow you to create leads")
    assert leads(platform) == []
    assert not list((platform.settings.instance_path / "jobs").glob("*.json"))


# --- the API, jobs on Redis with a real rq worker ---------------------------------------------


def test_rq_worker_runs_the_import_with_progress(migrated_database_url, tmp_path, rq_setup):  # noqa: F811
    url, queue = rq_setup
    database_url = migrated_database_url
    from support import migrated_platform

    with migrated_platform(database_url, tmp_path) as platform:
        platform.jobs = JobRunner(url, queue)
        platform.records.create("user", {"username": "boss", "display_name": "赵经理", "password": PASSWORD,
                                         "roles": ["sales_manager"]}, system=True)
        api = Api(create_app(platform).test_client())
        rows = "".join(f"客户{i:04d},公司{i},139{i:08d}\n" for i in range(2500))
        status, body = upload(api, "boss", "big.csv", f"name,company,mobile\n{rows}客户X,公司X,oops\n".encode())
        assert status == 202
        job_id = body["job_id"]
        assert finished(api, "boss", job_id) == {"id": job_id, "status": "queued",
                                                  "progress": {"done": 0, "total": 2501}, "result": None,
                                                  "error": None}
        seen = set()
        os.environ["OBJECTPLATFORM_DATABASE_URL"] = database_url
        os.environ["OBJECTPLATFORM_IMPORT_BATCH_SIZE"] = "1000"  # the worker commits (and reports) three batches
        try:
            with rq_worker(url, queue, burst=True) as proc:
                wait_until(lambda: (seen.add(tuple(finished(api, "boss", job_id)["progress"].values())), proc.poll()
                                    is not None)[1], timeout=120)
                assert proc.wait(timeout=20) == 0
        finally:
            del os.environ["OBJECTPLATFORM_DATABASE_URL"], os.environ["OBJECTPLATFORM_IMPORT_BATCH_SIZE"]
        assert seen <= {(0, 2501), (1000, 2501), (2000, 2501), (2501, 2501)}
        assert finished(api, "boss", job_id) == {
            "id": job_id,
            "status": "finished",
            "progress": {"done": 2501, "total": 2501},
            "result": {"created": 2500, "failed": 1, "all_or_nothing": False,
                       "committed": [[2, 1001], [1002, 2001], [2002, 2502]],
                       "errors": [{"row": 2502, "fields": {"mobile": ["not a valid phone number"]},
                                   "reasons": {"mobile": [{"reason": "value.not_a_phone", "params": {},
                                                           "template": "not a valid phone number"}]}}]},
            "error": None,
        }
        assert platform.records.list("lead", limit=1).total == 2500


# --- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def cli_db(migrated_database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("OBJECTPLATFORM_DATABASE_URL", migrated_database_url)
    monkeypatch.setenv("OBJECTPLATFORM_INSTANCE_PATH", str(tmp_path / f"instance-{uuid.uuid4().hex[:6]}"))
    return migrated_database_url


def cli_leads() -> list[dict]:
    platform = open_platform(Settings.from_env())
    try:
        return leads(platform)
    finally:
        platform.close()


def test_cli_imports_vcard_and_xlsx(cli_db, tmp_path, capsys):
    cards = tmp_path / "cards.vcf"
    cards.write_text(VCARDS, encoding="utf-8")
    capsys.readouterr()
    assert main(["import", "lead", str(cards)]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("imported 2, failed 0\n", "\r[" + "#" * 30 + "] 2/2 rows\n")
    assert [{f: r[f] for f in VCARD_FIELDS} for r in cli_leads()] == [ANNA, WANG]

    sheet = tmp_path / "leads.xlsx"
    sheet.write_bytes(xlsx_bytes([["姓名", "email"], ["周杰", "zj@example.cn"], ["吴昊", "bad"]]))
    assert main(["import", "lead", str(sheet)]) == 1
    out, _ = capsys.readouterr()
    assert out == "imported 1, failed 1\nrow 3: email: not a valid email address\n"
    assert [r["name"] for r in cli_leads()] == ["Anna Smith", "周杰", "王伟"]

    other = tmp_path / "leads.txt"
    other.write_text("name\n", encoding="utf-8")
    assert main(["import", "lead", str(other)]) == 1
    assert capsys.readouterr().err == f"error: {other}: unknown file type '.txt'; import a .csv, .xlsx or .vcf file\n"
