"""Content negotiation for downloads: the view answers with its own file response (CSV), and DRF
renders only errors, always as JSON, whatever the client's Accept header asks for."""

from rest_framework.negotiation import BaseContentNegotiation


class ErrorsAsJsonNegotiation(BaseContentNegotiation):
    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return (renderers[0], renderers[0].media_type)
