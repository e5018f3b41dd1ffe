"""``rnnlm export --html``: the page, opened from disk in a real headless Chromium (Debian's,
driven by Playwright), writes ``rnnlm generate``'s text for the same prime and options at every
cell and level, tokenizes as the library does, streams its text, and fetches nothing."""

from __future__ import annotations

import pytest

from rnnlm.export.page import export_page
from rnnlm.generation.session import GenerationSession
from tests.exporting import MIXED_TEXT, RUNS, chromium_or_skip, loaded_runs

TRICKY = "don't  two  spaces\n\n\ttabs 123 ½ café 日本語 😀 \u00a0nbsp\u3000 \x1c sep xxbos IT'S 'll\r\n"
PRIMES = {"lstm-char": "the cat ", "gru-word": "the dog sat", "rnn-bpe": "Don't stop: 42"}


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("pages")
    done = {name: (run, export_page(run, out / f"{name}.html", "fp32"))
            for name, run in loaded_runs(tmp_path_factory).items()}
    run = done["lstm-char"][0]
    done["int8"] = (run, export_page(run, out / "int8.html", "int8"))
    return done


@pytest.fixture(scope="module")
def browser():
    sync_api = chromium_or_skip()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def open_page(browser):
    opened, errors, requests = [], [], []

    def opener(path):
        page = browser.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.resolve().as_uri())
        page.wait_for_function("window.rnnlmExport && window.rnnlmExport.ready", timeout=30000)
        opened.append(page)
        return page

    yield opener
    for page in opened:
        page.close()
    assert not errors, f"the page raised: {errors}"
    assert requests and all(url.startswith("file://") for url in requests), requests  # nothing from a network


def page_text(page, options: dict) -> str:
    return page.evaluate("(o) => window.rnnlmExport.generate(o).then(r => r.text)", options)


def rnnlm_text(run, prime: str, n: int, **options) -> str:
    return "".join(p.text for p in GenerationSession(run).complete(prime, n, **options))


@pytest.mark.parametrize("name", list(RUNS))
def test_the_pages_text_is_rnnlm_generates(pages, open_page, name):
    run, done = pages[name]
    page = open_page(done.path)
    prime = PRIMES[name]
    greedy = page_text(page, {"prime": prime, "length": 200, "greedy": True})
    assert greedy == rnnlm_text(run, prime, 200, greedy=True) and len(greedy) > 100
    assert page_text(page, {"prime": "", "length": 200, "greedy": True}) == rnnlm_text(run, "", 200, greedy=True)
    sampled = page_text(page, {"prime": prime, "length": 150, "temperature": 0.8, "topK": 5, "seed": 3})
    assert sampled == rnnlm_text(run, prime, 150, temperature=0.8, top_k=5, seed=3) != greedy
    big_seed = 2**64 - 5
    assert page_text(page, {"prime": prime, "length": 150, "seed": str(big_seed)}) == rnnlm_text(run, prime, 150,
                                                                                                   seed=big_seed)


@pytest.mark.parametrize("name", list(RUNS))
def test_the_page_tokenizes_as_the_library(pages, open_page, name):
    run, done = pages[name]
    page = open_page(done.path)
    for text in (MIXED_TEXT, TRICKY, TRICKY.upper()):
        ids = page.evaluate("(t) => window.rnnlmExport.tokenizer.encode(t)", text)
        assert ids == run.tokenizer.encode(text, run.vocab).tolist()
        decoder = run.tokenizer.stream_decoder(run.vocab)  # what generation writes
        assert page.evaluate("(ids) => window.rnnlmExport.tokenizer.decode(ids)", ids) == \
            "".join(decoder.feed(i) for i in ids) + decoder.flush()


def test_the_page_streams_its_text_and_shows_its_card_and_speed(pages, open_page, tmp_path):
    run, done = pages["lstm-char"]
    page = open_page(done.path)
    assert page.text_content("#card-title") == run.name
    facts = page.text_content("#card-facts")
    assert "lstm, 2 × 32" in facts and "fp32" in facts and "bits/char" in facts
    page.fill("#prime", "the cat ")
    page.fill("#length", "3000")
    page.check("#greedy")
    page.evaluate("""() => { window.seen = [];
        new MutationObserver(() => window.seen.push(document.getElementById('written').textContent.length))
        .observe(document.getElementById('output'), {subtree: true, childList: true, characterData: true}); }""")
    page.click("#go")
    page.wait_for_function("document.getElementById('status').textContent.includes('tokens/s')", timeout=60000)
    assert page.text_content("#primed") + page.text_content("#written") == "the cat " + rnnlm_text(
        run, "the cat ", 3000, greedy=True)
    seen = page.evaluate("window.seen")
    assert len({n for n in seen if 0 < n < 3000}) >= 2 and seen == sorted(seen)  # shown before it was whole
    assert page.text_content("#status").startswith("3000 tokens in ")
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)


def test_a_compressed_page_keeps_to_its_stated_tolerance(pages, open_page):
    run, done = pages["int8"]
    cost = done.cost
    assert cost.bits_per_char is not None and cost.compressed_bits_per_char > 0
    page = open_page(done.path)
    assert f"{cost.greedy_agree} of {cost.greedy_tokens} tokens as fp32" in page.text_content("#card-facts")
    text, exact = page_text(page, {"prime": "", "length": 200, "greedy": True}), rnnlm_text(run, "", 200, greedy=True)
    assert text[: cost.greedy_agree] == exact[: cost.greedy_agree]  # a character a token
    assert done.weight_bytes < done.fp32_weight_bytes / 3
