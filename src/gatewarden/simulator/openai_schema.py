"""OpenAI Chat Completions wire shapes for the simulator: the request body it accepts and the
bodies it answers with (completion, stream chunks, model list, errors).

Only what the simulator acts on is validated. Other OpenAI parameters (``temperature``,
``tools``, ...) are accepted and ignored: a gateway forwards them to a provider, and the
simulator calls none.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
)

#: LiteLLM's ``/v1/models`` reports this fixed ``created`` for every configured model group.
MODELS_CREATED = 1_677_610_602
#: OpenAI's token estimate for an image part at low detail; the simulator sees no pixels.
_IMAGE_TOKENS = 85
#: Words per streamed ``chat.completion.chunk`` (each simulated word counts as one token).
_WORDS_PER_CHUNK = 8
# fmt: off
_VOCABULARY = ("this", "is", "a", "simulated", "answer", "from", "the", "gatewarden", "gateway",
               "simulator", "which", "routed", "your", "request", "through", "its", "own",
               "deployments", "faults", "and", "limits")
# fmt: on


class Message(BaseModel):
    # extra="allow": tool_calls, tool_call_id, name... are part of the prompt (and its hash).
    model_config = ConfigDict(frozen=True, extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: StrictStr | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    include_usage: StrictBool = False


class ChatRequest(BaseModel):
    """A ``POST /v1/chat/completions`` body. Strict types: a gateway that coerced ``"yes"``
    into ``stream: true`` would hide client bugs the real one reports."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    model: StrictStr = Field(min_length=1, description="a model group (LiteLLM model_name)")
    messages: list[Message] = Field(min_length=1)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)
    n: StrictInt | None = Field(default=None, ge=1, le=1, description="only one choice")
    user: StrictStr | None = None
    metadata: dict[str, Any] | None = None
    litellm_session_id: StrictStr | None = None
    litellm_trace_id: StrictStr | None = None

    @field_validator("metadata")
    @classmethod
    def _ids_are_strings(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for name in ("session_id", "trace_id"):
            given = None if value is None else value.get(name)
            if given is not None and (not isinstance(given, str) or not given):
                raise ValueError(f"metadata.{name} must be a non-empty string")
        return value

    def _meta(self, name: str) -> str | None:
        value = (self.metadata or {}).get(name)
        return value if isinstance(value, str) else None

    @property
    def session_id(self) -> str | None:
        return self.litellm_session_id or self._meta("session_id")

    @property
    def trace_id(self) -> str | None:
        return self.litellm_trace_id or self._meta("trace_id")

    @property
    def output_cap(self) -> int | None:
        caps = [c for c in (self.max_tokens, self.max_completion_tokens) if c is not None]
        return min(caps) if caps else None

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def prompt_tokens(self) -> int:
        """OpenAI's rule of thumb: ~4 characters a token, 4 tokens of framing per message and
        3 to prime the reply. The simulator has no tokenizer, and needs none to be consistent."""
        total = 3
        for m in self.messages:
            total += 4
            if isinstance(m.content, str):
                total += math.ceil(len(m.content) / 4)
            elif m.content is not None:
                for part in m.content:
                    text = part.get("text")
                    total += math.ceil(len(text) / 4) if isinstance(text, str) else _IMAGE_TOKENS
        return total

    def prompt_hash(self) -> str:
        """16 hex chars like the generated records': equal prompts hash equal, which is what
        the repeated-prompt (agent loop) detectors look for."""
        canonical = json.dumps(
            [m.model_dump(mode="json") for m in self.messages],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# -- response bodies ---------------------------------------------------------------------------


def answer_words(tokens: int) -> list[str]:
    """The simulated answer: ``tokens`` words, so ``usage.completion_tokens`` matches it."""
    return [_VOCABULARY[i % len(_VOCABULARY)] for i in range(tokens)]


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def completion_body(
    *, call_id: str, created: int, model: str, words: Sequence[str], finish: str, prompt: int
) -> dict[str, Any]:
    return {
        "id": call_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": " ".join(words)},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": usage(prompt, len(words)),
    }


def stream_events(
    *,
    call_id: str,
    created: int,
    model: str,
    words: Sequence[str],
    finish: str,
    prompt: int,
    include_usage: bool,
) -> list[str]:
    """Server-Sent Events of ``chat.completion.chunk`` objects, ending with ``data: [DONE]``.
    The deltas' contents concatenate to exactly the non-streaming answer."""

    def chunk(delta: dict[str, Any], reason: str | None) -> dict[str, Any]:
        return {
            "id": call_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}],
        }

    chunks = [chunk({"role": "assistant", "content": ""}, None)]
    for i in range(0, len(words), _WORDS_PER_CHUNK):
        text = " ".join(words[i : i + _WORDS_PER_CHUNK])
        chunks.append(chunk({"content": text if i == 0 else " " + text}, None))
    chunks.append(chunk({}, finish))
    if include_usage:
        # OpenAI's stream_options.include_usage: one more chunk, no choices, the usage.
        last = chunk({}, None) | {"choices": [], "usage": usage(prompt, len(words))}
        chunks.append(last)
    events = [f"data: {json.dumps(c, separators=(',', ':'))}\n\n" for c in chunks]
    events.append("data: [DONE]\n\n")
    return events


def models_body(groups: Sequence[str]) -> dict[str, Any]:
    """``GET /v1/models`` as LiteLLM answers it: one entry per model group."""
    return {
        "object": "list",
        "data": [
            {"id": g, "object": "model", "created": MODELS_CREATED, "owned_by": "openai"}
            for g in groups
        ],
    }


def error_body(status: int, message: str, *, kind: str, param: str | None) -> dict[str, Any]:
    """OpenAI's error object; ``code`` is the HTTP status as a string, as LiteLLM sends it."""
    return {"error": {"message": message, "type": kind, "param": param, "code": str(status)}}
