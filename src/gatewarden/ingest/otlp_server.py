"""OTLP/HTTP trace receiver: ``POST /v1/traces`` -> buffered request records -> a Source.

Accepts ``application/x-protobuf`` and ``application/json`` (the OTLP JSON mapping), plain or
``Content-Encoding: gzip``. A payload that cannot be decoded is answered 400 and counted (the
next pull reports it as malformed), never a crash. Records wait in a bounded buffer until a
pull asks for them (``ts < until``); past ``max_buffer`` the oldest are dropped and counted.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gatewarden.clock import SystemClock
from gatewarden.errors import SourceError
from gatewarden.httpserve import ThreadedServer
from gatewarden.ingest.otlp import (
    OtlpPayloadError,
    SpanView,
    is_request_span,
    record_of,
    spans_from_json,
    spans_from_protobuf,
)
from gatewarden.ingest.request_log import MAX_PROBLEMS, records_frame
from gatewarden.models import RequestRecord
from gatewarden.protocols import Batch, Clock

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_PROTOBUF_TYPES = frozenset({PROTOBUF, "application/protobuf"})


class UnsupportedMediaType(OtlpPayloadError):
    """Neither protobuf nor JSON."""


class TraceLinker:
    """Marks fallbacks and retries across the request spans of one client request.

    The attempts of one client request are the request spans sharing a trace *and* a parent
    (LiteLLM's span for the proxy request): a client that propagates one trace across many
    requests (an agent run) must not see them linked. Attempts are ordered by when they
    *ended*: a fallback starts after the failure it replaces, but LiteLLM (1.106.2, streaming
    or not) may date the final span from the start of the whole request, before the failed
    attempt. The first attempt is the client's call; a later one routed to another model group
    is a fallback (``fallback: true``, ``requested_model`` = what the client asked for), a later
    one in the same group a retry. LiteLLM also gives every attempt the same
    ``litellm.call_id``: later attempts get ``-fb<n>`` appended so request ids stay unique.
    Spans may arrive in different exports and out of order, so the linker remembers recent
    requests (``max_traces``) and updates records still waiting in the buffer when an earlier
    attempt shows up.
    """

    def __init__(self, max_traces: int = 10_000) -> None:
        # ~100 s of requests at 100 rps: attempts of one request arrive seconds apart, and
        # each remembered request holds its records (~1 kB each) until it is evicted.
        self.max_traces = max_traces
        self._traces: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()

    def link(self, record: dict[str, Any]) -> None:
        if not record.get("trace_id"):
            return
        key = f"{record['trace_id']}/{record['_parent']}"
        members = self._traces.pop(key, [])
        members.append(record)
        self._traces[key] = members
        while len(self._traces) > self.max_traces:
            self._traces.popitem(last=False)
        if len(members) == 1:
            return
        members.sort(key=lambda r: (r["_end"], r["ts"]))
        first = members[0]
        asked, first_group = first["_group"], first["_group"]
        tries: dict[str, int] = {}
        ids: set[str] = set()
        for n, rec in enumerate(members):
            rec["requested_model"] = asked
            rec["fallback"] = rec["_group"] != first_group
            tries[rec["_group"]] = tries.get(rec["_group"], -1) + 1
            rec["retries"] = tries[rec["_group"]]
            rec["request_id"] = rec["_id"] if rec["_id"] not in ids else f"{rec['_id']}-fb{n}"
            ids.add(rec["request_id"])


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=31)
    try:
        data = inflater.decompress(body, limit)
    except zlib.error as exc:
        raise OtlpPayloadError(f"bad gzip body: {exc}") from exc
    if inflater.unconsumed_tail:
        raise OtlpPayloadError(f"gzip body inflates past {limit} bytes")
    return data


class OtlpReceiver:
    """A :class:`~gatewarden.protocols.Source` fed by OTLP/HTTP trace exports."""

    def __init__(
        self,
        *,
        name: str = "otlp",
        max_buffer: int = 200_000,
        max_body: int = 16 << 20,
        linker: TraceLinker | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.clock: Clock = clock or SystemClock()
        self.max_buffer = max_buffer
        self.max_body = max_body
        self.linker = linker or TraceLinker()
        self._lock = threading.Lock()
        self._buffer: list[dict[str, Any]] = []
        self._malformed = 0
        self._problems: list[str] = []
        self._server: OtlpServer | None = None
        self.stats = {"payloads": 0, "rejected": 0, "spans": 0, "records": 0, "dropped": 0}
        self.last_received: float | None = None

    # -- receiving ------------------------------------------------------------------------

    def ingest(self, body: bytes, content_type: str, content_encoding: str = "") -> int:
        """Decode one export request and buffer its request records; returns how many.

        Raises OtlpPayloadError (UnsupportedMediaType for other content types); the error is
        also counted for the next pull.
        """
        try:
            spans = self._decode(body, content_type, content_encoding)
            records, invalid = self._records(spans)
        except OtlpPayloadError as exc:
            self._reject(str(exc))
            raise
        with self._lock:
            for record in records:
                self.linker.link(record)
            self._buffer.extend(records)
            overflow = len(self._buffer) - self.max_buffer
            if overflow > 0:
                self._buffer.sort(key=lambda r: r["ts"])
                del self._buffer[:overflow]
                self.stats["dropped"] += overflow
            self.stats["payloads"] += 1
            self.stats["spans"] += len(spans)
            self.stats["records"] += len(records)
            self.last_received = self.clock.now()
            self._malformed += invalid
        return len(records)

    def _decode(self, body: bytes, content_type: str, encoding: str) -> list[SpanView]:
        media = content_type.split(";")[0].strip().lower()
        if encoding.strip().lower() == "gzip":
            body = _gunzip(body, self.max_body)
        elif encoding.strip().lower() not in ("", "identity"):
            raise UnsupportedMediaType(f"unsupported content-encoding {encoding!r}")
        if media in _PROTOBUF_TYPES:
            return list(spans_from_protobuf(body))
        if media == JSON:
            return list(spans_from_json(body))
        raise UnsupportedMediaType(f"unsupported content-type {content_type!r}")

    @staticmethod
    def _records(spans: Iterable[SpanView]) -> tuple[list[dict[str, Any]], int]:
        records: list[dict[str, Any]] = []
        invalid = 0
        for span in spans:
            if not is_request_span(span):
                continue
            record = record_of(span)
            try:
                RequestRecord.model_validate(record)
            except ValidationError:
                invalid += 1
                continue
            # What the linker needs, kept apart from the fields it rewrites.
            record["_group"] = record["requested_model"]
            record["_id"] = record["request_id"]
            record["_end"] = span.end_ns / 1e9
            record["_parent"] = span.parent_span_id
            records.append(record)
        return records, invalid

    def _reject(self, why: str) -> None:
        with self._lock:
            self.stats["rejected"] += 1
            self._malformed += 1
            if len(self._problems) < MAX_PROBLEMS:
                self._problems.append(f"{self.name}: rejected payload: {why[:200]}")
        log.warning("%s: rejected an OTLP payload: %s", self.name, why[:200])

    # -- the Source side ------------------------------------------------------------------

    def pull(self, until: float) -> Batch:
        if self._server is not None and not self._server.alive:
            raise SourceError(f"{self.name}: the OTLP receiver on {self._server.url} stopped")
        with self._lock:
            due = [r for r in self._buffer if r["ts"] < until]
            self._buffer = [r for r in self._buffer if r["ts"] >= until]
            malformed, problems = self._malformed, self._problems
            self._malformed, self._problems = 0, []
        rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in due]
        return Batch(records=records_frame(rows), malformed=malformed, problems=problems)

    def health_details(self, now: float) -> dict[str, float | int | str | None]:
        with self._lock:
            details: dict[str, float | int | str | None] = dict(self.stats)
            details["buffered"] = len(self._buffer)
        details["last_received"] = self.last_received
        details["receive_lag_s"] = None if self.last_received is None else now - self.last_received
        return details

    # -- HTTP -----------------------------------------------------------------------------

    def app(self) -> Starlette:
        """The ASGI app serving ``POST /v1/traces``."""

        async def traces(request: Request) -> Response:
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body:
                self._reject(f"body of {declared} bytes exceeds {self.max_body}")
                return PlainTextResponse("payload too large", status_code=413)
            chunks: list[bytes] = []
            size = 0
            try:
                # Read with a bound: a chunked upload declares no length up front.
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > self.max_body:
                        self._reject(f"body exceeds {self.max_body} bytes")
                        return PlainTextResponse("payload too large", status_code=413)
                    chunks.append(chunk)
            except ClientDisconnect:
                return PlainTextResponse("client went away", status_code=400)
            body = b"".join(chunks)
            media = request.headers.get("content-type", "")
            try:
                self.ingest(body, media, request.headers.get("content-encoding", ""))
            except UnsupportedMediaType as exc:
                return PlainTextResponse(str(exc), status_code=415)
            except OtlpPayloadError as exc:
                return PlainTextResponse(f"bad OTLP payload: {exc}"[:300], status_code=400)
            if media.split(";")[0].strip().lower() == JSON:
                return JSONResponse({})
            # An empty ExportTraceServiceResponse encodes to zero bytes.
            return Response(b"", media_type=PROTOBUF)

        return Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])

    def serve(self, host: str = "127.0.0.1", port: int = 4318) -> str:
        """Start the receiver's HTTP server on a background thread; returns its base URL."""
        self._server = OtlpServer(self, host=host, port=port)
        return self._server.start()

    @property
    def url(self) -> str | None:
        """Base URL of the running HTTP server (exporters post to ``<url>/v1/traces``)."""
        return None if self._server is None else self._server.url

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


class OtlpServer(ThreadedServer):
    def __init__(self, receiver: OtlpReceiver, *, host: str, port: int) -> None:
        super().__init__(receiver.app(), host=host, port=port, name="otlp")

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
