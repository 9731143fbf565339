"""schemathesis over every operation of the OpenAPI document, with all its checks, against the WSGI app on each
backend: no 5xx, and every answer as the document describes it (status, content type, headers, body schema),
bad input refused and good input accepted."""

from __future__ import annotations

import pathlib
import tempfile
from contextlib import ExitStack

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance
from support import BACKENDS, crm_metadata
from test_api import PASSWORD

from objectplatform.runtime.actions import actions_service
from objectplatform.runtime.config import Settings
from objectplatform.runtime.platform import open_platform
from objectplatform.runtime.storage.migrate import migrate
from objectplatform.web import create_app, openapi

EXAMPLES = 6  # per operation and generation mode: about 221 operations x 12 requests (and the checks' own), each
# sent to every backend


def _labels() -> list[str]:
    """Every operation of the shipped CRM's document, those that write users last (a fuzzed PATCH may change the
    administrator the other operations sign in as)."""
    metadata = crm_metadata()
    with tempfile.TemporaryDirectory() as folder:
        platform = open_platform(Settings.from_env({}, database_url="sqlite://", instance_path=pathlib.Path(folder)),
                                 metadata)
        doc = openapi.document(metadata, actions_service(platform))
        platform.close()
    labels = [f"{method.upper()} {path}" for path, item in doc["paths"].items() for method in item
              if method != "parameters"]
    return sorted(labels, key=lambda label: label.split(" ")[1].startswith("/objects/user/")
                  and not label.startswith("GET"))


LABELS = _labels()


@pytest.fixture(scope="module")
def fuzz_apps(templates, tmp_path_factory, metadata) -> dict[str, object]:
    """One app per backend for the module, with people and a few records to hit: each drawn request goes to both,
    since drawing the requests costs about twice what answering them does."""
    apps = {}
    with ExitStack() as stack:
        for backend in BACKENDS:
            path = tmp_path_factory.mktemp(f"fuzz_{backend}")
            url = stack.enter_context(templates.blank(backend, path))
            platform = open_platform(Settings.from_env({}, database_url=url, instance_path=path), metadata)
            stack.callback(platform.close)
            migrate(platform.engine, platform.schema)
            records = platform.records
            admin = records.create("user", {"username": "admin", "display_name": "管理员", "password": PASSWORD,
                                            "roles": ["admin"]}, system=True)["id"]
            records.create("user", {"username": "rep", "display_name": "代表", "password": PASSWORD,
                                    "roles": ["sales_rep"]}, system=True)
            account = records.create("account", {"name": "ACME"}, user=admin)["id"]
            product = records.create("product", {"name": "W", "price": "9.90"}, user=admin)["id"]
            records.create("lead", {"name": "甲", "email": "a@example.com"}, user=admin)
            records.create("sales_order", {"account": account, "order_line": [
                {"product": product, "quantity": 2, "unit_price": "9.90"}]}, user=admin)
            apps[backend] = create_app(platform)
        yield apps


# A request the document allows may still break a business rule no JSON schema can say (a validation rule, a
# lifecycle's initial state, a reference to a record that does not exist, a duplicate rule): that is a 422 naming
# it. A 400 (the request's shape) stays a failure.
CONFIG = SchemathesisConfig.from_dict({
    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]},
               # a drawn query may be longer than the server takes: refused as 414 (web/errors.py), not a 400
               "negative_data_rejection": {"expected-statuses": ["400", "401", "403", "404", "405", "406", "409",
                                                                 "414", "415", "422", "428", "429"]}},
    # No text may hold NUL (PostgreSQL cannot store it): every face refuses it with a 400 (test_api_errors.py),
    # which the document does not repeat on each of its strings.
    "generation": {"allow-x00": False},
})


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_apps):
    """The document (the same on every backend: it comes from the metadata) as schemathesis reads it."""
    app = fuzz_apps[BACKENDS[0]]
    token = app.test_client().post("/api/v1/auth/token", json={"username": "admin", "password": PASSWORD})
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=CONFIG,
                                          headers={"Authorization": f"Bearer {token.get_json()['token']}"})


@pytest.fixture
def fuzz_headers(fuzz_apps) -> dict[str, dict]:
    """A token of its own on each backend for each operation (DELETE /auth/token revokes the one it is sent with);
    none once a fuzzed PATCH of the administrator changed the password (signed out)."""
    headers = {}
    for backend, app in fuzz_apps.items():
        response = app.test_client().post("/api/v1/auth/token", json={"username": "admin", "password": PASSWORD})
        headers[backend] = {"Authorization": f"Bearer {response.get_json()['token']}"} \
            if response.status_code == 200 else {}
    return headers


def _positive(case) -> bool:
    return case.meta is not None and case.meta.generation.mode.is_positive


@pytest.mark.parametrize("label", LABELS)
def test_operation_conforms_to_the_document(fuzz_schema, fuzz_apps, fuzz_headers, label):
    """Every check schemathesis has (the default set: all of them) on each drawn request; every failure is
    collected, so one run names every mismatch of the operation."""
    method, path = label.split(" ")
    operation = fuzz_schema[path][method]
    # An import's file must hold records (a CSV whose header names fields...), which no schema of a file says:
    # positive requests to it carry random bytes, which the server rightly refuses (400). A calendar's range (end
    # after start, at most 42 days), an anomaly list's period (within 93 days) and a frequency list's month are no
    # JSON schema's to say either, nor a mileage list's (within 93 days).
    ranged = ("/imports", "/calendar", "/frequency", "/anomalies", "/mileage")
    excluded = [positive_data_acceptance] if path.endswith(ranged) else []
    failures: list[str] = []

    @given(case=operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE))
    @settings(max_examples=2 * EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case):
        if _positive(case) and isinstance(case.query, dict):
            case.query.pop("cursor", None)  # a cursor is only one the server made (next_cursor); another is a 400
        for backend, app in fuzz_apps.items():
            fuzz_schema.config.update(headers=fuzz_headers[backend])  # as configured, so a negative case drops it
            try:
                case.call_and_validate(app=app, excluded_checks=excluded)
            except (AssertionError, BaseExceptionGroup) as e:  # the failed checks, with the request as curl
                failures.append(f"{backend}: {e}")

    run()
    assert not failures, "\n\n".join(failures)
