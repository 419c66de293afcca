"""Reading a Prometheus exposition in tests, with the client library's own parser."""

from prometheus_client.parser import text_string_to_metric_families


def samples(exposition: str) -> dict[tuple[str, frozenset], float]:
    """(sample name, its labels) -> value, for every sample of the scrape."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(scraped: dict, name: str, **labels) -> float:
    """A sample's value; 0 when the series does not exist yet (a counter never incremented)."""
    return scraped.get((name, frozenset(labels.items())), 0.0)
