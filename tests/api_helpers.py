"""API clients for tests: HTTPS (production settings redirect HTTP), with an API key or a staff session."""

import json
from decimal import Decimal

from rest_framework.test import APIClient

from usage.keys import api_key_create


class HttpsApiClient(APIClient):
    def request(self, **request):
        request.update({"wsgi.url_scheme": "https", "SERVER_PORT": "443"})
        return super().request(**request)


def api_client_with_key(scope: str) -> APIClient:
    _api_key, raw_key = api_key_create(name=f"test-{scope}", scope=scope)
    client = HttpsApiClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


def exact_json(response):
    """A response's JSON as a client that keeps every digit reads it (README, Money): numbers with a
    fraction or an exponent as Decimal, whole numbers as int."""
    return json.loads(response.content, parse_float=Decimal)
