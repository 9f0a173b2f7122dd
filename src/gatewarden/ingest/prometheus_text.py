"""Scrape a Prometheus text exposition (e.g. the LiteLLM proxy's ``/metrics``).

Parsing is :func:`gatewarden.ingest.prom_parse.parse_scrape`: ``prometheus_client``'s parser is
the reference for the format, and the fast path is proven equal to it (see that module).
:class:`PrometheusScrapeSource` turns successive scrapes into per-tick frame samples through a
:class:`~gatewarden.ingest.prom_rates.RateTracker` and a metric map (LiteLLM's by default).
"""

from __future__ import annotations

import hashlib

import httpx

from gatewarden.errors import ScrapeError, SourceError
from gatewarden.ingest.health import Figure
from gatewarden.ingest.litellm_metrics import LITELLM, MetricMap
from gatewarden.ingest.prom_parse import Scrape, parse_scrape
from gatewarden.ingest.prom_rates import RateTracker
from gatewarden.ingest.request_log import empty_frame
from gatewarden.models import Sample
from gatewarden.protocols import Batch


def parse_exposition(text: str, ts: float) -> list[Sample]:
    """Every sample of the exposition, stamped ``ts`` unless it carries its own timestamp.

    Strict: any bad line makes the whole text a :class:`ScrapeError` (the lenient form, which
    counts bad lines and keeps the rest, is :func:`parse_scrape`).
    """
    scrape = parse_scrape(text, ts)
    if scrape.malformed:
        raise ScrapeError(f"unparseable metrics exposition: {scrape.problems[0]}")
    return scrape.samples


class PrometheusScrapeSource:
    """Pulls ``url`` once per tick.

    With a ``metric_map`` (default: LiteLLM's) the batch holds per-tick frame samples
    (``gatewarden:<level>:<metric>``, see :mod:`gatewarden.ingest.sample_frames`) computed from
    the counter increases since the previous scrape, plus the map's pass-through gauges; the
    first scrape only sets the baseline. ``metric_map=None`` yields the raw samples instead.
    A page identical to the previous one is a stale scrape: it yields nothing (not zeros).
    """

    def __init__(
        self,
        url: str,
        *,
        client: httpx.Client | None = None,
        timeout: float = 5.0,
        name: str = "prometheus",
        metric_map: MetricMap | None = LITELLM,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self.metric_map = metric_map
        self.rates = RateTracker()
        self.stale = 0
        self._digest = b""
        # ``headers``: e.g. an Authorization header when the gateway protects /metrics.
        # Redirects are followed: LiteLLM serves the page at /metrics/.
        self._client = client or httpx.Client(
            timeout=timeout, headers=headers or {}, follow_redirects=True
        )

    def pull(self, until: float) -> Batch:
        try:
            response = self._client.get(self.url)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise SourceError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        digest = b""
        if self.metric_map is not None:
            digest = hashlib.blake2b(response.content, digest_size=16).digest()
            if digest == self._digest:
                # A byte-identical page (a caching proxy, a frozen exporter). LiteLLM's page
                # always moves (process metrics), so this is not "no traffic": yield nothing.
                self.stale += 1
                return Batch(records=empty_frame())
        scrape = parse_scrape(response.text, until)
        problems = [f"{self.name}: {p}" for p in scrape.problems]
        if scrape.malformed and not scrape.samples:
            return Batch(records=empty_frame(), malformed=scrape.malformed, problems=problems)
        samples = scrape.samples
        if self.metric_map is not None:
            self._digest = digest
            samples = self._frame_samples(self.metric_map, scrape)
        return Batch(
            records=empty_frame(), samples=samples, malformed=scrape.malformed, problems=problems
        )

    def _frame_samples(self, metric_map: MetricMap, scrape: Scrape) -> list[Sample]:
        deltas = self.rates.update(scrape)
        if deltas is None:
            # The baseline, or a page no newer than the last one (its own timestamps say so).
            self.stale += int(self.rates.last_result in ("stale", "out_of_order"))
            return metric_map.gauges(scrape)
        return [*metric_map.frame_samples(deltas), *metric_map.gauges(scrape)]

    def health_details(self, now: float) -> dict[str, Figure]:
        return {
            "stale_scrapes": self.stale,
            "counter_resets": self.rates.resets,
            "last_scrape": self.rates.last_result,
        }

    def close(self) -> None:
        self._client.close()
