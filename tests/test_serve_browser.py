"""The playground in a real headless Chromium (Debian's, driven by Playwright's Python package):
it loads, generates, text streams in, Stop cancels, the inspect view colours a text; and CORS."""

import os

import pytest

from tests.serving import ServerProcess, metric, request, wait_for

CHROMIUM = "/usr/bin/chromium"
ALLOWED = "http://allowed.test"


@pytest.fixture(scope="module")
def server(tiny_run):
    process = ServerProcess(str(tiny_run), "--max-tokens", "100000", "--cors", ALLOWED, "--threads", "1")
    yield process
    process.stop()


@pytest.fixture
def page(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
            viewport={"width": 1200, "height": 800})
        errors: list[str] = []
        try:
            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))  # raised in the callback, a failure would be lost
            page.goto(server.url + "/")
            page.wait_for_function("document.querySelectorAll('#model option').length > 0", timeout=20000)
            yield page
        finally:
            context.close()
        assert not errors, f"the page raised: {errors}"


def watch_text(page) -> None:
    """Record every change of the first sample's text as it happens (the test may look too late)."""
    page.evaluate("""() => { window.seen = [];
        new MutationObserver(() => { const t = document.querySelector('.sample .text');
            if (t) window.seen.push(t.textContent.length); })
        .observe(document.getElementById('samples-out'), {subtree: true, childList: true, characterData: true}); }""")


def test_the_page_generates_and_text_streams_in(page, server, tmp_path):
    assert page.text_content("#card-title") == "run" and "char" in page.text_content("#card-facts")
    page.fill("#prime", "the cat ")
    page.fill("#seed", "11")
    page.fill("#samples", "3")
    # longer than the slider goes: a tiny model's few hundred characters can arrive in one piece
    page.evaluate("() => { const l = document.getElementById('length'); l.max = 20000; l.value = 20000; "
                  "l.dispatchEvent(new Event('input')); }")
    watch_text(page)
    page.click("#go")
    page.wait_for_function("document.getElementById('gen-status').textContent.includes('tokens in')", timeout=30000)
    texts = page.eval_on_selector_all(".sample .text", "els => els.map(e => e.textContent)")
    assert len(texts) == 3 and all(len(t) == 20000 for t in texts) and len(set(texts)) == 3
    seen = page.evaluate("window.seen")
    partial = {n for n in seen if 0 < n < 20000}  # the page showed the text before it was whole
    assert len(partial) >= 2 and sorted(seen) == seen and seen[-1] == 20000
    assert page.text_content(".sample h3").endswith("seed 11 · length")
    page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)
    assert (tmp_path / "playground.png").stat().st_size > 10_000


def test_stop_cancels_the_streams(page, server):
    page.evaluate("() => { const l = document.getElementById('length'); l.max = 100000; l.value = 100000; }")
    watch_text(page)
    page.click("#go")
    page.wait_for_function("window.seen.length > 5", timeout=30000)
    page.click("#stop-button")
    page.wait_for_function("document.getElementById('gen-status').textContent === 'stopped'", timeout=10000)
    assert all(len(t) < 100000 for t in page.eval_on_selector_all(".sample .text", "els => els.map(e => e.textContent)"))
    assert wait_for(lambda: metric(server.port, "rnnlm_active_streams", model="run") == 0, timeout=10)


def test_the_inspect_view_colours_each_character(page):
    page.click("button[data-view=inspect]")
    page.fill("#inspect-text", "the cat sat on the mat")
    page.click("#score")
    page.wait_for_function("document.querySelectorAll('#inspect-out span').length === 22", timeout=20000)
    colours = page.eval_on_selector_all("#inspect-out span", "els => els.map(e => e.style.background)")
    assert len(set(colours)) > 3  # surprisal differs from character to character
    page.hover("#inspect-out span:nth-child(5)")
    tip = page.text_content("#tip")
    assert "bits" in tip and len(tip.splitlines()) == 6  # the token, then its top 5
    page.select_option("#colour-by", "unit")
    page.fill("#unit", "3")
    page.click("#score")
    page.wait_for_function("document.getElementById('inspect-summary').textContent.includes('unit 3')", timeout=20000)


def test_the_runs_view_draws_each_run(page):
    page.click("button[data-view=runs]")
    page.wait_for_selector("#runs-out canvas", timeout=20000)
    assert "4 epochs" in page.text_content("#runs-out .legend")


def test_cors_only_for_the_origin_given(server):
    _, headers, _ = request(server.port, "GET", "/v1/models", headers={"Origin": ALLOWED})
    assert headers.get("access-control-allow-origin") == ALLOWED
    _, headers, _ = request(server.port, "GET", "/v1/models", headers={"Origin": "http://other.test"})
    assert "access-control-allow-origin" not in headers
    status, headers, _ = request(server.port, "OPTIONS", "/v1/completions", headers={
        "Origin": ALLOWED, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert status == 200 and headers.get("access-control-allow-origin") == ALLOWED

