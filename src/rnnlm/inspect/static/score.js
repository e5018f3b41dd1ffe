/* rnnlm score: draws a scoring document (rnnlm.inspect.document) as coloured text.
   rnnlmScore.render(element, doc) fills element. The text is untrusted: it is only ever written
   with textContent, never as markup. */
"use strict";
var rnnlmScore = (function () {
  var SURPRISE_MAX = 8; // nats at which the colour is darkest (p = 0.0003)
  var STRONGEST = 0.85; // opacity of the darkest colour
  var HOT = "230, 60, 30", COLD = "30, 110, 230";
  var CONTEXT = 24; // characters shown either side of a surprising span

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function visible(token) {
    if (token === " ") return "\u2423";
    if (token === "\n") return "\u21b5";
    if (token === "\t") return "\u21e5";
    return token;
  }

  function oneLine(text) { return text.replace(/\n/g, "\u21b5"); }

  function rgba(rgb, strength) {
    return "rgba(" + rgb + ", " + (Math.min(Math.max(strength, 0), 1) * STRONGEST).toFixed(3) + ")";
  }

  function surpriseColour(logprob) {
    return logprob === null ? "transparent" : rgba(HOT, -logprob / SURPRISE_MAX);
  }

  function unitColour(value, range) {
    var d = (value - range.mid) / range.half;
    return rgba(d >= 0 ? HOT : COLD, Math.abs(d));
  }

  function unitRange(values) {
    // white at the middle of the unit's 1st..99th percentiles, full colour at either end: a few
    // outliers do not wash out the rest, and a unit that never changes sign still shows contrast
    var sorted = values.slice().sort(function (a, b) { return a - b; });
    var low = sorted[Math.floor(0.01 * (sorted.length - 1))], high = sorted[Math.ceil(0.99 * (sorted.length - 1))];
    return { low: low, high: high, mid: (low + high) / 2, half: Math.max((high - low) / 2, 1e-6) };
  }

  function markedTokens(tokens, matches) {
    var marked = new Array(tokens.length), m = 0;
    for (var i = 0; i < tokens.length; i++) {
      var t = tokens[i];
      while (m < matches.length && matches[m][1] <= t.start) m++;
      marked[i] = t.end > t.start && m < matches.length && matches[m][0] < t.end;
    }
    return marked;
  }

  function stat(box, label, value) {
    var s = el("span", null, label + " ");
    s.appendChild(el("b", null, value));
    box.appendChild(s);
  }

  function fixed(x, digits) { return Number(x).toFixed(digits); }

  function traceLabel(trace, ranked) {
    var label = "unit " + trace.unit + " (layer " + trace.layer + "/" + trace.layers + ", " + trace.state + ")";
    return ranked && ranked[trace.unit] !== undefined ? label + ", AUC " + fixed(ranked[trace.unit], 3) : label;
  }

  function render(root, doc) {
    root.textContent = "";
    var tokens = doc.tokens, source = doc.text;
    var ranked = {};
    if (doc.feature) doc.feature.units.forEach(function (u) { ranked[u.unit] = u.auc; });

    root.appendChild(el("h1", null, "rnnlm score: " + doc.run));
    var totals = el("div", "totals");
    stat(totals, "characters", doc.characters.toLocaleString("en"));
    stat(totals, "tokens", doc.token_count.toLocaleString("en") + " (" + doc.predicted.toLocaleString("en") +
         " predicted)");
    stat(totals, "total", fixed(doc.total_nats, 1) + " nats");
    stat(totals, "loss", fixed(doc.loss, 4) + " nats/" + (doc.level === "char" ? "char" : "token"));
    stat(totals, "perplexity", fixed(doc.perplexity, 3));
    stat(totals, "bits/char", fixed(doc.bits_per_char, 4));
    root.appendChild(totals);

    var controls = el("div", "controls");
    var pick = el("select");
    pick.appendChild(new Option("surprisal (nats)", "surprisal"));
    doc.traces.forEach(function (trace, i) { pick.appendChild(new Option(traceLabel(trace, ranked), String(i))); });
    var pickLabel = el("label", null, "colour by ");
    pickLabel.appendChild(pick);
    controls.appendChild(pickLabel);
    var underline = null;
    if (doc.feature) {
      underline = el("input");
      underline.type = "checkbox";
      underline.checked = true;
      var underlineLabel = el("label");
      underlineLabel.appendChild(underline);
      underlineLabel.appendChild(document.createTextNode(" underline what "));
      underlineLabel.appendChild(el("code", null, doc.feature.regex));
      underlineLabel.appendChild(document.createTextNode(" matches"));
      controls.appendChild(underlineLabel);
    }
    var legend = el("div", "legend");
    var low = el("span"), bar = el("span", "bar"), high = el("span");
    legend.appendChild(low); legend.appendChild(bar); legend.appendChild(high);
    controls.appendChild(legend);
    root.appendChild(controls);

    var box = el("div", "text");
    var spans = new Array(tokens.length);
    var at = 0;
    tokens.forEach(function (t, i) {
      if (t.start > at) box.appendChild(document.createTextNode(source.slice(at, t.start)));
      if (t.end > t.start) {
        var s = el("span", t.text === "\n" ? "nl" : null, t.text);
        s.dataset.i = String(i);
        box.appendChild(s);
        spans[i] = s;
      }
      at = Math.max(at, t.end);
    });
    if (at < source.length) box.appendChild(document.createTextNode(source.slice(at)));
    root.appendChild(box);

    var marked = doc.feature ? markedTokens(tokens, doc.feature.matches) : null;
    var ranges = doc.traces.map(function (trace) { return unitRange(trace.values); });

    function colour() {
      var mode = pick.value, trace = mode === "surprisal" ? null : doc.traces[Number(mode)];
      var range = trace ? ranges[Number(mode)] : null;
      spans.forEach(function (s, i) {
        if (!s) return;
        s.style.backgroundColor = trace ? unitColour(trace.values[i], range) : surpriseColour(tokens[i].logprob);
        s.classList.toggle("marked", Boolean(marked && underline.checked && marked[i]));
      });
      if (trace) {
        low.textContent = fixed(range.low, 2);
        high.textContent = fixed(range.high, 2);
        bar.style.background = "linear-gradient(to right, " + rgba(COLD, 1) + ", rgba(255, 255, 255, 0), " +
          rgba(HOT, 1) + ")";
      } else {
        low.textContent = "0 nats";
        high.textContent = "\u2265 " + SURPRISE_MAX + " nats";
        bar.style.background = "linear-gradient(to right, rgba(255, 255, 255, 0), " + rgba(HOT, 1) + ")";
      }
    }
    pick.addEventListener("change", colour);
    if (underline) underline.addEventListener("change", colour);
    if (doc.traces.length) pick.value = "0";
    colour();

    var tip = el("div", "tip");
    root.appendChild(tip);
    var shown = null;
    box.addEventListener("mouseover", function (e) {
      var s = e.target;
      if (!s.dataset || s.dataset.i === undefined) return;
      if (shown) shown.classList.remove("hover");
      shown = s;
      s.classList.add("hover");
      fillTip(tip, doc, Number(s.dataset.i), pick.value);
      tip.style.display = "block";
    });
    box.addEventListener("mousemove", function (e) {
      var x = e.clientX + 14, y = e.clientY + 16;
      var w = tip.offsetWidth, h = tip.offsetHeight;
      if (x + w > window.innerWidth - 4) x = Math.max(4, e.clientX - w - 14);
      if (y + h > window.innerHeight - 4) y = Math.max(4, e.clientY - h - 12);
      tip.style.left = x + "px";
      tip.style.top = y + "px";
    });
    box.addEventListener("mouseleave", function () {
      tip.style.display = "none";
      if (shown) shown.classList.remove("hover");
      shown = null;
    });

    if (doc.surprising.length) {
      root.appendChild(el("h2", null, "Most surprising spans"));
      var table = el("table", "list");
      var head = el("tr");
      ["nats", "text", "expected instead"].forEach(function (h) { head.appendChild(el("th", null, h)); });
      table.appendChild(head);
      doc.surprising.forEach(function (sp) {
        var row = el("tr");
        row.appendChild(el("td", "num", fixed(sp.nats, 2)));
        var cell = el("td", "context");
        cell.appendChild(document.createTextNode(oneLine(source.slice(Math.max(0, sp.start - CONTEXT), sp.start))));
        cell.appendChild(el("mark", null, oneLine(sp.text)));
        cell.appendChild(document.createTextNode(oneLine(source.slice(sp.end, sp.end + CONTEXT))));
        row.appendChild(cell);
        row.appendChild(el("td", null, sp.expected === null ? "" : visible(sp.expected)));
        table.appendChild(row);
      });
      root.appendChild(table);
    }

    if (doc.feature) {
      var f = doc.feature;
      root.appendChild(el("h2", null, "Units that separate what " + f.regex + " matches (" + f.marked + " of " +
                          f.tokens + " tokens), layer " + f.layer + " " + f.state));
      var units = el("table", "list");
      var top = el("tr");
      ["unit", "AUC", "r", "mean inside", "mean outside"].forEach(function (h) { top.appendChild(el("th", null, h)); });
      units.appendChild(top);
      f.units.slice(0, 10).forEach(function (u) {
        var row = el("tr");
        [String(u.unit), fixed(u.auc, 3), fixed(u.r, 3), fixed(u.mean_marked, 3), fixed(u.mean_unmarked, 3)]
          .forEach(function (v, j) { row.appendChild(el("td", j ? "num" : null, v)); });
        var index = doc.traces.findIndex(function (t) { return t.unit === u.unit; });
        if (index >= 0) {
          row.className = "pick";
          row.title = "colour the text by this unit";
          row.addEventListener("click", function () { pick.value = String(index); colour(); });
        }
        units.appendChild(row);
      });
      root.appendChild(units);
    }
  }

  function fillTip(tip, doc, i, mode) {
    var t = doc.tokens[i];
    tip.textContent = "";
    var first = el("div");
    first.appendChild(el("code", null, visible(t.text)));
    if (t.token !== t.text) first.appendChild(document.createTextNode(" (read as " + t.token + ")"));
    tip.appendChild(first);
    if (t.logprob === null) {
      tip.appendChild(el("div", null, "the first token: nothing before it to predict it"));
    } else {
      tip.appendChild(el("div", null, fixed(-t.logprob, 2) + " nats, p = " + Math.exp(t.logprob).toPrecision(3)));
    }
    if (mode !== "surprisal") {
      var trace = doc.traces[Number(mode)];
      tip.appendChild(el("div", null, "unit " + trace.unit + ": " + fixed(trace.values[i], 3)));
    }
    if (t.top.length) {
      var table = el("table");
      t.top.forEach(function (alt) {
        var row = el("tr", alt[0] === t.token ? "actual" : null);
        row.appendChild(el("td", "tok", visible(alt[0])));
        row.appendChild(el("td", null, (100 * Math.exp(alt[1])).toFixed(1) + "%"));
        table.appendChild(row);
      });
      tip.appendChild(table);
    }
  }

  return { render: render };
})();
