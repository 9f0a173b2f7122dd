"""What the console's pages are made of: templates, static files, response headers."""

from __future__ import annotations

import base64
import functools
import hashlib
from importlib import resources

import jinja2

from gatewarden.report.describe import fmt_clock, fmt_duration, fmt_ts

STATIC = {"console.css": "text/css", "console.js": "text/javascript"}
#: The login page is served before the token is known, so it cannot load the (token-protected)
#: stylesheet: it carries this inline style instead, allowed by its hash in the CSP.
LOGIN_CSS = (
    "body{font:14px/1.45 system-ui,sans-serif;color:#1b1f24;margin:0}"
    "header{padding:.6rem 1.25rem;background:#24292f}header a{color:#f6f8fa;text-decoration:none;"
    "font-weight:700}section{max-width:420px;margin:3rem auto;border:1px solid #d0d7de;"
    "border-radius:6px;padding:.8rem 1rem}label{display:block;margin:.6rem 0 .2rem}"
    "input{font:inherit;padding:.3rem .4rem;width:100%}button{font:inherit;margin-top:.6rem;"
    "padding:.35rem .9rem}.error{background:#ffebe9;padding:.5rem .8rem;border-radius:4px}"
)
_LOGIN_HASH = base64.b64encode(hashlib.sha256(LOGIN_CSS.encode()).digest()).decode()
HEADERS = {
    # Same-origin scripts and styles only; charts are same-origin PNGs; no framing. (A
    # no-referrer policy would make browsers send "Origin: null", defeating the origin check.)
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; "
        f"style-src 'self' 'sha256-{_LOGIN_HASH}'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@functools.cache
def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gatewarden.console", "templates"),
        autoescape=True,  # every value on these pages is escaped, whoever wrote the payload
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ts"] = fmt_ts
    env.filters["clock"] = fmt_clock
    env.filters["duration"] = fmt_duration
    return env


@functools.cache
def static_file(name: str) -> bytes:
    return resources.files("gatewarden.console").joinpath("static", name).read_bytes()
