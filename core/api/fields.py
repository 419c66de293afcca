"""Serializer fields the apps' APIs share."""

from rest_framework import serializers


def lookup_field(*, max_length: int, **kwargs) -> serializers.CharField:
    """A name to look up, matched exactly as given: " " is a name that matches nothing, not an error."""
    return serializers.CharField(max_length=max_length, trim_whitespace=False, **kwargs)
