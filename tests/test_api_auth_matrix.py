"""Who may call what: every URL under /api/ (found by walking the URL resolver, so a new endpoint is
covered the day it is added) against every kind of caller.

/api/schema/ and /api/docs/ are not public (SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"] is
CanReadStats), so they are in the matrix like any read endpoint. /api/docs/ is a page for people:
a browser without the right to read it (no login, or a login without staff) is sent to the admin
login, as the admin's own pages do; the schema, read by tools, answers like the rest of the API."""

import json
import logging

import pytest
import yaml
from django.urls import URLResolver, get_resolver

from ingest.services import usage_record
from tests.api_helpers import HttpsApiClient
from tests.conftest import HttpsClient
from usage.keys import api_key_create, api_key_revoke
from usage.models import ApiKey, ApiKeyScope, UsageLog

pytestmark = pytest.mark.django_db

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Read endpoints that also admit write_usage keys on purpose (alerts/apis.py: callers about to
# spend hold write keys and must be able to ask whether budget remains).
WRITE_KEYS_MAY_READ = frozenset({"/api/v1/budget/check"})
KNOWN_ENDPOINTS = {
    ("POST", "/api/v1/usage/"),
    ("GET", "/api/v1/ai-platforms/stats"),
    ("GET", "/api/v1/ai-platforms/cost-trend-daily"),
    ("GET", "/api/v1/alerts/"),
    ("GET", "/api/v1/budget/check"),
    ("GET", "/api/v1/usage/decisions/matrix-decision"),
    ("GET", "/api/v1/admin/health/database"),
    ("GET", "/api/schema/"),
    ("GET", "/api/docs/"),
}
QUERY = {"/api/v1/budget/check": {"model": "gpt-4o"}}
# Parametrised routes and the concrete path the matrix calls; calls of DECISION are recorded before
# each GET of it (a read key must get a 200, not a 404), never before a write.
CONCRETE = {"/api/v1/usage/decisions/<str:decision_id>": "/api/v1/usage/decisions/matrix-decision"}
DECISION = "matrix-decision"
PAGES_FOR_PEOPLE = frozenset({"/api/docs/"})
RECORD = {"model_name": "gpt-4o-mini", "prompt_tokens": 100, "completion_tokens": 10}


def _walk(patterns, prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield "/" + prefix + str(pattern.pattern), pattern.callback


def _methods(view) -> list[str]:
    view_class = getattr(view, "cls", None) or getattr(view, "view_class", None)
    if view_class is None:  # A function view: it says nothing about its methods, so try the usual ones.
        return ["GET", "POST"]
    return [m.upper() for m in view_class.http_method_names if m not in ("head", "options") and hasattr(view_class, m)]


def api_endpoints() -> list[tuple[str, str]]:
    endpoints = []
    for route, view in _walk(get_resolver().url_patterns):
        if route.startswith("/api/"):
            route = CONCRETE.get(route, route)
            assert "<" not in route, f"{route}: give the matrix a concrete path for parametrised routes"
            endpoints += [(method, route) for method in _methods(view)]
    return sorted(endpoints)


ENDPOINTS = api_endpoints()
WRITES = [(method, route) for method, route in ENDPOINTS if method in WRITE_METHODS]
READS = [(method, route) for method, route in ENDPOINTS if method not in WRITE_METHODS]


def call(client, method: str, route: str, **extra):
    if method in WRITE_METHODS:
        return client.generic(method, route, json.dumps(RECORD), content_type="application/json", **extra)
    if route.endswith(f"/decisions/{DECISION}"):
        usage_record(model_name="gpt-4o-mini", decision_id=DECISION, purpose="secret purpose", error_message="")
    return client.get(route, QUERY.get(route, {}), **extra)


def key_client(scope: str, *, revoked: bool = False) -> HttpsApiClient:
    api_key, raw_key = api_key_create(name=f"matrix-{scope}", scope=scope)
    if revoked:
        api_key_revoke(api_key=api_key)
    client = HttpsApiClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


def assert_denied(response, *statuses: int) -> None:
    assert response.status_code in statuses, (response.status_code, response.content[:300])
    if response["Content-Type"].startswith("application/json"):
        assert response.json()["success"] is False


def assert_sent_to_login(response, route: str) -> None:
    assert response.status_code == 302, (response.status_code, response.content[:300])
    assert response["Location"] == f"/admin/login/?next={route}"


def assert_allowed(response) -> None:
    assert 200 <= response.status_code < 300, (response.status_code, response.content[:300])


def test_the_walk_finds_every_known_endpoint():
    assert ENDPOINTS
    assert set(ENDPOINTS) >= KNOWN_ENDPOINTS
    assert WRITES
    assert READS


@pytest.mark.parametrize(("method", "route"), ENDPOINTS)
def test_anonymous_is_refused(method, route):
    response = call(HttpsApiClient(), method, route)
    if route in PAGES_FOR_PEOPLE:
        assert_sent_to_login(response, route)
    else:
        assert_denied(response, 401, 403)


@pytest.mark.parametrize(("method", "route"), ENDPOINTS)
@pytest.mark.parametrize("scope", list(ApiKeyScope.values))
def test_a_revoked_key_is_refused_whatever_its_scope(method, route, scope):
    assert_denied(call(key_client(scope, revoked=True), method, route), 401)


@pytest.mark.parametrize(("method", "route"), ENDPOINTS)
def test_a_key_that_never_existed_is_refused(method, route):
    client = HttpsApiClient()
    client.credentials(HTTP_AUTHORIZATION="Api-Key aic_deadbeef_not-a-real-key")
    assert_denied(call(client, method, route), 401)


@pytest.mark.parametrize(("method", "route"), WRITES)
def test_a_read_key_may_not_write(method, route):
    assert_denied(call(key_client(ApiKeyScope.READ), method, route), 403)
    assert not UsageLog.objects.exists()


@pytest.mark.parametrize(("method", "route"), WRITES)
@pytest.mark.parametrize("scope", [ApiKeyScope.WRITE_USAGE, ApiKeyScope.READ_WRITE])
def test_a_write_key_may_write(method, route, scope):
    assert_allowed(call(key_client(scope), method, route))


@pytest.mark.parametrize(("method", "route"), READS)
def test_a_write_only_key_may_not_read_except_where_meant_to(method, route):
    response = call(key_client(ApiKeyScope.WRITE_USAGE), method, route)
    if route in WRITE_KEYS_MAY_READ:
        assert_allowed(response)
    else:
        assert_denied(response, 403)


@pytest.mark.parametrize(("method", "route"), READS)
@pytest.mark.parametrize("scope", [ApiKeyScope.READ, ApiKeyScope.READ_WRITE])
def test_a_read_key_may_read(method, route, scope):
    assert_allowed(call(key_client(scope), method, route))


@pytest.mark.parametrize(("method", "route"), READS)
def test_a_staff_session_may_read(method, route, staff_client):
    assert_allowed(call(staff_client, method, route))


@pytest.mark.parametrize(("method", "route"), ENDPOINTS)
def test_a_session_without_staff_is_refused(method, route, django_user_model):
    client = HttpsApiClient()
    client.force_login(django_user_model.objects.create_user(username="plain", password="plain-pass-123"))
    response = call(client, method, route)
    if route in PAGES_FOR_PEOPLE:
        assert_sent_to_login(response, route)  # The login page says who is logged in and lacks the right.
    else:
        assert_denied(response, 403)


@pytest.mark.parametrize(("method", "route"), WRITES)
def test_a_staff_session_writes_only_with_the_csrf_token(method, route, staff_user):
    browser = HttpsApiClient(enforce_csrf_checks=True)
    browser.force_login(staff_user)
    assert browser.get("/admin/").status_code == 200  # Sets the CSRF cookie, as the admin page does.
    token = browser.cookies["csrftoken"].value
    same_origin = {"HTTP_ORIGIN": "https://testserver", "HTTP_REFERER": "https://testserver/admin/"}

    refused = call(browser, method, route, **same_origin)
    assert_denied(refused, 403)
    assert "CSRF" in refused.json()["error"]["message"]
    assert not UsageLog.objects.exists()

    assert_allowed(call(browser, method, route, HTTP_X_CSRFTOKEN=token, **same_origin))


def test_the_raw_api_key_never_reaches_the_logs(caplog):
    caplog.set_level(logging.DEBUG)
    api_key, raw_key = api_key_create(name="secret", scope=ApiKeyScope.READ_WRITE)
    client = HttpsApiClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    assert client.post("/api/v1/usage/", RECORD, format="json").status_code == 201
    assert client.post("/api/v1/usage/", {"model_name": ""}, format="json").status_code == 400
    assert client.get("/api/v1/budget/check", {"model": "nope"}).status_code == 404
    assert client.get("/api/v1/ai-platforms/stats", HTTP_X_API_KEY=raw_key).status_code == 200
    api_key_revoke(api_key=api_key)
    assert client.get("/api/v1/alerts/").status_code == 401
    assert "Unauthorized" in caplog.text  # The 401 and 4xx were logged ...
    assert raw_key not in caplog.text  # ... and the key was not.
    secret_part = raw_key.split("_", 2)[2]  # aic_<prefix>_<secret>; the secret may contain "_".
    assert secret_part not in caplog.text


# --- Telling a refused caller what would work --------------------------------------------------


def _body(response) -> dict:
    """The error envelope; /api/schema/ renders it in the schema's own format (YAML unless asked)."""
    if response["Content-Type"].startswith("application/json"):
        return response.json()
    return yaml.safe_load(response.content)


@pytest.mark.parametrize(("method", "route"), [(m, r) for m, r in ENDPOINTS if r not in PAGES_FOR_PEOPLE])
def test_an_unaccepted_scheme_is_told_which_schemes_are_accepted(method, route):
    """A valid key sent as `Authorization: Bearer <key>` (as many SDKs do) is not an accepted scheme."""
    _api_key, raw_key = api_key_create(name="bearer", scope=ApiKeyScope.READ_WRITE)
    client = HttpsApiClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    response = call(client, method, route)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Api-Key"
    error = _body(response)["error"]
    assert error["code"] == "not_authenticated"
    message = error["message"]
    assert "`Authorization: Bearer` scheme is not accepted here" in message
    assert "`Authorization: Api-Key <key>`" in message
    assert "`X-API-Key: <key>` header" in message
    assert "staff session" in message
    assert raw_key not in message


def test_no_credentials_at_all_are_told_what_to_send():
    response = HttpsApiClient().get("/api/v1/ai-platforms/stats")
    assert response.status_code == 401
    message = response.json()["error"]["message"]
    assert message.startswith("Authentication credentials were not provided. Send `Authorization: Api-Key <key>`")


def test_the_docs_send_a_browser_to_the_login_and_back(staff_user):
    browser = HttpsClient()
    response = browser.get("/api/docs/", follow=True)
    assert response.redirect_chain == [("/admin/login/?next=/api/docs/", 302)]
    assert 'name="next" value="/api/docs/"' in response.content.decode()
    logged_in = browser.post(
        "/admin/login/?next=/api/docs/", {"username": "staff", "password": "staff-pass-123", "next": "/api/docs/"}
    )
    assert logged_in["Location"] == "/api/docs/"
    docs = browser.get("/api/docs/")
    assert docs.status_code == 200
    assert "swagger-ui" in docs.content.decode()


def test_the_docs_answer_a_client_that_sent_a_key_like_the_api():
    client = HttpsApiClient()
    client.credentials(HTTP_AUTHORIZATION="Api-Key aic_deadbeef_not-a-real-key")
    assert_denied(client.get("/api/docs/"), 401)
    assert_denied(key_client(ApiKeyScope.WRITE_USAGE).get("/api/docs/"), 403)


def test_the_schema_answers_anonymous_like_the_api():
    response = HttpsApiClient().get("/api/schema/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Api-Key"
    assert "Send `Authorization: Api-Key <key>`" in _body(response)["error"]["message"]


# --- group_by (issue 17): every new parameter on every endpoint that takes it -------------------
# purpose and an API key's name are free text, so a grouping by them (and, alike, every other
# grouping) answers only readers.

GROUPED_ROUTES = ("/api/v1/ai-platforms/stats", "/api/v1/ai-platforms/cost-trend-daily", "/api/v1/usage/export.csv")
GROUPED_QUERIES = [
    {"group_by": group_by, **extra}
    for group_by in ("model", "provider", "user_id", "purpose", "api_key")
    for extra in ({}, {"limit": 1}, {"limit": 1, "offset": 1})
]


def _grouped_calls():
    for route in GROUPED_ROUTES:
        for query in GROUPED_QUERIES:
            if route.endswith("export.csv") and "limit" in query:
                continue  # The export writes every group.
            if route.endswith("cost-trend-daily") and "offset" in query:
                continue  # The trend's limit is its top N: no pages.
            yield route, query


GROUPED_CALLS = list(_grouped_calls())


def _grouped(client, route: str, query: dict):
    usage_record(model_name="gpt-4o-mini", user_id=7, purpose="secret purpose")
    sender = ApiKey.objects.filter(name="secret key name").first()
    if sender is None:  # One key for the test: its calls are one group, ranked before those without a key.
        sender = api_key_create(name="secret key name", scope=ApiKeyScope.WRITE_USAGE)[0]
    usage_record(model_name="gpt-4o-mini", api_key=sender)
    return client.get(route, query)


@pytest.mark.parametrize(("route", "query"), GROUPED_CALLS)
def test_grouped_reads_refuse_whoever_may_not_read(route, query, django_user_model):
    plain = HttpsApiClient()
    plain.force_login(django_user_model.objects.create_user(username="plain", password="plain-pass-123"))
    for client, statuses in (
        (HttpsApiClient(), (401, 403)),
        (key_client(ApiKeyScope.WRITE_USAGE), (403,)),
        (key_client(ApiKeyScope.READ, revoked=True), (401,)),
        (plain, (403,)),
    ):
        response = _grouped(client, route, query)
        assert_denied(response, *statuses)
        assert b"secret purpose" not in response.content
        assert b"secret key name" not in response.content


@pytest.mark.parametrize(("route", "query"), GROUPED_CALLS)
def test_grouped_reads_answer_read_keys_and_staff(route, query, staff_client):
    for client in (key_client(ApiKeyScope.READ), key_client(ApiKeyScope.READ_WRITE), staff_client):
        response = _grouped(client, route, query)
        assert_allowed(response)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert (b"secret purpose" in body) is (query["group_by"] == "purpose" and "offset" not in query)
        assert (b"secret key name" in body) is (query["group_by"] == "api_key" and "offset" not in query)
