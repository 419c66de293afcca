"""The browsable API docs: a page for people, so it behaves like the admin's pages."""

from django.contrib.auth.views import redirect_to_login
from django.urls import reverse
from drf_spectacular.views import SpectacularSwaggerView
from rest_framework import exceptions


class ApiDocsView(SpectacularSwaggerView):
    """GET /api/docs/: a browser without the right to read it (no login, or a login without staff)
    is sent to the admin login and comes back here after it. A client that sent an API key gets the
    API's 401/403 JSON, as on /api/schema/ (the machine-readable schema always answers like the API)."""

    def handle_exception(self, exc):
        refused = isinstance(exc, exceptions.NotAuthenticated | exceptions.PermissionDenied)
        if refused and not _sent_credentials(self.request):
            return redirect_to_login(self.request.get_full_path(), reverse("admin:login"))
        return super().handle_exception(exc)


def _sent_credentials(request) -> bool:
    """A client that authenticates by header is not a browser to send to a login form."""
    return request.auth is not None or "Authorization" in request.headers or "X-API-Key" in request.headers
