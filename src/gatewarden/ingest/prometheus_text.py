"""Scrape a Prometheus text exposition (e.g. the LiteLLM proxy's ``/metrics``) into Samples.

Parsing is delegated to ``prometheus_client``'s parser: it is the reference implementation of
the format, and a hand-written one would drift on escaping and histogram suffix rules.
"""

from __future__ import annotations

import math

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gatewarden.errors import ScrapeError, SourceError
from gatewarden.ingest.request_log import empty_frame
from gatewarden.models import Sample
from gatewarden.protocols import Batch


def parse_exposition(text: str, ts: float) -> list[Sample]:
    """Every sample of the exposition, stamped ``ts`` unless it carries its own timestamp."""
    try:
        samples = [
            Sample(
                name=s.name,
                labels=dict(s.labels),
                ts=float(s.timestamp) if s.timestamp is not None else ts,
                value=float(s.value),
            )
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        # The parser signals bad input with these; any of them means "not an exposition".
        raise ScrapeError(f"unparseable metrics exposition: {exc}") from exc
    return [s for s in samples if not math.isnan(s.value)]


class PrometheusScrapeSource:
    def __init__(
        self,
        url: str,
        *,
        client: httpx.Client | None = None,
        timeout: float = 5.0,
        name: str = "prometheus",
    ) -> None:
        self.name = name
        self.url = url
        self._client = client or httpx.Client(timeout=timeout)

    def pull(self, until: float) -> Batch:
        try:
            response = self._client.get(self.url)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise SourceError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        try:
            samples = parse_exposition(response.text, until)
        except ScrapeError as exc:
            return Batch(records=empty_frame(), malformed=1, problems=[f"{self.name}: {exc}"])
        return Batch(records=empty_frame(), samples=samples)

    def close(self) -> None:
        self._client.close()
