// The rnnlm playground: plain JavaScript over the server's own API (nothing from elsewhere).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: [], model: null, abort: null, runs: {}, runsTimer: null };

// --- the API, with the key when the server asks for one

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = localStorage.getItem("rnnlm-api-key");
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

async function api(path, body, signal) {
  const response = await fetch(path, body === undefined ? { headers: headers(), signal }
    : { method: "POST", headers: headers(), body: JSON.stringify(body), signal });
  if (response.status === 401) {
    $("key-box").hidden = false;
    throw new Error("this server needs an API key: type it in the box at the top right");
  }
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try { message = (await response.json()).error.message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function notice(text) {
  $("notice").textContent = text || "";
  $("notice").hidden = !text;
}

// --- models and their cards

async function loadModels() {
  try {
    const list = await (await api("/v1/models")).json();
    state.models = list.data;
    $("model").replaceChildren(...list.data.map((m) => new Option(m.id, m.id)));
    notice("");
    selectModel(list.data[0] && list.data[0].id);
    pollRuns();
  } catch (e) {
    notice(e.message);
  }
}

function selectModel(id) {
  state.model = state.models.find((m) => m.id === id) || null;
  if (!state.model) return;
  const c = state.model.card;
  $("card-title").textContent = state.model.id;
  const fmt = (x, d) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));
  const facts = [
    ["data", c.data], ["level", c.level], ["model", `${c.cell} ${c.layers}×${c.hidden}, emb ${c.emb}`],
    ["vocab", c.vocab_size.toLocaleString()], ["parameters", c.parameters.toLocaleString()],
    ["epochs", c.epochs], ["best valid loss", fmt(c.best_valid_loss, 4)], ["bits/char", fmt(c.best_bits_per_char, 3)],
  ];
  $("card-facts").replaceChildren(...facts.flatMap(([k, v]) => {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    return [dt, dd];
  }));
  $("samples").max = c.documents ? 16 : 8;
  if (c.documents && Number($("samples").value) < 10) $("samples").value = 10;
  $("top-k").max = Math.min(c.vocab_size, 200);
  $("layer").max = c.layers; $("layer").value = c.layers;
  $("unit").max = c.hidden - 1;
  drawCurve($("card-curve"), (state.runs[id] || {}).metrics || []);
}

// --- a loss curve on a canvas

function drawCurve(canvas, rows) {
  const g = canvas.getContext("2d"), w = canvas.width, h = canvas.height, pad = 28;
  g.clearRect(0, 0, w, h);
  g.font = "11px system-ui"; g.fillStyle = "#5b6475";
  const series = [["train_loss", "#2f6fde"], ["valid_loss", "#d9534f"]]
    .map(([key, colour]) => [rows.filter((r) => key in r).map((r, i) => [r.epoch ?? i + 1, r[key]]), colour])
    .filter(([points]) => points.length);
  if (!series.length) { g.fillText("no metrics yet", pad, h / 2); return; }
  const all = series.flatMap(([p]) => p);
  const x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]), x0 + 1);
  const y0 = Math.min(...all.map((p) => p[1])), y1 = Math.max(...all.map((p) => p[1]), y0 + 1e-9);
  const X = (x) => pad + (x - x0) / (x1 - x0) * (w - pad - 8);
  const Y = (y) => h - pad + 6 - (y - y0) / (y1 - y0) * (h - pad - 8);
  g.strokeStyle = "#d9dde5"; g.beginPath(); g.moveTo(pad, 4); g.lineTo(pad, h - pad + 6); g.lineTo(w - 4, h - pad + 6); g.stroke();
  g.fillText(y1.toFixed(2), 0, 12); g.fillText(y0.toFixed(2), 0, h - pad + 6);
  g.fillText("epoch " + x0, pad, h - 6); g.fillText(String(x1), w - 20, h - 6);
  for (const [points, colour] of series) {
    g.strokeStyle = colour; g.lineWidth = 2; g.beginPath();
    points.forEach(([x, y], i) => (i ? g.lineTo(X(x), Y(y)) : g.moveTo(X(x), Y(y))));
    g.stroke();
    if (points.length === 1) { g.fillStyle = colour; g.fillRect(X(points[0][0]) - 2, Y(points[0][1]) - 2, 4, 4); g.fillStyle = "#5b6475"; }
  }
}

// --- generation: one streamed request, n choices side by side

function sliders() {
  const show = { temperature: (v) => Number(v).toFixed(2), "top-k": (v) => (Number(v) ? v : "off"),
                 "top-p": (v) => Number(v).toFixed(2), length: (v) => v };
  for (const [id, f] of Object.entries(show)) {
    const update = () => { $(id + "-out").textContent = f($(id).value); };
    $(id).addEventListener("input", update); update();
  }
}

async function generate() {
  if (!state.model) return;
  if (state.model.card.documents) return generateItems();
  const samples = Math.max(1, Math.min(8, Number($("samples").value) || 1));
  const seed = $("seed").value === "" ? Math.floor(Math.random() * 2 ** 31) : Number($("seed").value);
  const prime = $("prime").value;
  const body = { model: state.model.id, prompt: prime, n: samples, stream: true, seed,
                 max_tokens: Number($("length").value), temperature: Number($("temperature").value),
                 top_p: Number($("top-p").value), stream_options: { include_usage: true } };
  if (Number($("top-k").value)) body.top_k = Number($("top-k").value);
  if ($("stop").value) body.stop = $("stop").value.replace(/\\n/g, "\n");
  const boxes = [];
  $("samples-out").replaceChildren(...Array.from({ length: samples }, (_, i) => {
    const card = document.createElement("div"); card.className = "card sample running";
    const title = document.createElement("h3"); title.textContent = `sample ${i + 1} · seed ${seed + i}`;
    const pre = document.createElement("pre");
    const p = document.createElement("span"); p.className = "prompt"; p.textContent = prime;
    const out = document.createElement("span"); out.className = "text";
    const text = document.createTextNode(""); out.append(text);
    pre.append(p, out); card.append(title, pre);
    boxes.push({ card, title, text });
    return card;
  }));
  state.abort = new AbortController();
  $("go").disabled = true; $("stop-button").disabled = false;
  $("gen-status").textContent = "writing…";
  const started = performance.now();
  let tokens = 0;
  try {
    const response = await api("/v1/completions", body, state.abort.signal);
    const reader = response.body.getReader(), decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      const events = buffer.split("\n\n");  // a read may hold many events when the page falls behind
      buffer = events.pop();  // the last one is not whole yet
      const added = boxes.map(() => []);  // each sample's text is added once a read: no copy of it per event
      try {
        for (const event of events) {
          if (!event.startsWith("data: ")) continue;
          const data = event.slice(6);
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          if (chunk.usage) tokens = chunk.usage.completion_tokens;
          for (const c of chunk.choices) {
            added[c.index].push(c.text);
            if (c.finish_reason) {
              boxes[c.index].card.classList.remove("running");
              boxes[c.index].title.textContent += ` · ${c.finish_reason}`;
            }
          }
        }
      } finally {
        boxes.forEach((box, i) => added[i].length && box.text.appendData(added[i].join("")));
      }
    }
    const seconds = (performance.now() - started) / 1000;
    $("gen-status").textContent = `${tokens} tokens in ${seconds.toFixed(2)} s`;
  } catch (e) {
    $("gen-status").textContent = e.name === "AbortError" ? "stopped" : e.message;
  } finally {
    boxes.forEach((b) => b.card.classList.remove("running"));
    $("go").disabled = false; $("stop-button").disabled = true;
    state.abort = null;
  }
}

// --- a list's model: each sample one item, listed with its verdict (new, in training, in validation)

async function generateItems() {
  const samples = Math.max(1, Math.min(16, Number($("samples").value) || 1));
  const seed = $("seed").value === "" ? Math.floor(Math.random() * 2 ** 31) : Number($("seed").value);
  const body = { model: state.model.id, prompt: $("prime").value, n: samples, seed,
                 max_tokens: Number($("length").value), temperature: Number($("temperature").value),
                 top_p: Number($("top-p").value) };
  if (Number($("top-k").value)) body.top_k = Number($("top-k").value);
  state.abort = new AbortController();
  $("go").disabled = true; $("stop-button").disabled = false;
  $("gen-status").textContent = "writing…";
  try {
    const done = await (await api("/v1/completions", body, state.abort.signal)).json();
    const counts = { "new": 0, "in training": 0, "in validation": 0 };
    const rows = done.choices.map((c) => {
      const row = document.createElement("li");
      const verdict = document.createElement("span");
      verdict.className = "verdict " + (c.verdict || "").replace(/ /g, "-");
      verdict.textContent = c.verdict || "–";
      if (c.verdict in counts) counts[c.verdict] += 1;
      const text = document.createElement("span"); text.className = "item";
      text.textContent = body.prompt + c.text + (c.finish_reason === "length" ? " …" : "");
      row.append(verdict, text);
      return row;
    });
    const list = document.createElement("ol"); list.className = "card items"; list.append(...rows);
    $("samples-out").replaceChildren(list);
    $("gen-status").textContent = `${samples} samples: ` + Object.entries(counts).map(([v, n]) => `${n} ${v}`).join(", ")
      + ` · seeds ${seed}–${seed + samples - 1}`;
  } catch (e) {
    $("gen-status").textContent = e.name === "AbortError" ? "stopped" : e.message;
  } finally {
    $("go").disabled = false; $("stop-button").disabled = true;
    state.abort = null;
  }
}

// --- inspect: each token coloured by its surprisal or by a hidden unit

function colour(t) { // t in [0, 1]: pale yellow to red
  const hue = 55 - 55 * t, light = 93 - 38 * t;
  return `hsl(${hue}, 95%, ${light}%)`;
}

function diverging(v, scale) { // a unit's value: blue below zero, red above
  const t = Math.max(-1, Math.min(1, v / (scale || 1)));
  return t >= 0 ? `hsla(0, 85%, 55%, ${t * 0.75})` : `hsla(215, 85%, 55%, ${-t * 0.75})`;
}

async function inspect() {
  if (!state.model) return;
  const byUnit = $("colour-by").value === "unit";
  const body = { model: state.model.id, text: $("inspect-text").value, top: 5 };
  if (byUnit) { body.layer = Number($("layer").value); body.unit = Number($("unit").value); }
  $("inspect-status").textContent = "scoring…";
  try {
    const s = await (await api("/v1/score", body)).json();
    const nats = s.tokens.map((t) => (t.logprob === null ? 0 : -t.logprob));
    const top = Math.max(...nats, 1e-9);
    const scale = byUnit ? Math.max(...s.tokens.map((t) => Math.abs(t.value)), 1e-9) : 1;
    const spans = s.tokens.map((t, i) => {
      const span = document.createElement("span");
      span.textContent = t.text;
      span.style.background = byUnit ? diverging(t.value, scale) : colour(nats[i] / top);
      span.dataset.i = i;
      return span;
    });
    const out = $("inspect-out");
    out.replaceChildren();
    // the spaces between words at word level are part of the text, not of a token
    let at = 0;
    s.tokens.forEach((t, i) => {
      if (t.start > at) out.append(document.createTextNode(s.text.slice(at, t.start)));
      if (t.end > t.start) out.append(spans[i]); // xxbos, which starts a word-level text, shows nothing
      at = Math.max(at, t.end);
    });
    if (at < s.text.length) out.append(document.createTextNode(s.text.slice(at)));
    out.onmousemove = (e) => showTip(e, s, byUnit);
    out.onmouseleave = () => { $("tip").hidden = true; };
    $("inspect-summary").textContent = `${s.predicted} tokens predicted · ${s.bits_per_char.toFixed(3)} bits/char · `
      + `loss ${s.loss.toFixed(4)} nats/token · perplexity ${s.perplexity.toFixed(2)}`
      + (s.trace ? ` · colour: ${s.trace.kind} of unit ${s.trace.unit}, layer ${s.trace.layer}` : " · colour: surprisal");
    $("inspect-status").textContent = "";
  } catch (e) {
    $("inspect-status").textContent = e.message;
  }
}

function showTip(e, s, byUnit) {
  const i = e.target.dataset && e.target.dataset.i;
  if (i === undefined) { $("tip").hidden = true; return; }
  const t = s.tokens[Number(i)];
  const lines = [JSON.stringify(t.text) + (t.logprob === null ? "  (first: not predicted)"
    : `  ${(-t.logprob / Math.LN2).toFixed(2)} bits, p=${Math.exp(t.logprob).toFixed(3)}`)];
  if (byUnit) lines.push(`unit value ${t.value.toFixed(3)}`);
  for (const [tok, lp] of t.top) lines.push(`${JSON.stringify(tok).padEnd(14)} ${Math.exp(lp).toFixed(3)}`);
  const tip = $("tip");
  tip.textContent = lines.join("\n");
  tip.style.left = e.clientX + 14 + "px"; tip.style.top = e.clientY + 14 + "px";
  tip.hidden = false;
}

// --- runs: each loaded run's metrics, polled while the page is open

async function pollRuns() {
  clearTimeout(state.runsTimer);
  try {
    const runs = await (await api("/v1/runs")).json();
    for (const run of runs.data) state.runs[run.model] = run;
    drawRuns();
    if (state.model) drawCurve($("card-curve"), (state.runs[state.model.id] || {}).metrics || []);
  } catch (e) { /* shown by the next call that fails */ }
  state.runsTimer = setTimeout(pollRuns, 5000);
}

function drawRuns() {
  const out = $("runs-out");
  for (const run of Object.values(state.runs)) {
    let card = out.querySelector(`[data-model="${CSS.escape(run.model)}"]`);
    if (!card) {
      card = document.createElement("div"); card.className = "card"; card.dataset.model = run.model;
      const h = document.createElement("h2"); h.textContent = run.model;
      const canvas = document.createElement("canvas"); canvas.width = 400; canvas.height = 200;
      const p = document.createElement("p"); p.className = "legend";
      card.append(h, canvas, p); out.append(card);
    }
    drawCurve(card.querySelector("canvas"), run.metrics);
    const last = run.metrics[run.metrics.length - 1] || {};
    const ago = run.updated ? Math.max(0, Date.now() / 1000 - run.updated) : null;
    const legend = card.querySelector("p");
    legend.innerHTML = '<b style="background:#2f6fde"></b>train <b style="background:#d9534f"></b>valid ';
    legend.append(` · ${run.metrics.length} epochs` + (last.valid_loss !== undefined ? `, last valid ${last.valid_loss.toFixed(4)}` : "")
      + (ago === null ? "" : ` · updated ${ago < 90 ? Math.round(ago) + " s" : Math.round(ago / 60) + " min"} ago`));
  }
}

// --- wiring

function show(view) {
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.view === view));
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== view; });
  if (view === "runs") pollRuns();
}

function unitControls() {
  const byUnit = $("colour-by").value === "unit";
  document.querySelectorAll(".unit-only").forEach((el) => { el.hidden = !byUnit; });
}

document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => show(t.dataset.view)));
$("model").addEventListener("change", (e) => selectModel(e.target.value));
$("go").addEventListener("click", generate);
$("stop-button").addEventListener("click", () => state.abort && state.abort.abort());
$("prime").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) generate(); });
$("score").addEventListener("click", inspect);
$("colour-by").addEventListener("change", unitControls);
$("api-key").value = localStorage.getItem("rnnlm-api-key") || "";
$("api-key").addEventListener("change", (e) => { localStorage.setItem("rnnlm-api-key", e.target.value); loadModels(); });
if (localStorage.getItem("rnnlm-api-key")) $("key-box").hidden = false;
sliders();
unitControls();
loadModels();
