"""Defence in depth against secrets leaking into messages and reports.

Payloads are supposed to carry key *aliases* only; these helpers make sure that a writer that
slips (a gateway error echoing a bearer token, an action param named ``secret``) still cannot put
a credential into Slack, the console or a report.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    # OpenAI/Anthropic/LiteLLM-style API keys and Slack tokens.
    re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bxox[abposre]-[A-Za-z0-9\-]{6,}"),
    re.compile(r"\bxapp-[A-Za-z0-9\-]{6,}"),
    # Authorization headers echoed in error texts.
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]{6,}"),
)

# key=value / key: value pairs whose name says secret; the name and separator are kept.
# (``api_key`` is deliberately absent: in gatewarden it is the key *alias*, a scope label.)
_SECRET_PAIR = re.compile(
    r"(?i)\b((?:secret|token|password|passwd|authorization)\s*[=:]\s*)"
    r"(?!<redacted>)[^\s,;&\"']{4,}"
)

_SECRET_NAMES = re.compile(r"(?i)(secret|token|password|passwd|authorization|credential|bearer)")

REDACTED = "<redacted>"


def redact(text: str) -> str:
    """Mask anything in ``text`` that looks like a credential."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return _SECRET_PAIR.sub(lambda m: m.group(1) + REDACTED, text)


def is_secret_name(name: str) -> bool:
    """True if a parameter name says its value is a credential (``api_secret``, ``token``)."""
    return bool(_SECRET_NAMES.search(name))


def safe_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Render action params for humans: secret-named values masked, everything redacted."""
    out: dict[str, str] = {}
    for name, value in params.items():
        out[str(name)] = REDACTED if is_secret_name(str(name)) else redact(str(value))
    return out
