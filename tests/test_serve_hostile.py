"""``rnnlm serve`` as a hostile client meets it, from another process, two models served: text
that is not Unicode, bodies that are not JSON or not UTF-8, generated bodies of every wrong kind
(hypothesis), HEAD, a burst of connections beyond what the workers admit, and more connections
than the open-files limit allows. Whatever a client sends, the answer is a 2xx or a 4xx with an
error object (a 503 from rnnlm, a JSON error with Retry-After, under load), and the server's log
holds no traceback."""

import asyncio
import http.client
import json
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving import ServerProcess, copy_run, http_request, post, read_response, request

MODELS = ("tiny", "other")
OK_BODY = {"model": "tiny", "prompt": "the ", "max_tokens": 5, "seed": 1}


@pytest.fixture(scope="module")
def served(tiny_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    for name in MODELS:
        copy_run(tiny_run, root / name)
    return root


@pytest.fixture(scope="module")
def server(served):
    """Short completions only (--max-tokens 8): the generated bodies that are valid run fast."""
    process = ServerProcess(str(served), "--max-streams", "2", "--queue", "2", "--max-tokens", "8", "--threads", "1")
    yield process
    process.stop()


def raw_post(port: int, path: str, data: bytes, content_type: str = "application/json") -> tuple[int, dict, dict]:
    status, headers, body = request(port, "POST", path, raw=data, headers={"Content-Type": content_type})
    return status, headers, json.loads(body)


def assert_no_traceback(process: ServerProcess) -> None:
    log = process.log()
    assert "Traceback" not in log and "Exception in ASGI" not in log, log


@pytest.mark.parametrize("path,data,param", [
    ("/v1/completions", b'{"model": "tiny", "prompt": "a\\ud800b"}', "prompt"),
    ("/v1/completions", b'{"model": "tiny", "prompt": "a\\ud800b", "echo": true, "max_tokens": 2}', "prompt"),
    ("/v1/completions", b'{"model": "tiny", "prompt": "a\xed\xa0\x80b", "echo": true}', "prompt"),  # UTF-8 bytes
    ("/v1/completions", b'{"model": "tiny", "prompt": ["the", "\\udc00"]}', "prompt"),
    ("/v1/completions", b'{"model": "tiny", "prompt": "the", "stop": ["x", "\\udfff"]}', "stop"),
    ("/v1/completions", b'{"model": "ti\\ud800ny", "prompt": "the"}', "model"),
    ("/v1/completions", b'{"model": "tiny", "prompt": "one", "\\ud800": 1}', "\\ud800"),
    ("/v1/completions", b'{"model": "tiny", "prompt": "one", "logit_bias": {"\\udbff": 1}}', "logit_bias.\\udbff"),
    ("/v1/score", b'{"model": "tiny", "text": "a\\ud800b"}', "text"),
    ("/v1/score", b'{"model": "tiny", "text": "a\xed\xb0\x80b"}', "text"),
])
def test_text_that_is_not_unicode_is_a_400_naming_the_field(server, path, data, param):
    status, _, body = raw_post(server.port, path, data)
    assert status == 400, body
    error = body["error"]
    assert error["code"] == "invalid_json" and error["param"] == param and error["type"] == "invalid_request_error"
    assert "not valid Unicode" in error["message"] and error["message"].startswith(param)
    assert_no_traceback(server)


def test_a_surrogate_pair_is_one_character_and_passes(server):
    status, _, body = raw_post(server.port, "/v1/completions",
                               b'{"model": "tiny", "prompt": "\\ud83d\\ude00 the", "echo": true, "max_tokens": 2}')
    assert status == 200 and body["choices"][0]["text"].startswith("\U0001F600 the")


@pytest.mark.parametrize("data,says", [
    (b'{"model": "tiny", "prompt": "a\xffb"}', "not valid UTF-8"),
    (b'{"model": "tiny", "prompt": "\xc0\xaf"}', "not valid UTF-8"),  # an overlong encoding of "/"
    ('{"model": "tiny", "prompt": "the"}'.encode("utf-16"), "not valid UTF-8"),
    (b'{"model": "tiny", "prompt": "the', "not valid JSON"),
    (b'{"model": "tiny", "prompt": "the", "temperature": NaN}', "NaN is not a JSON number"),
    (b'{"model": "tiny", "prompt": "the", "top_p": -Infinity}', "-Infinity is not a JSON number"),
    (b'{"model": "tiny", "prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested more than"),
    (b'{"model": "tiny", "prompt": ' + b"[" * 40 + b"]" * 40 + b"}", "nested more than"),
    (b'{"model": "tiny", "seed": ' + b"9" * 5000 + b"}", "digits"),
])
def test_bodies_that_are_not_json_in_utf8_share_one_code(server, data, says):
    status, _, body = raw_post(server.port, "/v1/completions", data)
    assert status == 400 and body["error"]["code"] == "invalid_json" and says in body["error"]["message"], body
    assert_no_traceback(server)


def test_a_form_that_is_not_json_names_the_content_type(server):
    status, _, body = raw_post(server.port, "/v1/completions", b"model=tiny&prompt=the",
                               content_type="application/x-www-form-urlencoded")
    assert status == 400 and body["error"]["code"] == "invalid_json"
    assert "Content-Type: application/json" in body["error"]["message"]


@pytest.mark.parametrize("path", ["/health", "/v1/models", "/v1/models/tiny", "/v1/runs", "/metrics", "/",
                                  "/docs", "/openapi.json", "/static/app.js", "/favicon.ico"])
def test_head_answers_wherever_get_does(server, path):
    got_status, got_headers, got = request(server.port, "GET", path)
    status, headers, body = request(server.port, "HEAD", path)
    assert status == got_status and status in (200, 204) and body == b""
    assert headers.get("content-type") == got_headers.get("content-type")
    if status == 200 and path not in ("/metrics", "/v1/runs"):  # these two change between two calls
        assert headers.get("content-length") == got_headers.get("content-length") == str(len(got))
    assert request(server.port, "HEAD", "/v1/completions")[0] == 405


class Raw(str):
    """JSON text put into a body as it is: numbers json.dumps does not write, deep nesting."""


def to_json(value, ascii_only: bool) -> str:
    """JSON text of ``value``, with its Raw parts as they are; lone surrogates escaped
    (``ascii_only``) or left in, to be sent as UTF-8 bytes (ED A0 80)."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{to_json(str(k), ascii_only)}: {to_json(v, ascii_only)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(to_json(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)  # NaN and Infinity as Python writes them


any_text = st.text(st.characters(exclude_categories=()), max_size=30)  # lone surrogates included, rarely
surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
unicode = any_text | st.tuples(any_text, surrogate, any_text).map("".join)  # and often
numbers = st.one_of(st.integers(-(2**70), 2**70), st.floats(), st.sampled_from(
    ["1e999", "-1e999", "1" * 5000, "-0", "1E400", "0.0000", "18446744073709551617", "4.9e-324"]).map(Raw))
scalars = st.one_of(st.none(), st.booleans(), numbers, unicode)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(unicode, inner, max_size=4),
                           max_leaves=12)
anything = st.one_of(json_values, st.integers(1, 3000).map(lambda depth: Raw("[" * depth + "]" * depth)))
texts = unicode.filter(bool)
# Each field's values of the right type and range (text of any code point: a lone surrogate is
# the right JSON type), so that a request can get as far as a model and its answer.
COMPLETION_FIELDS = {
    "model": st.sampled_from(MODELS),
    "prompt": st.one_of(unicode, st.lists(texts, min_size=1, max_size=2), st.lists(st.integers(0, 20), min_size=1,
                                                                                     max_size=5)),
    "max_tokens": st.integers(0, 8) | st.none(), "temperature": st.floats(0, 100) | st.none(),
    "top_p": st.floats(0, 1), "top_k": st.integers(-1, 50), "n": st.integers(1, 2),
    "stop": texts | st.lists(texts, min_size=1, max_size=3), "seed": st.integers(0, 2**31), "logprobs":
    st.integers(0, 5), "echo": st.booleans(), "stream": st.booleans(), "stream_options":
    st.fixed_dictionaries({"include_usage": st.booleans()}), "user": unicode,
}
SCORE_FIELDS = {"model": COMPLETION_FIELDS["model"], "text": unicode, "top": st.integers(0, 10),
                "layer": st.integers(1, 1) | st.none(), "unit": st.integers(0, 47) | st.none()}
ROUTES = ["/v1/completions", "/v1/completions", "/v1/completions", "/v1/score", "/v1/score", "/health",
          "/v1/models", "/v1/models/tiny", "/v1/runs", "/metrics", "/", "/nowhere"]


@st.composite
def hostile_posts(draw) -> tuple[str, bytes]:
    """A route and a body: the route's fields, right or with a few of them (and unknown ones)
    of any kind; any JSON value; or any bytes. Sent with strings escaped, or as UTF-8 bytes
    (a lone surrogate as ED A0 80)."""
    path = draw(st.sampled_from(ROUTES))
    kind = draw(st.sampled_from(["fields", "fields", "fields", "json", "bytes"]))
    if kind == "bytes":
        return path, draw(st.binary(max_size=300))
    if kind == "json":
        value = draw(anything)
    else:
        fields = SCORE_FIELDS if path == "/v1/score" else COMPLETION_FIELDS
        main = ("model", "text" if path == "/v1/score" else "prompt")
        value = draw(st.fixed_dictionaries({k: fields[k] for k in main},
                                           optional={k: v for k, v in fields.items() if k not in main}))
        for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2, unique=True)):
            value[name] = draw(st.one_of(numbers, unicode, anything))
        value.update(draw(st.dictionaries(unicode, anything, max_size=1)))
    return path, to_json(value, ascii_only=draw(st.booleans())).encode("utf-8", "surrogatepass")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(sent=hostile_posts())
def test_generated_bodies_never_get_a_5xx(server, sent):
    path, data = sent
    status, _, answer = request(server.port, "POST", path, raw=data, timeout=30)
    assert status < 500, (status, answer[:500])
    if status >= 400:
        error = json.loads(answer)["error"]
        assert isinstance(error["message"], str) and error["message"] and error["type"] == "invalid_request_error"


def test_after_all_of_it_a_completion_and_a_clean_log(server):
    status, body = post(server.port, "/v1/completions", OK_BODY)
    assert status == 200 and len(body["choices"][0]["text"]) == 5
    assert_no_traceback(server)


# A burst: more connections than uvicorn's old limit (4 x max_streams + queue + 64 = 74), each
# sending a request at once, as a keep-alive pool does. Under an open-files limit of its own:
# FILES_RESERVED (64) + 120 allows 120 connections.
BURST_OPEN_FILES = 184
BURST_MOST = 120


@pytest.fixture(scope="module")
def busy_server(served):
    process = ServerProcess(str(served), "--max-streams", "2", "--queue", "2", "--threads", "1",
                            open_files=BURST_OPEN_FILES)
    yield process
    process.stop()


async def burst(port: int, clients: int, data: bytes, head: bool = False) -> list:
    """``clients`` connections opened (and idle) first, then one request sent on each at once; each answer
    (None: the server closed the connection without one)."""
    opened = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(clients)),
                                  return_exceptions=True)
    connections = [c for c in opened if not isinstance(c, BaseException)]
    await asyncio.sleep(1.0)  # the server accepts every connection the kernel holds for it

    async def exchange(reader, writer):
        try:
            writer.write(data)
            await writer.drain()
        except ConnectionError:
            return None
        return await read_response(reader, head)

    answers = await asyncio.wait_for(asyncio.gather(*(exchange(r, w) for r, w in connections)), 120)
    for _, writer in connections:  # kept open until every answer is in, as a pool keeps them
        writer.close()
    return answers + [None] * (clients - len(connections))


def test_a_burst_of_connections_is_refused_by_rnnlm_as_json(busy_server):
    body = json.dumps({"model": "tiny", "prompt": "the ", "max_tokens": 3000}).encode()
    answers = asyncio.run(burst(busy_server.port, 100, http_request("POST", "/v1/completions", body)))
    done = [a for a in answers if a and a[0] == 200]
    refused = [a for a in answers if a and a[0] != 200]
    assert len(done) >= 4, [a[:2] for a in answers[:10]]  # two streams run, two requests wait
    assert len(done) + len(refused) == 100
    for status, headers, data in refused:
        assert status == 503 and headers["content-type"] == "application/json" and headers["retry-after"] == "1"
        assert json.loads(data)["error"]["code"] == "busy"
    assert all(len(json.loads(d)["choices"][0]["text"]) == 3000 for _, _, d in done)
    assert_no_traceback(busy_server)


def test_connections_beyond_the_limit_get_a_json_503_and_are_closed(busy_server):
    """Past the limit, requests are refused and their connections closed (the descriptors left
    are kept for the server's own files) until the count is back under it: those beyond it,
    not every one."""
    answers = asyncio.run(burst(busy_server.port, BURST_MOST + 40, http_request("GET", "/health")))
    kinds = [None if a is None else (a[0], a[1].get("content-type"), a[1].get("retry-after"), a[1].get("connection"))
             for a in answers]
    refused = [k for k in kinds if k and k[0] != 200]
    assert 1 <= len(refused) <= 40 and set(refused) == {(503, "application/json", "1", "close")}, set(kinds)
    assert all(json.loads(a[2])["error"]["code"] == "too_many_connections" for a in answers if a and a[0] == 503)
    assert None not in kinds  # every connection answered: the limit is below the open-files limit
    assert sum(1 for k in kinds if k and k[0] == 200) == BURST_MOST + 40 - len(refused)
    assert request(busy_server.port, "GET", "/health")[0] == 200
    assert_no_traceback(busy_server)


def post_once_it_accepts(port: int, body: dict, seconds: float = 10.0) -> tuple[int, dict]:
    """A completion sent until the server accepts its connection: right after a burst past the
    open-files limit, the burst's descriptors may not all be free yet, and a connection the
    server cannot accept is closed unanswered (a client retries it). Bounded: a server that
    stays closed fails the test."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return post(port, "/v1/completions", body)
        except (ConnectionResetError, ConnectionRefusedError, http.client.RemoteDisconnected):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_more_connections_than_open_files_leave_it_answering(busy_server):
    answers = asyncio.run(burst(busy_server.port, BURST_OPEN_FILES + 60, http_request("GET", "/health")))
    statuses = {a[0] for a in answers if a is not None}
    assert statuses <= {200, 503} and None in answers  # past the last descriptor: closed unanswered
    status, body = post_once_it_accepts(busy_server.port, OK_BODY)
    assert status == 200 and len(body["choices"][0]["text"]) == 5
    assert_no_traceback(busy_server)


def test_a_low_open_files_limit_is_a_warning_at_start(capsys):
    from rnnlm.cli.serve import print_listening
    from rnnlm.serve.server import Listening

    models = [SimpleNamespace(description="tiny (char, gru)")] * 2
    print_listening(Listening(models, "http://127.0.0.1:8000/", False, 700), 128 + 256)
    err = capsys.readouterr().err
    assert "700 connections" in err and "768 requests" in err and "ulimit -n" in err
    print_listening(Listening(models, "http://127.0.0.1:8000/", False, 20_000), 128 + 256)
    assert capsys.readouterr().err == ""


def test_the_server_raises_its_open_files_limit_to_the_hard_one():
    """From a shell's soft limit of 256 up to the hard limit (65,536 where that is unlimited)."""
    script = ("import resource; from rnnlm.serve.server import connection_limit, FILES_RESERVED, OPEN_FILES_WANTED; "
              "most = connection_limit(); soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE); "
              "print(most, soft, OPEN_FILES_WANTED if hard == resource.RLIM_INFINITY else hard, FILES_RESERVED)")
    done = subprocess.run(["/bin/sh", "-c", 'ulimit -Sn 256 && exec "$0" "$@"', sys.executable, "-c", script],
                          capture_output=True, text=True, timeout=120)
    most, soft, wanted, reserved = map(int, done.stdout.split())
    assert soft == wanted > 256 and most == wanted - reserved, done.stderr
