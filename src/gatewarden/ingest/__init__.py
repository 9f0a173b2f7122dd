"""Ingest: sources that pull request records and metric samples from a gateway."""

from gatewarden.ingest.health import SourceHealth
from gatewarden.ingest.http_log import HttpRequestLogSource
from gatewarden.ingest.jsonl_tail import JsonlTailSource
from gatewarden.ingest.prometheus_text import PrometheusScrapeSource, parse_exposition
from gatewarden.ingest.request_log import parse_lines, parse_record, read_log, records_frame

__all__ = [
    "HttpRequestLogSource",
    "JsonlTailSource",
    "PrometheusScrapeSource",
    "SourceHealth",
    "parse_exposition",
    "parse_lines",
    "parse_record",
    "read_log",
    "records_frame",
]
