"""Tests of the local Bedrock server itself, driven by boto3 (a real client of the same APIs).

boto3 decodes ConverseStream with botocore's event-stream parser, which checks both
CRCs and the headers of every frame, so a stream that boto3 reads is well framed.
(The AWS SDK for Rust was checked against the same server by hand; see the
module docstring of servers/bedrock.py.)
"""

from __future__ import annotations

import json
import socket
import threading
import time

import boto3
import pytest
from botocore.config import Config
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError

try:  # tests/ is on sys.path when pytest imports this file (no tests/__init__.py)
    from servers import bedrock as bd
    from servers.bedrock import BedrockServer, error, max_tokens, message, stream_exception, text, tool_block, tool_use
    from servers.http import standalone, unsigned_request
except ImportError:  # run from the repository root as a package
    from tests.servers import bedrock as bd  # type: ignore[no-redef]
    from tests.servers.http import standalone, unsigned_request  # type: ignore[no-redef]
    from tests.servers.bedrock import (  # type: ignore[no-redef]
        BedrockServer, error, max_tokens, message, stream_exception, text, tool_block, tool_use,
    )

MODEL = "global.anthropic.claude-sonnet-4-6"
PROFILE_ARN = f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/{MODEL}"
KB = "KB12345678"
SESSION = boto3.session.Session()  # clients from one session share the loaded service models
TOOLS = {"tools": [{"toolSpec": {
    "name": "get_finding",
    "description": "Fetch one Security Hub finding",
    "inputSchema": {"json": {"type": "object", "properties": {"id": {"type": "string"}}}},
}}]}


def client(server: BedrockServer, service: str = "bedrock-runtime"):
    return SESSION.client(
        service,
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=10),
    )


@pytest.fixture
def server():
    with BedrockServer(chunk_delay=0.0) as s:
        yield s


@pytest.fixture
def br(server):
    return client(server)


@pytest.fixture
def agent(server):
    return client(server, "bedrock-agent-runtime")


def user(s: str) -> dict:
    return {"role": "user", "content": [{"text": s}]}


def events(response) -> list[dict]:
    return list(response["stream"])


def streamed_text(evs: list[dict]) -> str:
    return "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in evs if "contentBlockDelta" in e)


def names(evs: list[dict]) -> list[str]:
    return [next(iter(e)) for e in evs]


raw = unsigned_request  # (status, lower-case headers, body bytes)


# ------------------------------------------------------------------ lifecycle, recording


def test_binds_loopback_on_a_free_port_and_stops():
    with BedrockServer() as a, BedrockServer() as b:
        assert a.url.startswith("http://127.0.0.1:") and a.port != b.port
        assert a.env() == {"AWS_ENDPOINT_URL_BEDROCK_RUNTIME": a.url, "AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME": a.url}
        c = client(a)
        a.enqueue("hi")
        c.converse(modelId=MODEL, messages=[user("hello")])
    with pytest.raises(Exception):
        c.converse(modelId=MODEL, messages=[user("hello")])
    with pytest.raises(RuntimeError):
        a.url  # noqa: B018 - not started


def test_records_system_messages_tool_config_and_model_id(server, br):
    server.enqueue(text("ok"))
    br.converse_stream(
        modelId=PROFILE_ARN,
        system=[{"text": "You are the runbook assistant."}, {"text": "Answer in English."}],
        messages=[user("Why is sg-1 open?")],
        toolConfig=TOOLS,
        inferenceConfig={"maxTokens": 512, "temperature": 0.2},
    )["stream"].close()
    (req,) = server.requests
    assert (req.method, req.operation, req.model_id) == ("POST", "ConverseStream", PROFILE_ARN)
    assert req.path == "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F" + MODEL + "/converse-stream"
    assert req.system_text == "You are the runbook assistant.\nAnswer in English."
    assert req.messages == [user("Why is sg-1 open?")] and req.last_user_text == "Why is sg-1 open?"
    assert req.tool_config == TOOLS and req.tool_names == ["get_finding"]
    assert req.inference_config == {"maxTokens": 512, "temperature": 0.2}
    assert "/us-east-1/bedrock/aws4_request" in req.headers["authorization"]
    assert req.reply.text == "ok" and req.status == 200
    assert server.counts == {"ConverseStream": 1} and server.last is req and server.pending == 0


def test_unknown_route_is_404(server):
    status, headers, body = raw(server, "GET", "/model/x/converse")
    assert status == 404 and headers["x-amzn-errortype"] == "UnknownOperationException"
    assert "message" in json.loads(body)


# ------------------------------------------------------------------ Converse


def test_converse_text_answer_and_usage(server, br):
    server.enqueue(text("Restrict port 22 to the bastion host."))
    r = br.converse(modelId=MODEL, system=[{"text": "Be brief."}], messages=[user("What should I do about sg-1?")])
    assert r["output"] == {"message": {"role": "assistant", "content": [{"text": "Restrict port 22 to the bastion host."}]}}
    assert r["stopReason"] == "end_turn"
    # inputTokens: words of system + message content (2 + 6); outputTokens: words of the answer
    assert r["usage"] == {"inputTokens": 8, "outputTokens": 7, "totalTokens": 15}
    assert r["metrics"]["latencyMs"] >= 0


def test_converse_tool_use_and_max_tokens(server, br):
    server.enqueue(tool_use("get_finding", {"id": "f-1"}, tool_use_id="tooluse_abc", text_before="Looking."),
                   max_tokens("This answer was cut"))
    r = br.converse(modelId=MODEL, messages=[user("check f-1")], toolConfig=TOOLS)
    assert r["stopReason"] == "tool_use"
    assert r["output"]["message"]["content"] == [
        {"text": "Looking."}, {"toolUse": {"toolUseId": "tooluse_abc", "name": "get_finding", "input": {"id": "f-1"}}}]
    r = br.converse(modelId=MODEL, messages=[user("go on")])
    assert r["stopReason"] == "max_tokens" and r["output"]["message"]["content"] == [{"text": "This answer was cut"}]


# ------------------------------------------------------------------ ConverseStream


def test_stream_text_in_several_deltas(server, br):
    answer = "Security group sg-0abc allows SSH (22) from 0.0.0.0/0; restrict it to the VPN range."
    server.enqueue(text(answer, chunks=6))
    evs = events(br.converse_stream(modelId=MODEL, messages=[user("explain the finding please")]))
    assert names(evs) == ["messageStart"] + ["contentBlockDelta"] * 6 + ["contentBlockStop", "messageStop", "metadata"]
    assert evs[0]["messageStart"] == {"role": "assistant"}
    assert streamed_text(evs) == answer
    assert all(e["contentBlockDelta"]["contentBlockIndex"] == 0 for e in evs if "contentBlockDelta" in e)
    assert evs[-2]["messageStop"] == {"stopReason": "end_turn"}
    assert evs[-1]["metadata"]["usage"] == {"inputTokens": 4, "outputTokens": 14, "totalTokens": 18}
    assert "latencyMs" in evs[-1]["metadata"]["metrics"]
    assert server.requests[0].stream_complete and server.requests[0].events_sent == names(evs)


def test_stream_frames_arrive_one_by_one(server, br):
    server.chunk_delay = 0.1
    server.enqueue(text("one two three four five", chunks=5))
    stamps = []
    for e in br.converse_stream(modelId=MODEL, messages=[user("count")])["stream"]:
        if "contentBlockDelta" in e:
            stamps.append(time.monotonic())
    assert len(stamps) == 5
    # each delta is readable as soon as it is sent, not all at the end
    assert stamps[-1] - stamps[0] > 0.3


def test_stream_tool_use_input_reassembles(server, br):
    args = {"id": "arn:aws:securityhub:us-east-1:123456789012:finding/x", "fields": ["Severity", "Resources"], "n": 3}
    server.enqueue(tool_use("get_finding", args, text_before="Let me look that up.", chunks=4))
    evs = events(br.converse_stream(modelId=MODEL, messages=[user("check it")], toolConfig=TOOLS))
    assert names(evs) == (["messageStart"] + ["contentBlockDelta"] * 4 + ["contentBlockStop", "contentBlockStart"]
                          + ["contentBlockDelta"] * 4 + ["contentBlockStop", "messageStop", "metadata"])
    assert streamed_text(evs) == "Let me look that up."
    start = next(e["contentBlockStart"] for e in evs if "contentBlockStart" in e)
    assert start["contentBlockIndex"] == 1 and start["start"]["toolUse"]["name"] == "get_finding"
    assert start["start"]["toolUse"]["toolUseId"].startswith("tooluse_")
    pieces = [e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in evs
              if "contentBlockDelta" in e and "toolUse" in e["contentBlockDelta"]["delta"]]
    assert len(pieces) == 4 and all(pieces)
    assert json.loads("".join(pieces)) == args
    assert evs[-2]["messageStop"] == {"stopReason": "tool_use"}


def test_full_tool_round_trip_is_accepted(server, br):
    server.enqueue(tool_use("get_finding", {"id": "f-1"}, tool_use_id="tooluse_1"), text("It is HIGH severity."))
    r = br.converse(modelId=MODEL, messages=[user("check f-1")], toolConfig=TOOLS)
    history = [user("check f-1"), r["output"]["message"],
               {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_1", "content": [{"json": {"sev": "HIGH"}}]}}]}]
    evs = events(br.converse_stream(modelId=MODEL, messages=history, toolConfig=TOOLS))
    assert streamed_text(evs) == "It is HIGH severity."
    assert server.last.tool_results == [{"toolUseId": "tooluse_1", "content": [{"json": {"sev": "HIGH"}}]}]


def test_message_with_several_blocks(server, br):
    server.enqueue(message(bd.text_block("Two checks."), tool_block("get_finding", {"id": "a"}, "t1"),
                           tool_block("get_finding", {"id": "b"}, "t2"), chunks=2))
    evs = events(br.converse_stream(modelId=MODEL, messages=[user("both")], toolConfig=TOOLS))
    starts = [e["contentBlockStart"] for e in evs if "contentBlockStart" in e]
    assert [(s["contentBlockIndex"], s["start"]["toolUse"]["toolUseId"]) for s in starts] == [(1, "t1"), (2, "t2")]
    assert evs[-2]["messageStop"]["stopReason"] == "tool_use"


@pytest.mark.parametrize("member", sorted(bd.STREAM_EXCEPTIONS))
def test_mid_stream_exception_after_some_text(server, br, member):
    server.enqueue(stream_exception(2, member, f"{member} happened", text="alpha beta gamma delta epsilon", chunks=5))
    got = []
    with pytest.raises(EventStreamError) as exc:
        for e in br.converse_stream(modelId=MODEL, messages=[user("go")])["stream"]:
            got.append(e)
    assert streamed_text(got) == "alpha beta "  # two of five pieces arrived first
    assert exc.value.response["Error"] == {"Code": member, "Message": f"{member} happened"}
    assert server.requests[0].events_sent == ["messageStart", "contentBlockDelta", "contentBlockDelta", member]


def test_model_stream_error_extra_members_and_error_structure_name(server, br):
    server.enqueue(stream_exception(0, "ModelStreamErrorException", "boom", original_status_code=500,
                                    original_message="upstream failed"))
    st, headers, body = raw(server, "POST", f"/model/{MODEL}/converse-stream", {"messages": [user("x")]})
    ((hdrs, payload),) = [m for m in bd.decode_event_stream(body) if m[0][":message-type"] == "exception"]
    assert hdrs == {":exception-type": "modelStreamErrorException", ":content-type": "application/json",
                    ":message-type": "exception"}
    p = json.loads(payload)
    assert (p["message"], p["originalStatusCode"], p["originalMessage"]) == ("boom", 500, "upstream failed")


def test_stream_exception_consumed_by_converse_is_an_http_error(server, br):
    server.enqueue(stream_exception(1, "throttlingException", "slow down"))
    with pytest.raises(ClientError) as exc:
        br.converse(modelId=MODEL, messages=[user("x")])
    assert exc.value.response["Error"]["Code"] == "ThrottlingException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429


def test_raw_framing_headers_crcs_and_padding(server):
    server.enqueue(text("Hello world again", chunks=3))
    status, headers, body = raw(server, "POST", f"/model/{MODEL}/converse-stream", {"messages": [user("hi")]})
    assert status == 200
    assert headers["content-type"] == "application/vnd.amazon.eventstream"
    assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
    # botocore's own decoder (checks prelude and message CRCs) and ours agree
    buf = EventStreamBuffer()
    buf.add_data(body)
    theirs = [(m.headers, m.payload) for m in buf]
    ours = list(bd.decode_event_stream(body))
    assert theirs == ours and len(ours) == 7
    for hdrs, payload in ours:
        assert hdrs[":message-type"] == "event" and hdrs[":content-type"] == "application/json"
        assert "p" in json.loads(payload)  # the real service pads every event
    assert [h[":event-type"] for h, _ in ours] == [
        "messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockDelta",
        "contentBlockStop", "messageStop", "metadata"]
    # corrupting one byte is caught by the message CRC
    bad = bytearray(body)
    bad[30] ^= 0xFF
    with pytest.raises(ValueError):
        list(bd.decode_event_stream(bytes(bad)))


def test_padding_can_be_turned_off():
    with BedrockServer(chunk_delay=0, padding=False) as s:
        s.enqueue("x")
        _, _, body = raw(s, "POST", f"/model/{MODEL}/converse-stream", {"messages": [user("hi")]})
        assert all("p" not in json.loads(p) for _, p in bd.decode_event_stream(body))


def test_client_going_away_and_stop_end_a_long_stream(server):
    server.enqueue(text(" ".join(["word"] * 200), chunks=200, delay=0.02), text("later"))
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    body = json.dumps({"messages": [user("long")]}).encode()
    sock.sendall(b"POST /model/m.x/converse-stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    assert b"200" in sock.recv(100)
    sock.close()  # like an interrupted kernel dropping the stream
    deadline = time.monotonic() + 5
    while not server.requests[0].client_disconnected and time.monotonic() < deadline:
        time.sleep(0.02)
    rec = server.requests[0]
    assert rec.client_disconnected and not rec.stream_complete and len(rec.events_sent) < 50
    # a long stream in progress does not hold up stop()
    threading.Thread(target=lambda: raw(server, "POST", "/model/m.x/converse-stream",
                                        {"messages": [user("x")]}), daemon=True).start()
    server.script().put(text(" ".join(["w"] * 500), chunks=500, delay=0.05))
    time.sleep(0.2)
    t = time.monotonic()
    server.stop()
    assert time.monotonic() - t < 2


# ------------------------------------------------------------------ scripting


def test_unscripted_call_fails_loudly(server, br):
    for call in (br.converse, br.converse_stream):
        with pytest.raises(ClientError) as exc:
            call(modelId=MODEL, messages=[user("hello")])
        assert exc.value.response["Error"]["Code"] == "ValidationException"
        assert "no scripted answer" in exc.value.response["Error"]["Message"]
    assert [r.status for r in server.requests] == [400, 400]


def test_replies_are_consumed_in_order_per_model(server, br):
    server.enqueue("first", "second")
    server.script("other.model-v1").put("for other")
    assert len(server.script()) == 2 and server.pending == 3
    said = [br.converse(modelId=m, messages=[user("q")])["output"]["message"]["content"][0]["text"]
            for m in (MODEL, "other.model-v1", "other.model-v1")]
    assert said == ["first", "for other", "second"]


def test_responder_answers_when_the_queue_is_empty(server, br):
    server.responder = lambda body: text("echo: " + body["messages"][-1]["content"][0]["text"])
    server.enqueue("scripted", lambda body: f"one-shot sees {len(body['messages'])} message(s)")
    outs = [streamed_text(events(br.converse_stream(modelId=MODEL, messages=[user(q)]))) for q in ("a", "b", "c")]
    assert outs == ["scripted", "one-shot sees 1 message(s)", "echo: c"]


def test_scripted_http_errors_and_fail_next(server, br):
    server.enqueue(error(*bd.model_not_ready()), "after the error")
    with pytest.raises(ClientError) as exc:
        br.converse_stream(modelId=MODEL, messages=[user("x")])
    assert exc.value.response["Error"]["Code"] == "ModelNotReadyException"
    # fail_next answers before the script, which is not consumed
    server.fail_next("ConverseStream", *bd.throttling(), times=2)
    for _ in range(2):
        with pytest.raises(ClientError) as exc:
            br.converse_stream(modelId=MODEL, messages=[user("x")])
        assert exc.value.response["Error"]["Code"] == "ThrottlingException"
    assert streamed_text(events(br.converse_stream(modelId=MODEL, messages=[user("x")]))) == "after the error"
    with pytest.raises(ValueError):
        server.fail_next("Conversee", *bd.throttling())


@pytest.mark.parametrize("helper,status,code,fragment", [
    (bd.access_denied, 403, "AccessDeniedException", "You don't have access to the model"),
    (bd.throttling, 429, "ThrottlingException", "Too many requests"),
    (lambda: bd.validation("messages.0: bad"), 400, "ValidationException", "messages.0: bad"),
    (bd.service_unavailable, 503, "ServiceUnavailableException", "unable to process"),
    (bd.internal_error, 500, "InternalServerException", "internal error"),
    (bd.model_not_ready, 429, "ModelNotReadyException", "not ready"),
    (bd.use_case_not_submitted, 404, "ResourceNotFoundException", "use case details"),
    (bd.invalid_model_id, 400, "ValidationException", "model identifier is invalid"),
    (bd.on_demand_not_supported, 400, "ValidationException", "inference profile"),
])
def test_http_errors_map_to_client_error_codes(server, br, helper, status, code, fragment):
    server.enqueue(error(*helper()))
    with pytest.raises(ClientError) as exc:
        br.converse(modelId=MODEL, messages=[user("x")])
    err = exc.value.response
    assert err["Error"]["Code"] == code and fragment in err["Error"]["Message"]
    assert err["ResponseMetadata"]["HTTPStatusCode"] == status
    assert err["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == code
    assert server.requests[0].error_type == code


def test_deny_model(server, br):
    server.deny_model("anthropic.claude-opus-4-1")
    server.enqueue("fine")
    with pytest.raises(ClientError) as exc:
        br.converse(modelId="anthropic.claude-opus-4-1", messages=[user("x")])
    assert exc.value.response["Error"]["Code"] == "AccessDeniedException"
    assert br.converse(modelId=MODEL, messages=[user("x")])["output"]["message"]["content"] == [{"text": "fine"}]
    server.allow_model("anthropic.claude-opus-4-1")
    server.enqueue("now allowed")
    br.converse(modelId="anthropic.claude-opus-4-1", messages=[user("x")])


@pytest.mark.parametrize("messages,fragment", [
    ([{"role": "assistant", "content": [{"text": "hi"}]}], "must start with a user message"),
    ([user("a"), user("b")], "must alternate between user and assistant"),
    ([user("a"), {"role": "assistant", "content": [
        {"toolUse": {"toolUseId": "t1", "name": "get_finding", "input": {}}}]}, user("no result")],
     "Expected toolResult blocks at messages.2.content for the following Ids: t1"),
])
def test_conversations_the_real_service_rejects(server, br, messages, fragment):
    server.enqueue("never used")
    with pytest.raises(ClientError) as exc:
        br.converse(modelId=MODEL, messages=messages, toolConfig=TOOLS)
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    assert fragment in exc.value.response["Error"]["Message"]
    assert server.pending == 1  # the scripted reply was not consumed


def test_tool_blocks_need_a_tool_config(server, br):
    msgs = [user("a"), {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "n", "input": {}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "r"}]}}]}]
    with pytest.raises(ClientError) as exc:
        br.converse(modelId=MODEL, messages=msgs)
    assert "toolConfig field must be defined" in exc.value.response["Error"]["Message"]


def test_split_text_concatenates_exactly():
    for s in ("", "x", "  lead and trail  ", "one", "a b", "no-spaces-at-all-here", "multi\nline\n\ntext ok"):
        for n in (1, 2, 3, 7, 50):
            pieces = bd._split_text(s, n)
            assert "".join(pieces) == s and len(pieces) <= max(n, 1)
            assert all(pieces) or s == ""


# ------------------------------------------------------------------ Retrieve

PASSAGES = [
    ("Rotate customer managed KMS keys every year.", "s3://runbooks/kms.md", {"service": "kms"}),
    ("Restrict security group ingress on port 22 to known CIDR ranges.", "s3://runbooks/ec2-19.md", {"control": "EC2.19"}),
    ("Enable GuardDuty in every region of every account.", "s3://runbooks/guardduty.md", None),
    ("Security group rules should not allow 0.0.0.0/0 on port 3389 or port 22.", "https://docs.example/sg", None),
    ("Turn on MFA for the root user.", "s3://runbooks/iam.md", None),
    ("Block public access on S3 buckets.", "s3://runbooks/s3.md", None),
]


def retrieve(agent, q, n=None, kb=KB):
    kw = {"retrievalConfiguration": {"vectorSearchConfiguration": {"numberOfResults": n}}} if n else {}
    return agent.retrieve(knowledgeBaseId=kb, retrievalQuery={"text": q}, **kw)["retrievalResults"]


def test_retrieve_orders_by_word_overlap(server, agent):
    server.add_knowledge_base(KB, PASSAGES)
    res = retrieve(agent, "security group port 22 open", n=3)
    assert len(res) == 3
    assert [r["location"].get("s3Location", r["location"].get("webLocation")) for r in res][:2] == [
        {"uri": "s3://runbooks/ec2-19.md"}, {"url": "https://docs.example/sg"}]
    assert res[1]["location"]["type"] == "WEB" and res[0]["location"]["type"] == "S3"
    scores = [r["score"] for r in res]
    assert scores == sorted(scores, reverse=True) and 0 < scores[-1] < scores[0] <= 1
    assert res[0]["content"] == {"text": PASSAGES[1][0], "type": "TEXT"}
    assert res[0]["metadata"]["control"] == "EC2.19"
    assert res[0]["metadata"]["x-amz-bedrock-kb-source-uri"] == "s3://runbooks/ec2-19.md"
    req = server.requests_for("Retrieve")[0]
    assert (req.knowledge_base_id, req.retrieval_text) == (KB, "security group port 22 open")


def test_retrieve_number_of_results_default_and_bounds(server, agent):
    server.add_knowledge_base(KB, PASSAGES)
    assert len(retrieve(agent, "kms")) == 5  # documented default
    assert len(retrieve(agent, "kms", n=1)) == 1
    assert len(retrieve(agent, "kms", n=100)) == len(PASSAGES)
    arn = f"arn:aws:bedrock:us-east-1:123456789012:knowledge-base/{KB}"
    assert retrieve(agent, "kms keys", n=1, kb=arn)[0]["content"]["text"] == PASSAGES[0][0]


def test_retrieve_errors(server, agent):
    with pytest.raises(ClientError) as exc:
        retrieve(agent, "anything", kb="KBMISSING0")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as exc:
        retrieve(agent, "anything", kb="not-a-kb-id")
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    server.add_knowledge_base(KB, PASSAGES)
    server.fail_next("Retrieve", *bd.throttling())
    with pytest.raises(ClientError) as exc:
        retrieve(agent, "kms")
    assert exc.value.response["Error"]["Code"] == "ThrottlingException"
    assert retrieve(agent, "kms", n=1)
    with pytest.raises(ValueError):
        server.add_knowledge_base("short", [])


# ------------------------------------------------------------------ standalone


def test_runs_standalone_and_prints_its_url():
    with standalone("tests.servers.bedrock", "--port", "0", "--echo", "--chunk-delay", "0") as url:
        assert url.startswith("http://127.0.0.1:")
        c = SESSION.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        evs = events(c.converse_stream(modelId=MODEL, messages=[user("ping pong")]))
        assert streamed_text(evs) == "You said: ping pong"
