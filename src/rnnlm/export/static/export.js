// rnnlm's exported page: a recurrent language model (RNN, GRU or LSTM), its tokenizer and its
// sampling in plain JavaScript, reading the JSON in #rnnlm-data. It writes what `rnnlm generate`
// writes: the prime is read one token at a time, each new token is drawn as rnnlm draws it
// (banned tokens never; greedy: the most likely; otherwise the first token whose cumulative
// probability passes a uniform number from Python's own Mersenne Twister, seeded alike).
"use strict";
(function () {
  // ---- weights: base64 of little-endian fp32, fp16, or int8 with a scale per row ----
  function bytes(b64) {
    const s = atob(b64), out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }

  function halfToFloat(h) {
    const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
    if (exp === 0) return sign * frac * Math.pow(2, -24);
    if (exp === 31) return frac ? NaN : sign * Infinity;
    return sign * (1 + frac / 1024) * Math.pow(2, exp - 15);
  }

  function tensor(t) {
    const raw = bytes(t.data), n = t.shape.reduce((a, b) => a * b, 1), out = new Float32Array(n);
    const view = new DataView(raw.buffer);
    if (t.format === "fp32") for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
    else if (t.format === "fp16") for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
    else {
      const scales = tensor({shape: [t.shape[0]], format: "fp32", data: t.scales}), cols = t.shape[1];
      for (let i = 0; i < n; i++) out[i] = view.getInt8(i) * scales[Math.floor(i / cols)];
    }
    return out;
  }

  // ---- the model: embedding -> layers of the cell -> linear head ----
  function matvec(w, rows, cols, x, bias, out) {  // out = W x + bias, W (rows, cols) row-major
    for (let r = 0; r < rows; r++) {
      let s = bias[r];
      const o = r * cols;
      for (let c = 0; c < cols; c++) s += w[o + c] * x[c];
      out[r] = s;
    }
  }

  const sigmoid = (x) => 1 / (1 + Math.exp(-x));

  class Model {
    constructor(spec, tensors) {
      Object.assign(this, {cell: spec.cell, layers: spec.layers, hidden: spec.hidden, emb: spec.emb, vocab: spec.vocab_size});
      const w = {};
      for (const name in tensors) w[name] = tensor(tensors[name]);
      this.embedding = w.embedding;
      this.headW = w["head.w"] || w.embedding;  // tied: the embedding is the head
      this.headB = w["head.b"];
      this.layer = [];
      for (let i = 0; i < this.layers; i++) {
        const size = i === 0 ? this.emb : this.hidden;
        const l = {size, wih: w[`l${i}.w_ih`], whh: w[`l${i}.w_hh`], bih: w[`l${i}.b_ih`], bhh: w[`l${i}.b_hh`]};
        if (this.cell !== "gru") {  // one product of [x, h] with the two matrices side by side
          const rows = l.bih.length, cols = size + this.hidden, both = new Float32Array(rows * cols);
          const bias = new Float64Array(rows);
          for (let r = 0; r < rows; r++) {
            both.set(l.wih.subarray(r * size, (r + 1) * size), r * cols);
            both.set(l.whh.subarray(r * this.hidden, (r + 1) * this.hidden), r * cols + size);
            bias[r] = l.bih[r] + l.bhh[r];
          }
          Object.assign(l, {both, bias, xh: new Float64Array(cols)});
        }
        l.gates = new Float64Array(l.bih.length);
        l.gh = new Float64Array(l.bih.length);
        this.layer.push(l);
      }
    }

    initState() {
      const zeros = () => Array.from({length: this.layers}, () => new Float64Array(this.hidden));
      return {h: zeros(), c: this.cell === "lstm" ? zeros() : null};
    }

    // logits (Float64Array of the vocab) and the new state after one token
    step(token, state) {
      const H = this.hidden;
      let x = this.embedding.subarray(token * this.emb, (token + 1) * this.emb);
      const h = [], c = [];
      this.layer.forEach((l, i) => {
        const hOld = state.h[i], hNew = new Float64Array(H), g = l.gates;
        if (this.cell === "gru") {  // r, z, n as torch's GRU: n = tanh(i_n + r (W_hn h + b_hn))
          matvec(l.wih, 3 * H, l.size, x, l.bih, g);
          matvec(l.whh, 3 * H, H, hOld, l.bhh, l.gh);
          for (let j = 0; j < H; j++) {
            const r = sigmoid(g[j] + l.gh[j]), z = sigmoid(g[H + j] + l.gh[H + j]);
            const n = Math.tanh(g[2 * H + j] + r * l.gh[2 * H + j]);
            hNew[j] = (1 - z) * n + z * hOld[j];
          }
        } else {
          l.xh.set(x);
          l.xh.set(hOld, l.size);
          matvec(l.both, g.length, l.size + H, l.xh, l.bias, g);
          if (this.cell === "rnn") for (let j = 0; j < H; j++) hNew[j] = Math.tanh(g[j]);
          else {  // gates: input, forget, cell, output
            const cNew = new Float64Array(H), cOld = state.c[i];
            for (let j = 0; j < H; j++) {
              cNew[j] = sigmoid(g[H + j]) * cOld[j] + sigmoid(g[j]) * Math.tanh(g[2 * H + j]);
              hNew[j] = sigmoid(g[3 * H + j]) * Math.tanh(cNew[j]);
            }
            c.push(cNew);
          }
        }
        h.push(hNew);
        x = hNew;
      });
      const logits = new Float64Array(this.vocab);
      matvec(this.headW, this.vocab, H, x, this.headB, logits);
      return {logits, state: {h, c: this.cell === "lstm" ? c : null}};
    }
  }

  // ---- the tokenizer: characters, words or byte-level BPE, as rnnlm's ----
  const classOf = (chars) => Array.from(chars, (ch) => `\\u{${ch.codePointAt(0).toString(16)}}`).join("");

  class Tokenizer {
    constructor(spec) {
      this.spec = spec;
      this.stoi = new Map(spec.itos.map((t, i) => [t, i]));
      this.specials = new Set(spec.specials);
      const s = classOf(spec.spaces || "");
      if (spec.level === "word") this.words = new RegExp(`[\\p{L}\\p{N}_]+|[^\\p{L}\\p{N}_${s}]`, "gu");
      if (spec.level === "bpe") {
        // GPT-2's pre-tokenizer: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
        this.words = new RegExp(`'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${s}\\p{L}\\p{N}]+|[${s}]+(?![^${s}])|[${s}]+`, "gu");
        this.byteChars = Array.from(spec.bpe.byte_chars);
        this.charBytes = new Map(this.byteChars.map((ch, b) => [ch, b]));
        this.ranks = new Map(spec.bpe.merges.map(([a, b], rank) => [a + " " + b, rank]));
      }
      this.tokenBytes = spec.itos.map((t) => this.bytesOf(t));
    }

    bytesOf(token) {
      if (this.spec.level !== "bpe" || this.specials.has(token)) return new TextEncoder().encode(token);
      return Uint8Array.from(Array.from(token, (ch) => this.charBytes.get(ch)));
    }

    encode(text) {
      const spec = this.spec, unk = spec.unk_id, id = (t) => (this.stoi.has(t) ? this.stoi.get(t) : unk);
      if (spec.lower) text = text.toLowerCase();
      if (spec.level === "char") return Array.from(text, id);
      if (spec.level === "word") return (text.match(this.words) || []).map(id);
      const ids = [], utf8 = new TextEncoder();
      for (const word of text.match(this.words) || []) {
        const symbols = Array.from(utf8.encode(word), (b) => this.byteChars[b]);
        for (const s of this.merge(symbols)) ids.push(this.stoi.get(s));
      }
      return ids;
    }

    // byte-level BPE of one pre-token: the pair of lowest rank merged, everywhere, until none is left
    merge(symbols) {
      if (this.spec.bpe.ignore_merges && this.stoi.has(symbols.join(""))) return [symbols.join("")];
      while (symbols.length > 1) {
        let best = null, bestRank = Infinity;
        for (let i = 0; i + 1 < symbols.length; i++) {
          const rank = this.ranks.get(symbols[i] + " " + symbols[i + 1]);
          if (rank !== undefined && rank < bestRank) [best, bestRank] = [[symbols[i], symbols[i + 1]], rank];
        }
        if (best === null) break;
        const merged = [];
        for (let i = 0; i < symbols.length; i++) {
          if (i + 1 < symbols.length && symbols[i] === best[0] && symbols[i + 1] === best[1]) {
            merged.push(best[0] + best[1]);
            i++;
          } else merged.push(symbols[i]);
        }
        symbols = merged;
      }
      return symbols;
    }

    // what the model reads first: xxbos then the prime at word level; an empty prime reads empty_prompt
    promptIds(prime) {
      const ids = prime ? this.encode(prime) : [];
      if (this.spec.adds_bos) return [this.spec.bos_id, ...ids];
      return ids.length ? ids : this.spec.empty_prompt.slice();
    }

    decoder() { return new Decoder(this); }

    decode(ids) {
      const d = this.decoder();
      return ids.map((i) => d.feed(i)).join("") + d.flush();
    }
  }

  class Decoder {  // the text each new token adds, as rnnlm's stream decoders write it
    constructor(tokenizer) {
      this.t = tokenizer;
      this.started = false;
      this.utf8 = new TextDecoder("utf-8");
    }

    feed(id) {
      const t = this.t, spec = t.spec, token = spec.itos[id];
      if (spec.level === "bpe") return this.utf8.decode(t.tokenBytes[id], {stream: true});
      if (spec.level === "char") return id === spec.unk_id ? "\ufffd" : t.specials.has(token) ? "" : token;
      if (t.specials.has(token) && id !== spec.unk_id) return "";
      const text = this.started ? " " + token : token;
      this.started = true;
      return text;
    }

    flush() { return this.t.spec.level === "bpe" ? this.utf8.decode() : ""; }
  }

  // ---- Python's random.Random(seed).random(): MT19937 seeded by init_by_array ----
  class PythonRandom {
    constructor(seed) {  // seed: a BigInt >= 0
      const key = [];
      do { key.push(Number(seed & 0xffffffffn)); seed >>= 32n; } while (seed > 0n);
      this.mt = new Uint32Array(624);
      this.initGenrand(19650218);
      const mt = this.mt;
      let i = 1, j = 0;
      for (let k = Math.max(624, key.length); k; k--) {
        const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
        mt[i] = ((mt[i] ^ Math.imul(prev, 1664525)) >>> 0) + key[j] + j;
        i++; j++;
        if (i >= 624) { mt[0] = mt[623]; i = 1; }
        if (j >= key.length) j = 0;
      }
      for (let k = 623; k; k--) {
        const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
        mt[i] = ((mt[i] ^ Math.imul(prev, 1566083941)) >>> 0) - i;
        i++;
        if (i >= 624) { mt[0] = mt[623]; i = 1; }
      }
      mt[0] = 0x80000000;
    }

    initGenrand(s) {
      const mt = this.mt;
      mt[0] = s;
      for (let i = 1; i < 624; i++) mt[i] = Math.imul(1812433253, mt[i - 1] ^ (mt[i - 1] >>> 30)) + i;
      this.index = 624;
    }

    next32() {
      const mt = this.mt;
      if (this.index >= 624) {
        for (let k = 0; k < 624; k++) {
          const y = (mt[k] & 0x80000000) | (mt[(k + 1) % 624] & 0x7fffffff);
          mt[k] = mt[(k + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
        }
        this.index = 0;
      }
      let y = mt[this.index++];
      y ^= y >>> 11;
      y ^= (y << 7) & 0x9d2c5680;
      y ^= (y << 15) & 0xefc60000;
      y ^= y >>> 18;
      return y >>> 0;
    }

    random() {
      const a = this.next32() >>> 5, b = this.next32() >>> 6;
      return (a * 67108864 + b) / 9007199254740992;
    }
  }

  // ---- one draw, as rnnlm.generation.sampling.draw: temperature, then top-k, then the inverse CDF ----
  function draw(logits, s, u) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    if (s.greedy) return best;
    const top = logits[best], scaled = Array.from(logits, (l) => (l - top) / s.temperature);
    if (s.topK && s.topK < scaled.length) {
      const order = scaled.map((v, i) => i).sort((a, b) => scaled[b] - scaled[a] || a - b);
      for (const i of order.slice(s.topK)) scaled[i] = -Infinity;
    }
    const cdf = new Float64Array(scaled.length);
    let total = 0;
    scaled.forEach((v, i) => { total += Math.exp(v); cdf[i] = total; });
    const target = Math.min(u * total, total * (1 - Number.EPSILON));
    let lo = 0, hi = cdf.length - 1;  // the first token whose cdf passes the target
    while (lo < hi) { const mid = (lo + hi) >> 1; if (cdf[mid] > target) hi = mid; else lo = mid + 1; }
    return lo;
  }

  // ---- generation ----
  const data = JSON.parse(document.getElementById("rnnlm-data").textContent);
  const model = new Model(data.model, data.weights.tensors);
  const tokenizer = new Tokenizer(data.tokenizer);
  const banned = data.tokenizer.banned, endId = data.tokenizer.end_id;
  const pause = () => new Promise((resolve) => setTimeout(resolve, 0));
  const YIELD_MS = 40;  // the text is shown (and Stop heard) at least this often

  function randomSeed() {
    const words = crypto.getRandomValues(new Uint32Array(2));
    return (BigInt(words[0] & 0x7fffffff) << 32n) | BigInt(words[1]);
  }

  // options: {prime, length, temperature, topK, greedy, seed}; onText(text) gets each new piece
  async function generate(given, onText = () => {}, stopped = () => false) {
    const options = {prime: "", length: 200, temperature: 1, topK: null, greedy: false, seed: null, ...given};
    const ids = tokenizer.promptIds(options.prime), decoder = tokenizer.decoder();
    ids.forEach((id) => decoder.feed(id));
    const start = performance.now();
    let state = model.initState(), logits = null;
    for (const id of ids) ({logits, state} = model.step(id, state));
    const rng = new PythonRandom(options.seed === undefined || options.seed === null ? randomSeed() : BigInt(options.seed));
    let text = "", tokens = 0, finish = "length", last = performance.now();
    const written = performance.now();
    while (tokens < options.length) {
      banned.forEach((i) => { logits[i] = -Infinity; });
      const token = draw(logits, options, rng.random());
      tokens++;
      if (token === endId) { finish = "end"; break; }
      let piece = decoder.feed(token);
      if (tokens === options.length) piece += decoder.flush();
      text += piece;
      onText(piece);
      if (tokens === options.length) break;
      ({logits, state} = model.step(token, state));
      if (performance.now() - last > YIELD_MS) {
        await pause();
        last = performance.now();
        if (stopped()) { finish = "stopped"; break; }
      }
    }
    const end = performance.now();
    return {text, tokens, finish, prompt_tokens: ids.length, seconds: (end - written) / 1000, total_seconds: (end - start) / 1000};
  }

  // ---- the page ----
  const $ = (id) => document.getElementById(id);
  const fmt = (x, digits) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));

  function showCard() {
    const card = data.card, w = data.weights, cost = data.cost;
    $("card-title").textContent = card.name;
    const size = w.format === "fp32" ? `${(w.bytes / 1e6).toFixed(2)} MB`
      : `${(w.bytes / 1e6).toFixed(2)} MB (fp32: ${(w.fp32_bytes / 1e6).toFixed(2)} MB)`;
    const bits = cost.bits_per_char === null ? (w.format === "fp32" ? "none (exact)" : "not measured")
      : `${fmt(cost.bits_per_char, 4)} → ${fmt(cost.compressed_bits_per_char, 4)} bits/char`;
    const facts = [
      ["data", card.data], ["level", card.level], ["model", `${card.cell}, ${card.layers} × ${card.hidden}, emb ${card.emb}`],
      ["parameters", card.parameters.toLocaleString("en")], ["vocab", card.vocab_size.toLocaleString("en")],
      ["bits/char", card.best_bits_per_char === null ? "–" : `${fmt(card.best_bits_per_char, 4)} (validation, epoch ${card.best_epoch})`],
      ["weights", `${w.format}, ${size}`], ["cost", bits],
      ["greedy", `${cost.greedy_agree} of ${cost.greedy_tokens} tokens as fp32`],
    ];
    for (const [k, v] of facts) {
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = k;
      dd.textContent = v;
      $("card-facts").append(dt, dd);
    }
  }

  function readOptions() {
    const seedText = $("seed").value.trim();
    if (seedText && !/^\d{1,20}$/.test(seedText) || seedText && BigInt(seedText) >= 1n << 64n) throw new Error("seed: a whole number in 0..2^64-1");
    const length = parseInt($("length").value, 10), topK = parseInt($("top-k").value, 10);
    if (!(length >= 1 && length <= 100000)) throw new Error("length: 1..100000 tokens");
    return {prime: $("prime").value, length, temperature: Number($("temperature").value), topK: topK > 0 ? topK : null,
            greedy: $("greedy").checked, seed: seedText ? BigInt(seedText) : null};
  }

  let stop = false;
  async function onGenerate() {
    let options;
    try { options = readOptions(); } catch (e) { $("status").textContent = e.message; return; }
    stop = false;
    $("go").disabled = true;
    $("stop-button").disabled = false;
    $("primed").textContent = options.prime;
    const out = $("written");
    out.textContent = "";
    $("status").textContent = "writing…";
    const result = await generate(options, (piece) => out.append(piece), () => stop);
    const rate = result.tokens / Math.max(result.seconds, 1e-9);
    $("status").textContent = result.finish === "stopped" ? "stopped"
      : `${result.tokens} tokens in ${result.seconds.toFixed(2)} s (${rate.toFixed(0)} tokens/s) · ${result.finish}`;
    $("go").disabled = false;
    $("stop-button").disabled = true;
  }

  showCard();
  $("temperature").addEventListener("input", () => { $("temperature-value").textContent = Number($("temperature").value).toFixed(2); });
  $("go").addEventListener("click", onGenerate);
  $("stop-button").addEventListener("click", () => { stop = true; });
  window.rnnlmExport = {generate, tokenizer, model, draw, PythonRandom, ready: true};
})();
