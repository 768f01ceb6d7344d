"""A small Amazon Bedrock server for tests: Converse, ConverseStream and Retrieve.

Why our own: moto has no Bedrock runtime.  The test decides what the "model"
answers, one scripted reply per Converse/ConverseStream call.

Wire protocol: restJson1, as described by botocore's service models
(botocore/data/bedrock-runtime/2023-09-30/service-2.json.gz and
bedrock-agent-runtime/2023-07-26/service-2.json.gz):

    Converse        POST /model/{modelId}/converse                -> ConverseResponse (JSON)
    ConverseStream  POST /model/{modelId}/converse-stream         -> event stream (see below)
    Retrieve        POST /knowledgebases/{knowledgeBaseId}/retrieve -> {"retrievalResults": [...]}

`modelId` is percent-encoded in the path (an ARN's ':' and '/' arrive as %3A and
%2F); the server splits the raw path on '/' first and then decodes the segment.
Both services share one server: point AWS_ENDPOINT_URL_BEDROCK_RUNTIME and
AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME at `server.url`.

ConverseStream answers HTTP 200, `content-type: application/vnd.amazon.eventstream`,
`Transfer-Encoding: chunked`, one HTTP chunk per event-stream message, written
as soon as it is ready (`chunk_delay` seconds apart).  A message is

    prelude   total length (uint32 BE), headers length (uint32 BE), CRC32 of those 8 bytes
    headers   name length (uint8), name, value type (7 = string), value length (uint16 BE), value
    payload   JSON of the event member (e.g. ContentBlockDeltaEvent)
    trailer   CRC32 of every preceding byte of the message

with headers `:event-type` (the ConverseStreamOutput member: messageStart,
contentBlockStart, contentBlockDelta, contentBlockStop, messageStop, metadata),
`:content-type: application/json` and `:message-type: event`.  A mid-stream error is
a message with `:message-type: exception`, `:exception-type` = the member name
(throttlingException, modelStreamErrorException, validationException,
internalServerException, serviceUnavailableException) and payload {"message": ...};
botocore raises EventStreamError (a ClientError) with that member name as the
code; the Rust SDK yields ConverseStreamOutputError::<Variant>.  Like the real
service, every event payload carries a padding member "p" (random-length
letters) that clients must ignore; `padding=False` turns it off.

Checked by hand with the AWS SDK for Rust (aws-config 1.13.0, aws-sdk-bedrockruntime
1.153.0, aws-sdk-bedrockagentruntime 1.151.0, hyper over HTTP/1.1): deltas arrive
one by one as sent; text, tool-use and exception streams decode; a mid-stream
exception arrives as ConverseStreamOutputError::ThrottlingException (etc.) with
its message, but `ProvideErrorMetadata::code()` is None there (the SDK takes the
code of a stream exception from the payload, not from `:exception-type`), so
match on the variant; a ThrottlingException before the stream is retried by the
SDK's default retry policy; dropping the receiver closes the connection and the
server records `client_disconnected`.

Errors before any stream are sent the restJson1 way: HTTP status, the code in the
`x-amzn-ErrorType` header, and a body {"message": ...} (the model's error
structures have a lower-case `message`).  botocore reads the header first; the
AWS SDK for Rust reads the header, else body `code`/`__type`, and the message
from body `message`/`Message`.  Note on retries: both SDKs retry
ThrottlingException (a throttling code) and 500/503 (transient) by default, so
a test that injects one error against the kernel gets the scripted answer on
the retry; `fail_next(..., times=N)` to exhaust them.

Scripting (see BedrockServer): `server.enqueue(text("Hello"), tool_use("get_finding", {...}))`;
each Converse/ConverseStream call takes the next reply for its model id, else the
next reply for any model, else `server.responder(body)`, else it fails with
400 ValidationException "no scripted answer" so a test that forgot to script
fails loudly instead of hanging.

Standalone:  python -m tests.servers.bedrock --port 0 --echo
prints the URL as its first line and serves until killed (--echo answers every
call with the last user text; --kb ID=FILE.json loads passages).

The HTTP plumbing (threaded server, request recording, injected errors,
start/stop) is the shared `servers.http.LocalServer`.

Standard library only; binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import re
import string
import struct
import sys
import threading
import time
import traceback
import uuid
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Union
from urllib.parse import unquote, urlsplit

from .http import Handler, LocalServer, RecordedRequest as _RecordedRequest, ServiceError, parse_json, serve_until_signalled

__all__ = [
    "BedrockServer",
    "RecordedRequest",
    "Reply",
    "Script",
    "ServiceError",
    "text",
    "tool_use",
    "tool_block",
    "text_block",
    "message",
    "max_tokens",
    "error",
    "stream_exception",
    "access_denied",
    "model_not_ready",
    "use_case_not_submitted",
    "invalid_model_id",
    "on_demand_not_supported",
    "throttling",
    "validation",
    "service_unavailable",
    "internal_error",
    "encode_event_message",
    "decode_event_stream",
    "CONVERSE",
    "CONVERSE_STREAM",
    "RETRIEVE",
    "DEFAULT_MODEL_ID",
]

CONVERSE = "Converse"
CONVERSE_STREAM = "ConverseStream"
RETRIEVE = "Retrieve"
OPERATIONS = frozenset({CONVERSE, CONVERSE_STREAM, RETRIEVE})

DEFAULT_MODEL_ID = "global.anthropic.claude-sonnet-4-6"
EVENTSTREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"
NO_SCRIPT_MESSAGE = "no scripted answer: the test did not enqueue a reply for this call (BedrockServer.enqueue)"

# ConverseStreamOutput's error members (service model), lower camel case as on the wire,
# with the HTTP status of the same error structure.
STREAM_EXCEPTIONS = {
    "internalServerException": 500,
    "modelStreamErrorException": 424,
    "validationException": 400,
    "throttlingException": 429,
    "serviceUnavailableException": 503,
}
STOP_REASONS = frozenset({
    "end_turn", "tool_use", "max_tokens", "stop_sequence", "guardrail_intervened",
    "content_filtered", "malformed_model_output", "malformed_tool_use", "model_context_window_exceeded",
})
KB_ID_RE = re.compile(r"^[0-9a-zA-Z]{10}$")
KB_ARN_RE = re.compile(r"^arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:knowledge-base/([0-9a-zA-Z]{10})$")
DEFAULT_NUMBER_OF_RESULTS = 5  # documented default of vectorSearchConfiguration.numberOfResults
MAX_NUMBER_OF_RESULTS = 100  # model: KnowledgeBaseVectorSearchConfigurationNumberOfResultsInteger max


# --------------------------------------------------------------------------- errors


def access_denied(message: str = "You don't have access to the model with the specified model ID.") -> tuple[int, str, str]:
    """What Bedrock answers when model access has not been granted (or IAM denies
    bedrock:InvokeModel*): 403 AccessDeniedException."""
    return (403, "AccessDeniedException", message)


def model_not_ready(
    message: str = "Model is not ready to serve inference requests. The AWS SDK will automatically retry the operation.",
) -> tuple[int, str, str]:
    """429 ModelNotReadyException (model: retryable, but not a throttle)."""
    return (429, "ModelNotReadyException", message)


def use_case_not_submitted() -> tuple[int, str, str]:
    """What Bedrock answers for an Anthropic model before the account's use-case form
    is submitted: 404 ResourceNotFoundException."""
    return (
        404,
        "ResourceNotFoundException",
        "Model use case details have not been submitted for this account. "
        "Fill out the Anthropic use case details form before using the model.",
    )


def invalid_model_id() -> tuple[int, str, str]:
    """What Bedrock answers for a model id it does not know: 400 ValidationException."""
    return (400, "ValidationException", "The provided model identifier is invalid.")


def on_demand_not_supported(model_id: str = "anthropic.claude-sonnet-4-6") -> tuple[int, str, str]:
    """A base model id that is only served through an inference profile."""
    return (
        400,
        "ValidationException",
        f"Invocation of model ID {model_id} with on-demand throughput isn't supported. "
        "Retry your request with the ID or ARN of an inference profile that contains this model.",
    )


def throttling(message: str = "Too many requests, please wait before trying again.") -> tuple[int, str, str]:
    return (429, "ThrottlingException", message)


def validation(message: str) -> tuple[int, str, str]:
    return (400, "ValidationException", message)


def service_unavailable(message: str = "Bedrock is unable to process your request.") -> tuple[int, str, str]:
    return (503, "ServiceUnavailableException", message)


def internal_error(message: str = "The server encountered an internal error while processing the request.") -> tuple[int, str, str]:
    return (500, "InternalServerException", message)


# --------------------------------------------------------------------------- replies


@dataclass
class Reply:
    """What the "model" answers to one Converse/ConverseStream call.  Build with the
    helpers (text, tool_use, message, max_tokens, error, stream_exception)."""

    content: list[dict] = field(default_factory=list)  # Converse ContentBlocks: {"text"} / {"toolUse"}
    stop_reason: str = "end_turn"
    chunks: int = 3  # deltas per streamed block
    delay: float | None = None  # seconds between stream frames; None = server.chunk_delay
    error: ServiceError | None = None  # an HTTP error instead of an answer
    # (deltas sent before the exception frame, member name, message, extra members)
    stream_error: tuple[int, str, str, dict] | None = None
    usage: dict | None = None  # overrides the computed TokenUsage

    @property
    def text(self) -> str:
        """The concatenated text blocks."""
        return "".join(b["text"] for b in self.content if "text" in b)


ReplyLike = Union[Reply, str, Callable[[dict], Any]]


def text_block(s: str) -> dict:
    return {"text": s}


def tool_block(name: str, input: dict, tool_use_id: str | None = None) -> dict:  # noqa: A002 - model's name
    """A Converse toolUse content block."""
    return {"toolUse": {"toolUseId": tool_use_id or _tool_use_id(), "name": name, "input": copy.deepcopy(input)}}


def message(*blocks: dict, stop_reason: str | None = None, chunks: int = 3, delay: float | None = None) -> Reply:
    """A reply of several content blocks (text_block / tool_block / raw ContentBlock
    dicts).  The stop reason defaults to tool_use when a toolUse block is present."""
    for b in blocks:
        if not (isinstance(b, dict) and len(b) == 1 and ("text" in b or "toolUse" in b)):
            raise ValueError(f"message(): a block is {{'text': str}} or {{'toolUse': {{...}}}}; got {b!r}")
    if stop_reason is None:
        stop_reason = "tool_use" if any("toolUse" in b for b in blocks) else "end_turn"
    if stop_reason not in STOP_REASONS:
        raise ValueError(f"unknown stopReason {stop_reason!r}; expected one of {sorted(STOP_REASONS)}")
    return Reply(content=[copy.deepcopy(b) for b in blocks], stop_reason=stop_reason, chunks=max(1, chunks), delay=delay)


def text(s: str, chunks: int = 3, *, delay: float | None = None, stop_reason: str = "end_turn") -> Reply:
    """An assistant text answer, streamed in `chunks` pieces (split at word boundaries
    where possible; the pieces concatenate to exactly `s`)."""
    return message(text_block(s), stop_reason=stop_reason, chunks=chunks, delay=delay)


def tool_use(
    name: str,
    input: dict,  # noqa: A002 - the model's member name
    tool_use_id: str | None = None,
    text_before: str | None = None,
    *,
    chunks: int = 3,
    delay: float | None = None,
) -> Reply:
    """The model asks for one tool (stopReason tool_use).  Streamed, the input JSON is
    split across `chunks` deltas; `text_before` is a text block ahead of it."""
    blocks = ([text_block(text_before)] if text_before else []) + [tool_block(name, input, tool_use_id)]
    return message(*blocks, stop_reason="tool_use", chunks=chunks, delay=delay)


def max_tokens(s: str, chunks: int = 3, *, delay: float | None = None) -> Reply:
    """A text answer cut off by the token limit (stopReason max_tokens)."""
    return text(s, chunks, delay=delay, stop_reason="max_tokens")


def error(status: int, error_type: str, message: str) -> Reply:  # noqa: A001 - helper name from the brief
    """An HTTP error answered before any stream (e.g. error(*throttling()))."""
    return Reply(error=ServiceError(status, error_type, message))


def stream_exception(
    after_chunks: int,
    exception_type: str = "modelStreamErrorException",
    message: str = "The model encountered an error while streaming the response.",  # noqa: A002
    text: str = "The answer starts normally and then the stream breaks down before it is finished.",  # noqa: A002
    *,
    chunks: int | None = None,
    delay: float | None = None,
    original_status_code: int | None = None,
    original_message: str | None = None,
) -> Reply:
    """A stream that sends `after_chunks` text deltas of `text` (split in `chunks`
    pieces, default after_chunks + 2), then an exception frame, then ends.
    exception_type is a ConverseStreamOutput error member (throttlingException, ...);
    the error structure name (ThrottlingException) is accepted too.  Consumed by
    Converse (not streaming), it is answered as the same error over HTTP."""
    member = _exception_member(exception_type)
    extra: dict[str, Any] = {}
    if member == "modelStreamErrorException":
        if original_status_code is not None:
            extra["originalStatusCode"] = original_status_code
        if original_message is not None:
            extra["originalMessage"] = original_message
    n = chunks if chunks is not None else after_chunks + 2
    if after_chunks < 0 or n < after_chunks:
        raise ValueError("stream_exception: need 0 <= after_chunks <= chunks")
    return Reply(content=[text_block(text)], chunks=max(1, n), delay=delay,
                 stream_error=(after_chunks, member, message, extra))


def _exception_member(name: str) -> str:
    member = name[:1].lower() + name[1:]
    if member not in STREAM_EXCEPTIONS:
        raise ValueError(f"unknown ConverseStream exception {name!r}; expected one of {sorted(STREAM_EXCEPTIONS)}")
    return member


def _tool_use_id() -> str:
    return "tooluse_" + "".join(random.choices(string.ascii_letters + string.digits, k=22))


def _as_reply(value: Any) -> Reply:
    if isinstance(value, Reply):
        return value
    if isinstance(value, str):
        return text(value)
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[0], int):
        return error(*value)
    raise TypeError(f"a scripted reply must be a Reply (text(), tool_use(), ...) or a str; got {value!r}")


# --------------------------------------------------------------------------- scripts


class Script:
    """A FIFO of replies for one model id (None = any model).  Thread-safe."""

    def __init__(self, model_id: str | None, lock: threading.RLock):
        self.model_id = model_id
        self._lock = lock
        self._items: deque = deque()

    def put(self, *replies: ReplyLike) -> "Script":
        """Append replies (Reply, str, or a one-shot callable body -> Reply)."""
        with self._lock:
            for r in replies:
                self._items.append(r if callable(r) and not isinstance(r, Reply) else _as_reply(r))
        return self

    append = put

    def extend(self, replies: Iterable[ReplyLike]) -> "Script":
        return self.put(*replies)

    def pop(self) -> Any:
        with self._lock:
            return self._items.popleft() if self._items else None

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    @property
    def pending(self) -> list:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __bool__(self) -> bool:
        return True  # a script object is truthy even when empty


# --------------------------------------------------------------------------- recording


@dataclass
class RecordedRequest(_RecordedRequest):
    """One Bedrock request as the server received it, and how it was answered."""

    model_id: str | None = None  # decoded from the path (Converse / ConverseStream)
    knowledge_base_id: str | None = None  # decoded from the path (Retrieve)
    reply: Reply | None = None  # the scripted reply used
    events_sent: list[str] = field(default_factory=list)  # stream: :event-type / :exception-type sent, in order
    stream_complete: bool = False  # stream: every frame was written
    client_disconnected: bool = False  # stream: the client went away before the end
    # stream, for latency benchmarks (perf_counter() readings compare only within this
    # process): (event name as in events_sent, time.perf_counter() just after that
    # frame was written and flushed to the socket), in order ...
    event_times: list[tuple[str, float]] = field(default_factory=list)
    # ... and, index for index, time.perf_counter() just before the frame's write call
    # (the receiver can have the bytes before the writing thread runs again).
    event_write_started: list[float] = field(default_factory=list)

    @property
    def messages(self) -> list[dict]:
        return (self.body.get("messages") or []) if isinstance(self.body, dict) else []

    @property
    def system(self) -> list[dict]:
        return (self.body.get("system") or []) if isinstance(self.body, dict) else []

    @property
    def system_text(self) -> str:
        """The system prompt's text blocks, joined with newlines."""
        return "\n".join(b["text"] for b in self.system if isinstance(b, dict) and isinstance(b.get("text"), str))

    @property
    def tool_config(self) -> dict | None:
        return self.body.get("toolConfig") if isinstance(self.body, dict) else None

    @property
    def tool_names(self) -> list[str]:
        tools = (self.tool_config or {}).get("tools") or []
        return [t["toolSpec"]["name"] for t in tools if isinstance(t, dict) and "toolSpec" in t]

    @property
    def inference_config(self) -> dict | None:
        return self.body.get("inferenceConfig") if isinstance(self.body, dict) else None

    @property
    def last_user_text(self) -> str:
        """Text blocks of the last user message (tool results not included)."""
        for m in reversed(self.messages):
            if isinstance(m, dict) and m.get("role") == "user":
                return "".join(b["text"] for b in m.get("content") or [] if isinstance(b, dict) and isinstance(b.get("text"), str))
        return ""

    @property
    def tool_results(self) -> list[dict]:
        """toolResult blocks of the last user message."""
        for m in reversed(self.messages):
            if isinstance(m, dict) and m.get("role") == "user":
                return [b["toolResult"] for b in m.get("content") or [] if isinstance(b, dict) and "toolResult" in b]
        return []

    @property
    def retrieval_text(self) -> str | None:
        if isinstance(self.body, dict):
            return ((self.body.get("retrievalQuery") or {}).get("text"))
        return None


# --------------------------------------------------------------------------- event stream framing

_STRING_TYPE = 7


def encode_event_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message with string headers (CRC32 = zlib.crc32)."""
    hbytes = bytearray()
    for name, value in headers.items():
        n, v = name.encode("utf-8"), value.encode("utf-8")
        if len(n) > 255 or len(v) > 0xFFFF:
            raise ValueError("event-stream header too long")
        hbytes += struct.pack(">B", len(n)) + n + struct.pack(">BH", _STRING_TYPE, len(v)) + v
    total = 12 + len(hbytes) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hbytes))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + bytes(hbytes) + payload
    return body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def decode_event_stream(data: bytes) -> Iterator[tuple[dict[str, Any], bytes]]:
    """Decode concatenated event-stream messages (string/bool/int headers), checking
    both CRCs.  For tests that read the raw body."""
    pos = 0
    while pos < len(data):
        total, hlen = struct.unpack_from(">II", data, pos)
        (pcrc,) = struct.unpack_from(">I", data, pos + 8)
        if zlib.crc32(data[pos:pos + 8]) & 0xFFFFFFFF != pcrc:
            raise ValueError("prelude CRC mismatch")
        (mcrc,) = struct.unpack_from(">I", data, pos + total - 4)
        if zlib.crc32(data[pos:pos + total - 4]) & 0xFFFFFFFF != mcrc:
            raise ValueError("message CRC mismatch")
        headers: dict[str, Any] = {}
        h, hend = pos + 12, pos + 12 + hlen
        while h < hend:
            nlen = data[h]
            name = data[h + 1:h + 1 + nlen].decode()
            h += 1 + nlen
            kind = data[h]
            h += 1
            if kind in (0, 1):
                headers[name] = kind == 0
            elif kind in (6, 7):
                (vlen,) = struct.unpack_from(">H", data, h)
                raw = data[h + 2:h + 2 + vlen]
                headers[name] = raw.decode() if kind == 7 else raw
                h += 2 + vlen
            else:
                size = {2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}[kind]
                headers[name] = data[h:h + size]
                h += size
        yield headers, data[hend:pos + total - 4]
        pos += total


def _split_text(s: str, n: int) -> list[str]:
    """`s` in at most n non-empty pieces, cut at word boundaries when there are enough
    words; "".join(result) == s."""
    if n <= 1 or len(s) <= 1:
        return [s]
    words = re.findall(r"\s*\S+\s*|\s+", s)
    # words cover s exactly: leading whitespace of the first piece, trailing of the rest
    if len(words) >= n:
        out, start = [], 0
        for i in range(1, n + 1):
            end = round(i * len(words) / n)
            out.append("".join(words[start:end]))
            start = end
        return [p for p in out if p]
    n = min(n, len(s))
    cuts = [round(i * len(s) / n) for i in range(n + 1)]
    return [s[cuts[i]:cuts[i + 1]] for i in range(n) if cuts[i + 1] > cuts[i]]


def _split_even(s: str, n: int) -> list[str]:
    n = max(1, min(n, len(s)))
    cuts = [round(i * len(s) / n) for i in range(n + 1)]
    return [s[cuts[i]:cuts[i + 1]] for i in range(n)] or [""]


def _words(value: Any) -> int:
    """Rough token count: words in every string inside `value`."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, dict):
        return sum(_words(v) for v in value.values())
    if isinstance(value, list):
        return sum(_words(v) for v in value)
    return 0


_PAD_CHARS = string.ascii_letters + string.digits


# --------------------------------------------------------------------------- request checks


def _validate_converse(body: dict) -> None:
    """Checks the real service makes before the model runs (messages as Bedrock states them)."""
    messages = body.get("messages")
    if messages is None:
        return
    if not isinstance(messages, list):
        raise ServiceError(*validation("messages must be a list"))
    if messages and not (isinstance(messages[0], dict) and messages[0].get("role") == "user"):
        raise ServiceError(*validation("A conversation must start with a user message. Try again with a conversation that starts with a user message."))
    uses_tools = False
    pending: list[str] = []  # toolUse ids of the previous assistant message
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise ServiceError(*validation(f"messages.{i}.role must be user or assistant"))
        content = m.get("content")
        if not isinstance(content, list) or not content:
            raise ServiceError(*validation(f"messages.{i}.content must be a non-empty list of content blocks"))
        if i and messages[i - 1].get("role") == m["role"]:
            raise ServiceError(*validation(
                "A conversation must alternate between user and assistant roles. "
                "Make sure the conversation alternates between user and assistant roles and try again."))
        uses = [b["toolUse"].get("toolUseId") for b in content if isinstance(b, dict) and isinstance(b.get("toolUse"), dict)]
        results = [b["toolResult"].get("toolUseId") for b in content if isinstance(b, dict) and isinstance(b.get("toolResult"), dict)]
        uses_tools = uses_tools or bool(uses or results)
        if m["role"] == "user":
            if len(results) > len(pending):
                raise ServiceError(*validation(
                    f"The number of toolResult blocks at messages.{i}.content exceeds the number of toolUse blocks of previous turn."))
            missing = [t for t in pending if t not in results]
            if missing:
                raise ServiceError(*validation(
                    f"Expected toolResult blocks at messages.{i}.content for the following Ids: {', '.join(missing)}"))
            pending = []
        else:
            if results:
                raise ServiceError(*validation(f"messages.{i}: toolResult blocks are only allowed in user messages"))
            pending = [t for t in uses if t]
    if uses_tools and not body.get("toolConfig"):
        raise ServiceError(*validation(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."))
    tool_config = body.get("toolConfig")
    if tool_config is not None:
        tools = tool_config.get("tools") if isinstance(tool_config, dict) else None
        if not isinstance(tools, list) or not tools:
            raise ServiceError(*validation("toolConfig.tools must contain at least one tool"))


# --------------------------------------------------------------------------- the server


class BedrockServer(LocalServer):
    """Scripted Bedrock runtime + agent runtime (Retrieve) on 127.0.0.1.

    BedrockServer(*, port=0, chunk_delay=0.02, latency=0.0, padding=True, strict=True)

    port         0 = a free port
    chunk_delay  seconds between event-stream frames (a Reply's `delay` overrides it)
    latency      seconds before any answer starts (time to first byte)
    padding      add the real service's "p" padding member to event payloads
    strict       reject message lists the real service rejects (roles not alternating,
                 toolUse without toolResult, tool blocks without toolConfig)

    Attributes: url, port, requests (RecordedRequest list), counts (operation -> calls),
    responder (callable body -> reply, or None), chunk_delay, latency.
    """

    name = "bedrock"
    server_version = "BedrockTestServer/1.0"
    OPERATIONS = OPERATIONS

    def __init__(
        self,
        *,
        port: int = 0,
        chunk_delay: float = 0.02,
        latency: float = 0.0,
        padding: bool = True,
        strict: bool = True,
    ):
        super().__init__(port=port, latency=latency)
        self.chunk_delay = chunk_delay
        self.padding = padding
        self.strict = strict
        self.responder: Callable[[dict], Any] | None = None
        self._scripts: dict[str | None, Script] = {None: Script(None, self._lock)}
        self._model_errors: dict[str, tuple[int, str, str]] = {}
        self._kbs: dict[str, list[dict]] = {}

    # ---- lifecycle

    def env(self) -> dict[str, str]:
        """Environment variables that point the AWS SDKs at this server."""
        return {
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.url,
            "AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME": self.url,
        }

    # ---- scripting

    def script(self, model_id: str | None = None) -> Script:
        """The reply queue for `model_id` (None: replies for any model)."""
        with self._lock:
            if model_id not in self._scripts:
                self._scripts[model_id] = Script(model_id, self._lock)
            return self._scripts[model_id]

    def enqueue(self, *replies: ReplyLike, model_id: str | None = None) -> Script:
        """Append replies, consumed one per Converse/ConverseStream call, in order."""
        return self.script(model_id).put(*replies)

    @property
    def pending(self) -> int:
        """Scripted replies not consumed yet (all models)."""
        with self._lock:
            return sum(len(s) for s in self._scripts.values())

    def clear_script(self) -> None:
        with self._lock:
            for s in self._scripts.values():
                s.clear()

    def deny_model(self, model_id: str, status_type_message: tuple[int, str, str] | None = None) -> None:
        """Every call for this model id fails (default: access_denied()) until allow_model."""
        with self._lock:
            self._model_errors[model_id] = status_type_message or access_denied()

    def allow_model(self, model_id: str) -> None:
        with self._lock:
            self._model_errors.pop(model_id, None)

    # ---- knowledge bases

    def add_knowledge_base(self, kb_id: str, passages: Iterable[Any] = ()) -> None:
        """Add (or extend) a knowledge base.  A passage is (text, uri[, metadata]),
        {"text", "uri", "metadata"}, or a plain text.  kb_id must be 10 letters/digits,
        as the real service requires (e.g. "KB12345678")."""
        if not KB_ID_RE.match(kb_id):
            raise ValueError(f"knowledge base id {kb_id!r}: Bedrock ids are 10 letters/digits, e.g. 'KB12345678'")
        with self._lock:
            store = self._kbs.setdefault(kb_id, [])
            for p in passages:
                if isinstance(p, str):
                    p = (p, f"s3://runbook-kb/{kb_id}/doc-{len(store)}.md")
                if isinstance(p, dict):
                    t, uri, meta = p["text"], p.get("uri") or f"s3://runbook-kb/{kb_id}/doc-{len(store)}.md", p.get("metadata")
                else:
                    t, uri, meta = (tuple(p) + (None,))[:3]
                store.append({"text": t, "uri": uri, "metadata": dict(meta or {}), "n": len(store)})

    def remove_knowledge_base(self, kb_id: str) -> None:
        with self._lock:
            self._kbs.pop(kb_id, None)

    # ---- inspection

    def requests_for(self, operation: str | None = None, model_id: str | None = None) -> list[RecordedRequest]:
        ops = {CONVERSE, CONVERSE_STREAM} if operation is None else {operation}
        return [r for r in list(self.requests)
                if r.operation in ops and (model_id is None or r.model_id == model_id)]

    @property
    def last(self) -> RecordedRequest | None:
        """The last Converse/ConverseStream request."""
        reqs = self.requests_for()
        return reqs[-1] if reqs else None

    # ---- request handling (called from handler threads)

    def _route(self, method: str, raw_path: str) -> tuple[str | None, str | None, str | None]:
        """(operation, model_id, knowledge_base_id) of a request line."""
        segs = urlsplit(raw_path).path.split("/")
        if method != "POST":
            return None, None, None
        if len(segs) == 4 and segs[0] == "" and segs[1] == "model" and segs[2]:
            op = {"converse": CONVERSE, "converse-stream": CONVERSE_STREAM}.get(segs[3])
            if op:
                return op, unquote(segs[2]), None
        if len(segs) == 4 and segs[0] == "" and segs[1] == "knowledgebases" and segs[2] and segs[3] == "retrieve":
            return RETRIEVE, None, unquote(segs[2])
        return None, None, None

    def _next_reply(self, model_id: str, body: dict) -> Reply:
        with self._lock:
            item = None
            for key in (model_id, None):
                s = self._scripts.get(key)
                if s is not None and len(s):
                    item = s.pop()
                    break
            responder = self.responder
        if item is None and responder is not None:
            item = responder
        if item is None:
            raise ServiceError(*validation(NO_SCRIPT_MESSAGE))
        if callable(item) and not isinstance(item, Reply):
            item = item(copy.deepcopy(body))
            if item is None:
                raise ServiceError(*validation(NO_SCRIPT_MESSAGE + " (the responder returned None)"))
        return _as_reply(item)

    def prepare(self, method: str, raw_path: str, headers: dict[str, str], raw: bytes) -> tuple[RecordedRequest, Any]:
        """Record the request and decide the answer: (record, ServiceError | dict | Reply)."""
        operation, model_id, kb_id = self._route(method, raw_path)
        body, bad_json = parse_json(raw)
        rec = RecordedRequest(method, raw_path, headers, body, raw, operation, model_id=model_id, knowledge_base_id=kb_id)
        self.record(rec)
        try:
            if operation is None:
                raise ServiceError(404, "UnknownOperationException", f"No Bedrock operation at {method} {urlsplit(raw_path).path}")
            with self._lock:
                model_error = self._model_errors.get(model_id) if model_id else None
            self.take_fault(operation)
            if bad_json:
                raise ServiceError(*validation("The request body is not valid JSON"))
            if body is None:
                body = {}
            if not isinstance(body, dict):
                raise ServiceError(*validation("The request body must be a JSON object"))
            if operation == RETRIEVE:
                return rec, self._retrieve(kb_id or "", body)
            if model_error is not None:
                raise ServiceError(*model_error)
            if self.strict:
                _validate_converse(body)
            reply = self._next_reply(model_id or "", body)
            rec.reply = reply
            if reply.error is not None:
                raise reply.error
            if operation == CONVERSE and reply.stream_error is not None:
                _, member, msg, extra = reply.stream_error
                raise ServiceError(STREAM_EXCEPTIONS[member], member[:1].upper() + member[1:], msg, extra)
            if operation == CONVERSE:
                return rec, self._converse_response(body, reply)
            return rec, reply
        except ServiceError as e:
            return rec, e
        except Exception as e:  # noqa: BLE001 - a bug here must reach the test as a 500, not a hang
            traceback.print_exc()
            return rec, ServiceError(500, "InternalServerException", f"test server bug: {e!r}")

    def _usage(self, body: dict, reply: Reply) -> dict:
        if reply.usage is not None:
            return dict(reply.usage)
        messages = body.get("messages") if isinstance(body.get("messages"), list) else []
        inp = _words(body.get("system")) + sum(_words(m.get("content")) for m in messages if isinstance(m, dict))
        out = sum(_words(b["text"]) if "text" in b else _words(json.dumps(b["toolUse"]["input"]))
                  for b in reply.content)
        return {"inputTokens": inp, "outputTokens": out, "totalTokens": inp + out}

    def _converse_response(self, body: dict, reply: Reply) -> dict:
        return {
            "output": {"message": {"role": "assistant", "content": copy.deepcopy(reply.content)}},
            "stopReason": reply.stop_reason,
            "usage": self._usage(body, reply),
            "metrics": {"latencyMs": int(self.latency * 1000) + 1},
        }

    # ---- Retrieve

    def _retrieve(self, kb_ref: str, body: dict) -> dict:
        m = KB_ARN_RE.match(kb_ref)
        kb_id = m.group(2) if m else kb_ref
        if not KB_ID_RE.match(kb_id):
            raise ServiceError(*validation(
                f"1 validation error detected: Value '{kb_ref}' at 'knowledgeBaseId' failed to satisfy constraint: "
                "Member must satisfy regular expression pattern: [0-9a-zA-Z]{10}"))
        query = body.get("retrievalQuery")
        qtext = query.get("text") if isinstance(query, dict) else None
        if not isinstance(qtext, str) or not qtext.strip():
            raise ServiceError(*validation("retrievalQuery.text is required"))
        conf = ((body.get("retrievalConfiguration") or {}).get("vectorSearchConfiguration") or {})
        n = conf.get("numberOfResults", DEFAULT_NUMBER_OF_RESULTS)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_NUMBER_OF_RESULTS:
            raise ServiceError(*validation(
                f"1 validation error detected: Value '{n}' at 'retrievalConfiguration.vectorSearchConfiguration.numberOfResults' "
                f"failed to satisfy constraint: Member must have value between 1 and {MAX_NUMBER_OF_RESULTS}"))
        with self._lock:
            passages = copy.deepcopy(self._kbs.get(kb_id))
        if passages is None:
            raise ServiceError(404, "ResourceNotFoundException", f"Knowledge base {kb_id} does not exist.")
        q = set(_terms(qtext))
        scored = []
        for p in passages:
            words = set(_terms(p["text"]))
            overlap = len(q & words)
            # Share of the query's words found in the passage, mapped into the 0.3..0.95
            # band real relevance scores occupy; ties keep insertion order.
            score = round(0.3 + 0.65 * overlap / max(1, len(q)), 4)
            scored.append((score, overlap, -p["n"], p))
        scored.sort(key=lambda t: (t[1], t[2]), reverse=True)
        results = []
        for score, _, _, p in scored[:n]:
            uri = p["uri"]
            if uri.startswith(("http://", "https://")):
                location = {"type": "WEB", "webLocation": {"url": uri}}
            else:
                location = {"type": "S3", "s3Location": {"uri": uri}}
            meta = {
                "x-amz-bedrock-kb-source-uri": uri,
                "x-amz-bedrock-kb-chunk-id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{kb_id}/{p['n']}")),
                "x-amz-bedrock-kb-data-source-id": "DS" + kb_id[2:],
                **p["metadata"],
            }
            results.append({"content": {"text": p["text"], "type": "TEXT"}, "location": location,
                            "score": score, "metadata": meta})
        return {"retrievalResults": results}

    # ---- streaming

    def _frame(self, event_type: str, payload: dict, *, exception: bool = False) -> bytes:
        if self.padding:
            payload = {**payload, "p": "".join(random.choices(_PAD_CHARS, k=random.randint(1, 24)))}
        headers = (
            {":exception-type": event_type, ":content-type": "application/json", ":message-type": "exception"}
            if exception else
            {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
        )
        return encode_event_message(headers, json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())

    def stream_frames(self, body: dict, reply: Reply) -> Iterator[tuple[str, bytes]]:
        """(event name, message bytes) for a ConverseStream reply, in order."""
        started = time.monotonic()
        yield "messageStart", self._frame("messageStart", {"role": "assistant"})
        budget = reply.stream_error[0] if reply.stream_error else None
        sent = 0
        for i, block in enumerate(reply.content):
            if "toolUse" in block:
                tu = block["toolUse"]
                yield "contentBlockStart", self._frame(
                    "contentBlockStart",
                    {"contentBlockIndex": i, "start": {"toolUse": {"toolUseId": tu["toolUseId"], "name": tu["name"]}}},
                )
                for piece in _split_even(json.dumps(tu["input"], separators=(",", ":")), reply.chunks):
                    yield "contentBlockDelta", self._frame(
                        "contentBlockDelta", {"contentBlockIndex": i, "delta": {"toolUse": {"input": piece}}})
            else:
                for piece in _split_text(block["text"], reply.chunks):
                    if budget is not None and sent >= budget:
                        break
                    yield "contentBlockDelta", self._frame(
                        "contentBlockDelta", {"contentBlockIndex": i, "delta": {"text": piece}})
                    sent += 1
            if budget is not None and sent >= budget:
                break
            yield "contentBlockStop", self._frame("contentBlockStop", {"contentBlockIndex": i})
        if reply.stream_error is not None:
            _, member, msg, extra = reply.stream_error
            yield member, self._frame(member, {"message": msg, **extra}, exception=True)
            return
        yield "messageStop", self._frame("messageStop", {"stopReason": reply.stop_reason})
        latency_ms = int((time.monotonic() - started) * 1000) + int(self.latency * 1000) + 1
        yield "metadata", self._frame("metadata", {"usage": self._usage(body, reply), "metrics": {"latencyMs": latency_ms}})

    # ---- HTTP

    def serve(self, handler: Handler, method: str, raw_path: str, headers: dict[str, str], raw: bytes) -> None:
        rec, answer = self.prepare(method, raw_path, headers, raw)
        if self.latency and not self.wait(self.latency):
            handler.close_connection = True
            return
        try:
            if isinstance(answer, ServiceError):
                rec.status, rec.error_type = answer.status, answer.error_type
                handler.send_json(answer.status, {"message": answer.message, **answer.extra},
                                  {"x-amzn-ErrorType": answer.error_type})
            elif isinstance(answer, Reply):
                rec.status = 200
                self._stream(handler, rec, answer)
            else:
                rec.status = 200
                handler.send_json(200, answer, {})
        except (BrokenPipeError, ConnectionResetError):
            rec.client_disconnected = True
            handler.close_connection = True

    def _stream(self, handler: Handler, rec: RecordedRequest, reply: Reply) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", EVENTSTREAM_CONTENT_TYPE)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        handler.end_headers()
        delay = self.chunk_delay if reply.delay is None else reply.delay
        first = True
        for name, frame in self.stream_frames(rec.body or {}, reply):
            if not first and not self.wait(delay):
                handler.close_connection = True  # server stopping: cut the stream
                return
            first = False
            data = b"%X\r\n%s\r\n" % (len(frame), frame)
            # Recorded before the write: a fast client can have the frame, and act on
            # it, before this thread runs again.
            rec.events_sent.append(name)
            rec.event_write_started.append(time.perf_counter())
            handler.wfile.write(data)
            handler.wfile.flush()  # a no-op while wfile is unbuffered (wbufsize 0); explicit for the timestamp
            rec.event_times.append((name, time.perf_counter()))
        # Set before the last write, for the same reason as events_sent above.
        rec.stream_complete = True
        handler.wfile.write(b"0\r\n\r\n")


# --------------------------------------------------------------------------- Retrieve


def _terms(s: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", s.lower())


# --------------------------------------------------------------------------- standalone


def _echo(body: dict) -> Reply:
    for m in reversed(body.get("messages") or []):
        if m.get("role") == "user":
            said = " ".join(b["text"] for b in m.get("content") or [] if isinstance(b, dict) and "text" in b)
            return text(f"You said: {said}" if said else "Tool results received.", chunks=5)
    return text("Hello.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Local Bedrock test server (127.0.0.1 only).")
    p.add_argument("--port", type=int, default=0, help="port to bind on 127.0.0.1 (0 = a free port)")
    p.add_argument("--chunk-delay", type=float, default=0.05, help="seconds between stream frames")
    p.add_argument("--echo", action="store_true", help="answer every call by echoing the last user text")
    p.add_argument("--kb", action="append", default=[], metavar="ID=FILE",
                   help="knowledge base from a JSON file: a list of {text, uri, metadata}")
    args = p.parse_args(argv)
    server = BedrockServer(port=args.port, chunk_delay=args.chunk_delay)
    if args.echo:
        server.responder = _echo
    for spec in args.kb:
        kb_id, _, path = spec.partition("=")
        with open(path, encoding="utf-8") as fh:
            server.add_knowledge_base(kb_id, json.load(fh))
    return serve_until_signalled(server)


if __name__ == "__main__":
    sys.exit(main())
