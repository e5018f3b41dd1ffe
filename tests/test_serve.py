"""``rnnlm serve`` as a real process: the official openai client, streaming and not, and raw HTTP
for errors, limits, the API key, disconnects, metrics and the run charts."""

import json
import signal
import socket
import threading
import time

import pytest

from rnnlm.generation.sampling import Sampling
from rnnlm.generation.session import GenerationSession
from tests.serving import (
    ServerProcess,
    copy_run,
    get_json,
    metric,
    open_stream,
    post,
    read_until,
    request,
    sse_events,
    wait_for,
)

openai = pytest.importorskip("openai")

KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}
MAX_STREAMS, QUEUE = 4, 2


@pytest.fixture(scope="module")
def run_folder(tiny_run, tmp_path_factory):
    return copy_run(tiny_run, tmp_path_factory.mktemp("served") / "tiny")


@pytest.fixture(scope="module")
def server(run_folder):
    process = ServerProcess(str(run_folder), "--max-streams", str(MAX_STREAMS), "--queue", str(QUEUE),
                            "--max-tokens", "100000", "--max-prompt", "2000", "--threads", "1",
                            env={"RNNLM_API_KEY": KEY})
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def session(run_folder):
    return GenerationSession.load(run_folder, device="cpu")


def alone(session, prompt, max_tokens, seed, **options):
    """The text the session writes for one stream: what the server must send back."""
    (stream,) = session.start(prompt, max_tokens=max_tokens, seed=seed, **options)
    for _ in session.run_streams([stream]):
        pass
    return stream


def test_startup_names_the_models_and_the_address(server):
    assert "1 model: tiny (char, gru)" in server.lines[0]
    assert "API key required" in server.lines[1]


def test_openai_client_completion_is_the_sessions_text(client, session):
    done = client.completions.create(model="tiny", prompt="the ", max_tokens=30, seed=5, temperature=0.9)
    expected = alone(session, "the ", 30, 5, sampling=Sampling(temperature=0.9))
    assert done.choices[0].text == expected.text and len(expected.text) == 30
    assert done.choices[0].finish_reason == "length" and done.model == "tiny"
    assert done.usage.prompt_tokens == 4 and done.usage.completion_tokens == 30 and done.usage.total_tokens == 34


def test_openai_client_streams_the_text_in_events(client, session):
    chunks = list(client.completions.create(model="tiny", prompt="the cat", max_tokens=25, seed=9, stream=True))
    expected = alone(session, "the cat", 25, 9)
    assert 1 <= len(chunks) <= 25  # one event per token, or fewer carrying several when the client reads slower
    assert all(c.choices[0].text for c in chunks)
    assert "".join(c.choices[0].text for c in chunks) == expected.text
    assert [c.choices[0].finish_reason for c in chunks] == [None] * (len(chunks) - 1) + ["length"]


def test_n_choices_each_with_its_seed(client, session):
    done = client.completions.create(model="tiny", prompt="a dog ", max_tokens=20, n=3, seed=40,
                                     extra_body={"top_k": 5})
    texts = [c.text for c in sorted(done.choices, key=lambda c: c.index)]
    assert texts == [alone(session, "a dog ", 20, 40 + i, sampling=Sampling(top_k=5)).text for i in range(3)]
    assert len(set(texts)) > 1 and done.usage.completion_tokens == 60


def test_a_list_of_prompts_gives_n_choices_each(client, session):
    done = client.completions.create(model="tiny", prompt=["the ", "on the "], max_tokens=10, n=2, seed=7)
    assert [c.index for c in done.choices] == [0, 1, 2, 3]
    assert done.choices[2].text == alone(session, "on the ", 10, 9).text  # prompt 1, sample 0: seed + 1 * n


def test_stop_strings_streamed_and_not(client, session):
    free = alone(session, "the ", 200, 3).text
    stop = next(w for w in ("at", "og", "the", "on") if w in free)
    done = client.completions.create(model="tiny", prompt="the ", max_tokens=200, seed=3, stop=[stop, "zzz"])
    assert done.choices[0].text == free[: free.index(stop)] and done.choices[0].finish_reason == "stop"
    chunks = list(client.completions.create(model="tiny", prompt="the ", max_tokens=200, seed=3, stop=stop,
                                            stream=True))
    assert "".join(c.choices[0].text for c in chunks) == done.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_logprobs_in_the_completions_shape(client, session):
    done = client.completions.create(model="tiny", prompt="the ", max_tokens=12, seed=2, logprobs=3)
    expected = alone(session, "the ", 12, 2, logprobs=3)
    lp = done.choices[0].logprobs
    assert lp.tokens == [r.text for r in expected.records] and "".join(lp.tokens) == done.choices[0].text
    assert lp.token_logprobs == pytest.approx([r.logprob for r in expected.records], abs=1e-6)
    assert [list(t) for t in lp.top_logprobs] == [[tok for tok, _ in r.top] for r in expected.records]
    assert lp.text_offset == list(range(4, 16))  # offsets count from the start of the prompt
    streamed = list(client.completions.create(model="tiny", prompt="the ", max_tokens=12, seed=2, logprobs=3,
                                              stream=True))
    streamed_lp = [c.choices[0].logprobs for c in streamed]  # an event may carry several tokens
    assert [x for e in streamed_lp for x in e.token_logprobs] == pytest.approx(lp.token_logprobs, abs=1e-6)
    assert [x for e in streamed_lp for x in e.text_offset] == lp.text_offset


def test_greedy_at_temperature_zero_and_echo(client, session):
    done = client.completions.create(model="tiny", prompt="the cat sat on the m", max_tokens=3, temperature=0,
                                     echo=True)
    greedy = alone(session, "the cat sat on the m", 3, None, sampling=Sampling(greedy=True)).text
    assert done.choices[0].text == "the cat sat on the m" + greedy and len(greedy) == 3


def test_models_list_with_cards(client, server):
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny"]
    _, body = get_json(server.port, "/v1/models/tiny", headers=AUTH)
    card = body["card"]
    assert card["level"] == "char" and card["cell"] == "gru" and card["epochs"] == 4
    assert card["parameters"] > 1000 and card["best_valid_loss"] > 0 and card["best_bits_per_char"] > 0


def test_score_matches_rnnlm_score(server, run_folder):
    import rnnlm.inspect.score as score
    from rnnlm.runfolder import load_run

    status, body = post(server.port, "/v1/score", {"model": "tiny", "text": "the cat sat", "top": 3, "unit": 2},
                        headers=AUTH)
    assert status == 200, body
    expected = score.score_text(load_run(run_folder, device="cpu"), "the cat sat", top=3,
                                unit=score.UnitChoice(None, 2))
    assert [t["text"] for t in body["tokens"]] == list("the cat sat") and body["tokens"][0]["logprob"] is None
    assert [t["logprob"] for t in body["tokens"][1:]] == pytest.approx(expected.logprobs[1:].tolist(), abs=1e-5)
    assert [t["value"] for t in body["tokens"]] == pytest.approx(expected.trace.of(2).tolist(), abs=1e-5)
    assert body["bits_per_char"] == pytest.approx(expected.bits_per_char) and len(body["tokens"][1]["top"]) == 3
    status, body = post(server.port, "/v1/score", {"model": "tiny", "text": "the cat", "unit": 999}, headers=AUTH)
    assert status == 422 and body["error"]["param"] == "unit"


@pytest.mark.parametrize("body,status,param", [
    ({"model": "tiny", "prompt": "the", "temperature": "hot"}, 422, "temperature"),
    ({"model": "tiny", "prompt": "the", "top_p": 1.5}, 422, "top_p"),
    ({"model": "tiny", "prompt": "the", "max_tokens": -1}, 422, "max_tokens"),
    ({"model": "tiny", "prompt": "the", "max_tokens": 100001}, 422, "max_tokens"),
    ({"model": "tiny", "prompt": "the", "n": 5}, 422, "n"),
    ({"model": "tiny", "prompt": "the", "n": 0}, 422, "n"),
    ({"model": "tiny", "prompt": 5}, 422, "prompt"),
    ({"model": "tiny", "prompt": "x" * 2001}, 422, "prompt"),
    ({"model": "tiny", "prompt": [1, 2, 10**6]}, 422, "prompt"),
    ({"model": "tiny", "prompt": "the", "stop": [""]}, 422, "stop"),
    ({"model": "tiny", "prompt": "the", "seed": -3}, 422, "seed"),
    ({"model": "tiny", "prompt": "the", "logprobs": 21}, 422, "logprobs"),
    ({"model": "tiny", "prompt": "the", "stream": "yes"}, 422, "stream"),
    ({"model": "tiny", "prompt": "the", "temprature": 1}, 422, "temprature"),
    ({"model": "tiny", "prompt": "the", "suffix": "end"}, 422, "suffix"),
    ({"model": "nope", "prompt": "the"}, 404, "model"),
    ([1, 2], 400, None),
])
def test_bad_requests_get_an_openai_error_naming_the_field(server, body, status, param):
    got, answer = post(server.port, "/v1/completions", body, headers=AUTH)
    assert got == status, answer
    error = answer["error"]
    assert error["param"] == param and error["message"] and error["type"] == "invalid_request_error"
    if param:
        assert param in error["message"]


def test_malformed_json_and_oversized_bodies(server):
    status, _, data = request(server.port, "POST", "/v1/completions", raw=b'{"prompt": "the', headers=AUTH)
    assert status == 400 and "not valid JSON" in json.loads(data)["error"]["message"]
    status, _, data = request(server.port, "POST", "/v1/completions", raw=b"x" * ((1 << 20) + 1), headers=AUTH)
    assert status == 413 and json.loads(data)["error"]["code"] == "too_large"
    status, _, data = request(server.port, "GET", "/v1/nowhere", headers=AUTH)
    assert status == 404 and json.loads(data)["error"]["code"] == "not_found"
    form = {**AUTH, "Content-Type": "application/x-www-form-urlencoded"}  # what curl -d sends unless told
    status, _, data = request(server.port, "POST", "/v1/completions", {"model": "tiny", "prompt": "a"}, headers=form)
    assert status == 400 and "Content-Type: application/json" in json.loads(data)["error"]["message"]


def test_the_api_key_guards_everything_but_health(server):
    for path in ("/v1/models", "/metrics", "/v1/runs"):
        status, _, data = request(server.port, "GET", path)
        assert status == 401 and json.loads(data)["error"]["code"] == "invalid_api_key", path
    status, _, _ = request(server.port, "GET", "/v1/models", headers={"Authorization": "Bearer wrong"})
    assert status == 401
    status, _, _ = request(server.port, "POST", "/v1/completions", {"prompt": "x"})
    assert status == 401
    assert get_json(server.port, "/health")[0] == 200
    assert request(server.port, "GET", "/")[0] == 200  # the page itself holds no data
    assert "access-control-allow-origin" not in request(server.port, "GET", "/health",
                                                        headers={"Origin": "http://elsewhere.test"})[1]


def test_a_client_that_goes_away_frees_its_slots(server):
    before = metric(server.port, "rnnlm_completion_tokens_total", AUTH, model="tiny")
    sock = open_stream(server.port, {"model": "tiny", "prompt": "the ", "max_tokens": 90000, "n": MAX_STREAMS},
                       headers=AUTH)
    read_until(sock, b"data: ")
    assert wait_for(lambda: metric(server.port, "rnnlm_active_streams", AUTH, model="tiny") == MAX_STREAMS)
    sock.close()
    assert wait_for(lambda: metric(server.port, "rnnlm_active_streams", AUTH, model="tiny") == 0, timeout=5)
    assert metric(server.port, "rnnlm_completion_tokens_total", AUTH, model="tiny") - before < 4 * 90000
    status, body = post(server.port, "/v1/completions", {"model": "tiny", "prompt": "the", "max_tokens": 5,
                                                         "n": MAX_STREAMS}, headers=AUTH)
    assert status == 200 and len(body["choices"]) == MAX_STREAMS


def test_full_slots_and_queue_give_503_with_retry_after(server):
    held = [open_stream(server.port, {"model": "tiny", "prompt": "the ", "max_tokens": 90000, "n": MAX_STREAMS},
                        headers=AUTH)]
    read_until(held[0], b"data: ")
    for _ in range(QUEUE):  # these wait for a slot
        held.append(open_stream(server.port, {"model": "tiny", "prompt": "a", "max_tokens": 3}, headers=AUTH))
    assert wait_for(lambda: metric(server.port, "rnnlm_queued_requests", AUTH, model="tiny") == QUEUE)
    status, headers, data = request(server.port, "POST", "/v1/completions", {"model": "tiny", "prompt": "b"},
                                    headers=AUTH)
    assert status == 503 and headers["retry-after"] == "1"
    assert json.loads(data)["error"]["code"] == "busy"
    held[0].close()  # the queued ones run once the slots are free
    for sock in held[1:]:
        events = sse_events(read_until(sock, b"data: [DONE]"))
        assert events[-1] == "[DONE]" and events[-2]["choices"][0]["finish_reason"] == "length"
        sock.close()


def test_bursts_of_bad_and_abandoned_requests_leave_it_answering(server):
    def abandon(kind: int) -> None:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        if kind == 0:  # headers promise a body that never comes
            sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"pro")
        elif kind == 1:  # garbage
            sock.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        else:  # a stream dropped at once
            body = b'{"prompt": "the", "max_tokens": 50000, "stream": true}'
            sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nAuthorization: Bearer "
                         % len(body) + KEY.encode() + b"\r\n\r\n" + body)
        sock.close()

    threads = [threading.Thread(target=abandon, args=(i % 3,)) for i in range(60)]
    for t in threads:
        t.start()
    for _ in range(30):
        assert post(server.port, "/v1/completions", {"model": "tiny", "prompt": 1}, headers=AUTH)[0] == 422
    for t in threads:
        t.join()
    status, body = post(server.port, "/v1/completions", {"model": "tiny", "prompt": "the", "max_tokens": 5},
                        headers=AUTH)
    assert status == 200 and len(body["choices"][0]["text"]) == 5
    assert wait_for(lambda: metric(server.port, "rnnlm_active_streams", AUTH, model="tiny") == 0, timeout=10)


def test_metrics_count_requests_tokens_and_batches(server):
    post(server.port, "/v1/completions", {"model": "tiny", "prompt": "the", "max_tokens": 7}, headers=AUTH)
    status, headers, data = request(server.port, "GET", "/metrics", headers=AUTH)
    text = data.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert metric(server.port, "rnnlm_requests_total", AUTH, route="/v1/completions", status="200") >= 1
    assert metric(server.port, "rnnlm_requests_total", AUTH, route="/v1/completions", status="422") >= 1
    assert metric(server.port, "rnnlm_completion_tokens_total", AUTH, model="tiny") >= 7
    assert 'rnnlm_batch_size_bucket{le="4.0",model="tiny"}' in text
    assert "rnnlm_time_to_first_token_seconds_count" in text and "rnnlm_step_seconds_sum" in text


def test_runs_view_follows_metrics_jsonl(server, run_folder):
    _, body = get_json(server.port, "/v1/runs", headers=AUTH)
    (run,) = body["data"]
    assert run["model"] == "tiny" and [r["epoch"] for r in run["metrics"]] == [1, 2, 3, 4]
    with open(run_folder / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 5, "train_loss": 1.0, "valid_loss": 1.1, "note": "text is dropped"}) + "\n")
        f.write('{"epoch": 6, "train_lo')  # a line still being written
    time.sleep(0.01)
    _, body = get_json(server.port, "/v1/runs", headers=AUTH)
    rows = body["data"][0]["metrics"]
    assert rows[-1] == {"epoch": 5, "train_loss": 1.0, "valid_loss": 1.1}


def test_openapi_document_and_page(server):
    status, body = get_json(server.port, "/openapi.json", headers=AUTH)
    assert status == 200 and "/v1/completions" in body["paths"] and "/v1/score" in body["paths"]
    status, _, page = request(server.port, "GET", "/docs")
    assert status == 200 and b"/docs/swagger-ui-bundle.js" in page and b"cdn" not in page.lower()
    status, public = get_json(server.port, "/openapi.json")  # the page loads it without the key
    assert status == 200 and public == body
    assert request(server.port, "GET", "/docsx")[0] == 401


def test_a_top_k_beyond_the_vocab_samples_among_all(server, session):
    done = post(server.port, "/v1/completions", {"model": "tiny", "prompt": "the ", "max_tokens": 6, "seed": 4,
                                                   "top_k": 10**30}, headers=AUTH)
    assert done[0] == 200 and done[1]["choices"][0]["text"] == alone(session, "the ", 6, 4).text


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_streams_in_flight_and_exits_0(tiny_run, sig):
    process = ServerProcess(str(tiny_run), "--threads", "1", "--max-tokens", "100000")
    try:
        sock = open_stream(process.port, {"prompt": "the ", "max_tokens": 100000})
        first = read_until(sock, b"data: ")
        started = time.monotonic()
        status, out, err = process.signal(sig)
        events = sse_events(first + read_until(sock, b"data: [DONE]", limit=1 << 30))
        assert status == 0, err
        assert time.monotonic() - started < 10
        assert events[-1] == "[DONE]" and events[-2]["choices"][0]["finish_reason"] == "length"
        assert len(events) - 1 < 100000  # cut short
        assert "stopped" in out and "Traceback" not in err
    finally:
        process.stop()


def test_a_run_folder_that_does_not_load_is_one_line(tmp_path, capsys):
    from tests.conftest import one_error_line

    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    line = one_error_line(["serve", str(tmp_path / "broken")], capsys)
    assert "broken" in line and "config.json" in line
    line = one_error_line(["serve", str(tmp_path / "missing")], capsys)
    assert "no such run folder" in line
