"use strict";
(function () {
  const D = JSON.parse(document.getElementById("grid-data").textContent);
  const R = D.rows.length, C = D.cols.length;
  const GLYPH = { measured: "✓", vendor: "✓", bad: "✗", "not-installable": "–", untested: "·" };
  const LABEL = { measured: "measured good", vendor: "vendor-documented good", bad: "known-bad",
    "not-installable": "not installable", untested: "untested" };
  const O = { state: 0, reason: 1, decided: 2, rules: 3, checks: 4, declared: 5, evidence: 6, caveats: 7,
    warnings: 8, undecided: 9, note: 10, basis: 11 };
  const view = { python: "best", tier: 0, driver: "", construct: "" };
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  let cells = [], focused = [0, 0], openCell = null;

  function cmpVersion(a, b) {
    const x = String(a).split(/[^0-9]+/).filter(Boolean).map(Number);
    const y = String(b).split(/[^0-9]+/).filter(Boolean).map(Number);
    for (let k = 0; k < Math.max(x.length, y.length); k++) {
      const d = (x[k] || 0) - (y[k] || 0);
      if (d) return d;
    }
    return 0;
  }

  function tierFor(driver) {
    if (!/\d/.test(driver || "")) return 0;
    for (let k = 1; k < D.tiers.length; k++) if (cmpVersion(driver, D.tiers[k][1]) >= 0) return k;
    return D.tiers.length - 1;
  }

  // What a cell shows under the current filters: the outcome for the build the driver tier picks, on the chosen
  // Python (or the one that reads best, computed in Python), or "not installable: Python" when it has none.
  function lookup(i, j) {
    const col = D.cols[j], cell = D.cells[i * C + j], row = D.rows[i];
    const [slot, mark] = col.tiers[view.tier];
    const p = view.python === "best" ? cell[0][slot] : D.pythons.indexOf(view.python);
    const e = cell[1];
    let outcome = null;
    for (let k = 0; k < e.length; k += 3) if (e[k] === p && e[k + 1] === slot) { outcome = D.outcomes[e[k + 2]]; break; }
    const torch = cell[2] ? cell[2][0] : col.t, tv = cell[2] ? cell[2][1] : col.tv;
    if (!outcome) {
      let note;
      if (view.python === "best") note = `no Python minor both support: aimet-torch ${row.v} requires Python ${row.rp}, torch ${col.s} has wheels for ${col.py.join(", ")}`;
      else if (!col.py.includes(view.python)) note = `torch ${col.s} has no wheel for Python ${view.python} (only ${col.py.join(", ")})`;
      else note = `aimet-torch ${row.v} requires Python ${row.rp}`;
      outcome = ["not-installable", "Python", "req.python", [], ["req.python"], [], [], [], [], [], note, null];
      return { outcome, python: view.python === "best" ? null : view.python, variant: null, mark, torch, tv, pip: null };
    }
    const variant = col.slots[slot];
    return { outcome, python: D.pythons[p], variant, mark, torch, tv, pip: pip(row, torch, tv, variant) };
  }

  function pip(row, torch, tv, variant) {
    const local = variant ? "+" + variant : "";
    const pins = [`aimet-torch==${row.v}`, `torch==${torch}${local}`, `torchvision==${tv}${local}`];
    if (row.numpy) pins.push("numpy" + (/^[<>=!~]/.test(row.numpy) ? row.numpy : "==" + row.numpy));
    let line = "python -m pip install " + pins.map((p) => `"${p}"`).join(" ");
    if (variant) line += ` --extra-index-url ${D.meta.index}/${variant}`;
    return line;
  }

  function flagged(outcome) {
    if (!view.construct) return [];
    return outcome[O.caveats].filter((id) => D.rules[id] && D.rules[id].construct === view.construct);
  }

  function word(outcome) {
    const s = outcome[O.state];
    return s === "measured" ? "measured" : s === "vendor" ? "vendor" : s === "untested" ? "" : outcome[O.reason];
  }

  function proposed(entry) {  // a `matrix refresh` proposal nobody reviewed
    return entry.p ? `<sup class="proposed" title="${esc(D.proposed)}">*</sup>` : "";
  }

  function buildTable() {
    const head = $("grid-head");
    const tr = document.createElement("tr");
    tr.innerHTML = '<th class="corner" scope="col">aimet-torch <span class="sub">↓ release · torch series →</span></th>' +
      D.cols.map((c, j) => `<th scope="col" id="col-${j}">torch ${esc(c.s)}${proposed(c)}<span class="sub">${esc(c.t)}</span><span class="sub build" id="build-${j}"></span></th>`).join("");
    head.appendChild(tr);
    const table = $("grid");
    let body = null, line = null;
    for (let i = 0; i < R; i++) {
      const row = D.rows[i];
      if (row.line !== line) {
        body = document.createElement("tbody");
        body.className = "group";
        table.appendChild(body);
      }
      const r = document.createElement("tr");
      const label = row.line !== line ? `${row.line}.x` : "";
      line = row.line;
      r.innerHTML = `<th scope="row" id="row-${i}"><span class="line">${esc(label)}</span>${esc(row.v)}${proposed(row)}</th>`;
      const tds = [];
      for (let j = 0; j < C; j++) {
        const td = document.createElement("td");
        td.setAttribute("role", "gridcell");
        td.tabIndex = -1;
        td.dataset.i = i;
        td.dataset.j = j;
        td.dataset.aimet = row.v;
        td.dataset.torch = D.cols[j].s;
        r.appendChild(td);
        tds.push(td);
      }
      cells.push(tds);
      body.appendChild(r);
    }
    cells[0][0].tabIndex = 0;
  }

  function paint() {
    const counts = { measured: 0, vendor: 0, bad: 0, "not-installable": 0, untested: 0 };
    let marked = 0;
    for (let j = 0; j < C; j++) {
      const [slot, mark] = D.cols[j].tiers[view.tier];
      const build = mark === "^" ? "no build^" : (D.cols[j].slots[slot] || D.cols[j].cuda || "cpu") + mark;
      $("build-" + j).textContent = build;
      $("build-" + j).title = mark === "^" ? `no CUDA build of torch ${D.cols[j].s} runs on this driver (needs >= ${D.cols[j].floor})`
        : mark === "~" ? "PyPI's default build needs a newer driver: this build from the PyTorch index runs" : "PyPI's default CUDA build";
    }
    for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) {
      const td = cells[i][j], look = lookup(i, j), o = look.outcome, state = o[O.state], flags = flagged(o);
      counts[state]++;
      if (flags.length) marked++;
      td.className = "s-" + state + (flags.length ? " flagged" : "") + (look.mark === "^" ? " too-old" : "") +
        (openCell && openCell[0] === i && openCell[1] === j ? " current" : "");
      td.dataset.state = state;
      td.dataset.reason = o[O.reason] || "";
      td.dataset.flagged = flags.join(" ");
      td.innerHTML = `<span class="g" aria-hidden="true">${GLYPH[state]}</span>${esc(word(o))}` +
        (flags.length ? '<sup class="flag" title="a model-scope rule about this construct applies">!</sup>' : "") +
        (look.mark === "^" ? '<sup title="no CUDA build of this torch runs on the driver">^</sup>' : "");
      td.setAttribute("aria-label", `aimet-torch ${D.rows[i].v} with torch ${D.cols[j].s}: ${LABEL[state]}` +
        (o[O.reason] && state !== "measured" && state !== "vendor" ? ` (${o[O.reason]})` : "") +
        (look.python ? `, Python ${look.python}` : "") + (flags.length ? ", flagged for the construct" : "") +
        (look.mark === "^" ? ", needs a newer driver" : ""));
    }
    const legend = $("legend");
    legend.innerHTML = ["measured", "vendor", "bad", "not-installable", "untested"].map((s) =>
      `<li><span class="chip s-${s} badge">${GLYPH[s]} ${s === "bad" ? "WORD" : s === "not-installable" ? "WORD" : s === "untested" ? "" : s}</span>` +
      `<span>${esc(D.legend[s])} (<b data-count="${s}">${counts[s]}</b>)</span></li>`).join("") +
      (view.construct ? `<li><span class="chip flagged-chip" style="box-shadow: inset 0 0 0 3px var(--flag)">!</span><span>a model-scope rule about <b>${esc(view.construct)}</b> applies (<b data-count="flagged">${marked}</b>)</span></li>` : "") +
      (view.tier ? `<li><span class="chip">^ / ~</span><span>^ no CUDA build of that torch runs on this driver; ~ a build for an older CUDA from the PyTorch index</span></li>` : "");
    if (openCell) renderPanel(openCell[0], openCell[1]);
    writeHash();
  }

  function link(ref) {
    if (/^https?:\/\//.test(ref)) return `<a href="${esc(ref)}" rel="noopener noreferrer">${esc(ref)}</a>`;
    if (ref.startsWith("evidence:")) return `<a href="#ev-${esc(ref.slice(9))}" data-ev="${esc(ref.slice(9))}">${esc(ref)}</a>`;
    return `<code>${esc(ref)}</code>`;
  }

  function ruleHtml(id, decides) {
    const r = D.rules[id];
    if (!r) return `<div class="rule"><span class="rid">${esc(id)}</span></div>`;
    return `<div class="rule${decides ? " decides" : ""}" data-rule="${esc(id)}"><div><b>${esc(r.title)}</b></div>` +
      `<div class="rid">${esc(id)} · ${esc(r.kind === "good" ? "known-good" : "known-bad")}, ${esc(r.severity)}` +
      `${r.construct ? ", models with " + esc(r.construct) : ""} · when ${esc(r.when)}</div>` +
      `<p>${esc(r.summary)}</p>` +
      (r.fixes.length ? `<ul>${r.fixes.map((f) => `<li>fix: ${esc(f)}</li>`).join("")}</ul>` : "") +
      `<ul>${r.sources.map((s) => `<li>${esc(s[0])}: ${link(s[1])}${s[2] ? " — " + esc(s[2]) : ""}</li>`).join("")}</ul></div>`;
  }

  function checkHtml(id, row) {
    const pins = { "req.python": `Requires-Python ${row.rp}`, "req.torch": row.torch ? `torch ${row.torch}` : "",
      "req.torchvision": row.torchvision ? `torchvision ${row.torchvision}` : "", "req.numpy": row.numpy ? `numpy ${row.numpy}` : "" };
    return `<li><span class="rid">${esc(id)}</span> ${esc(D.checks[id] || id)}${pins[id] ? `: aimet-torch ${esc(row.v)} declares ${esc(pins[id])}` : ""}</li>`;
  }

  function evidenceHtml(id) {
    const e = D.evidence[id] || {};
    return `<li id="ev-${esc(id)}" tabindex="-1"><span class="rid">${esc(id)}</span> ${esc(e.date || "")} · ${esc(e.outcome || "")}<br>` +
      `${esc(e.summary || "")}${e.file ? `<br><code>${esc(e.file)}</code>` : ""}</li>`;
  }

  // An evidence: link shows its record in the panel's evidence list (added there when only a caveat cites it),
  // without touching the URL, which keeps the filters.
  function showEvidence(id) {
    let item = document.getElementById("ev-" + id);
    if (!item) {
      $("panel-evidence").insertAdjacentHTML("beforeend", evidenceHtml(id));
      $("panel-evidence-head").hidden = false;
      item = document.getElementById("ev-" + id);
    }
    item.scrollIntoView({ block: "nearest" });
    item.focus();
  }

  function renderPanel(i, j) {
    const row = D.rows[i], col = D.cols[j], look = lookup(i, j), o = look.outcome, state = o[O.state];
    const flags = flagged(o);
    let h = `<h2 id="panel-title" tabindex="-1">aimet-torch ${esc(row.v)} × torch ${esc(look.torch)}</h2>` +
      `<p><span class="badge s-${state}" id="panel-state" data-state="${state}">${GLYPH[state]} ${esc(LABEL[state])}${o[O.reason] ? " — " + esc(o[O.reason]) : ""}</span></p>` +
      `<p class="rid">Python ${esc(look.python || "–")} · torchvision ${esc(look.tv)} · CUDA build ${esc(look.variant || col.cuda || "cpu")}` +
      `${look.variant ? " (PyTorch index)" : " (PyPI default)"}${o[O.decided] ? " · decided by " + esc(o[O.decided]) : ""}</p>`;
    if (o[O.note]) h += `<p>${esc(o[O.note])}</p>`;
    if (o[O.basis]) h += `<p class="rid" id="panel-basis">basis: ${esc(o[O.basis])}</p>`;
    if (look.mark === "^") h += `<p><b>Driver:</b> no CUDA build of torch ${esc(col.s)} runs on this driver (needs >= ${esc(col.floor)}).</p>`;
    else if (look.mark === "~") h += `<p><b>Driver:</b> PyPI's default build needs a newer driver; the ${esc(look.variant)} build runs on it.</p>`;
    if (look.pip) h += `<h3>Install this set${state === "not-installable" ? " (pip refuses it)" : state === "bad" ? " (installs, but known-bad)" : ""}</h3>` +
      `<pre id="panel-pip">${esc(look.pip)}</pre><button type="button" class="copy" id="panel-copy">Copy</button>`;
    const deciding = o[O.rules];
    if (deciding.length) h += `<h3>${state === "bad" || state === "not-installable" ? "Known-bad rules" : "Known-good rules"}</h3>` +
      deciding.map((id) => ruleHtml(id, id === o[O.decided])).join("");
    if (o[O.declared].length) h += `<h3>Declared by the release</h3><ul>${o[O.declared].map((d) => `<li>${esc(d)}</li>`).join("")}</ul>`;
    if (o[O.checks].length) h += `<h3>Failing requirement checks</h3><ul>${o[O.checks].map((c) => checkHtml(c, row)).join("")}</ul>`;
    h += `<h3 id="panel-evidence-head"${o[O.evidence].length ? "" : " hidden"}>Evidence (our probe runs)</h3>` +
      `<ul id="panel-evidence">${o[O.evidence].map(evidenceHtml).join("")}</ul>`;
    if (state === "untested") h += "<p>No rule marks this set good or bad. <code>qatdoctor verify --reproduce</code> or <code>qatdoctor sweep</code> can measure it.</p>";
    if (o[O.warnings].length) h += `<h3>Warnings</h3>` + o[O.warnings].map((id) => ruleHtml(id, false)).join("");
    if (o[O.undecided].length) h += `<h3>Also depends on the host (not decided by versions)</h3><ul>${o[O.undecided].map((id) =>
      `<li><span class="rid">${esc(id)}</span> ${esc(D.rules[id] ? D.rules[id].title : D.checks[id] || "")}</li>`).join("")}</ul>`;
    if (o[O.caveats].length) h += `<h3>Model-scope caveats (for models with these constructs)</h3>` +
      o[O.caveats].map((id) => ruleHtml(id, flags.includes(id))).join("");
    $("panel-body").innerHTML = h;
    const copy = $("panel-copy");
    if (copy) copy.addEventListener("click", () => {
      if (navigator.clipboard) navigator.clipboard.writeText(look.pip).then(() => { copy.textContent = "Copied"; }, () => {});
    });
  }

  function open(i, j) {
    if (openCell) cells[openCell[0]][openCell[1]].classList.remove("current");
    openCell = [i, j];
    cells[i][j].classList.add("current");
    renderPanel(i, j);
    $("panel").hidden = false;
    $("panel-title").focus();
    writeHash();
  }

  function close() {
    if (!openCell) return;
    const [i, j] = openCell;
    cells[i][j].classList.remove("current");
    openCell = null;
    $("panel").hidden = true;
    focus(i, j);
    writeHash();
  }

  function focus(i, j) {
    i = Math.max(0, Math.min(R - 1, i));
    j = Math.max(0, Math.min(C - 1, j));
    cells[focused[0]][focused[1]].tabIndex = -1;
    focused = [i, j];
    cells[i][j].tabIndex = 0;
    cells[i][j].focus();
  }

  function onKey(ev) {
    const td = ev.target.closest("td");
    if (!td) return;
    const i = +td.dataset.i, j = +td.dataset.j;
    const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1],
      PageUp: [-10, 0], PageDown: [10, 0] };
    if (moves[ev.key]) { focus(i + moves[ev.key][0], j + moves[ev.key][1]); ev.preventDefault(); }
    else if (ev.key === "Home") { focus(ev.ctrlKey ? 0 : i, 0); ev.preventDefault(); }
    else if (ev.key === "End") { focus(ev.ctrlKey ? R - 1 : i, C - 1); ev.preventDefault(); }
    else if (ev.key === "Enter" || ev.key === " ") { open(i, j); ev.preventDefault(); }
  }

  function writeHash() {
    const parts = [];
    if (view.python !== "best") parts.push("python=" + view.python);
    if (view.driver) parts.push("driver=" + encodeURIComponent(view.driver));
    else if (view.tier) parts.push("tier=" + view.tier);
    if (view.construct) parts.push("construct=" + view.construct);
    if (openCell) parts.push("cell=" + D.rows[openCell[0]].v + "/" + D.cols[openCell[1]].s);
    const hash = parts.length ? "#" + parts.join("&") : "";
    if (location.hash !== hash) history.replaceState(null, "", hash || location.pathname + location.search);
  }

  function readState() {
    const init = D.init || {};
    const params = new URLSearchParams(location.hash.slice(1));
    const python = params.get("python") || init.python;
    view.python = python && D.pythons.includes(python) ? python : "best";
    view.driver = params.get("driver") || init.driver || "";
    view.tier = view.driver ? tierFor(view.driver) : Math.min(+params.get("tier") || 0, D.tiers.length - 1);
    const construct = params.get("construct") || init.construct || "";
    view.construct = D.constructs.some((c) => c.id === construct) ? construct : "";
    const cell = (params.get("cell") || "").split("/");
    const i = D.rows.findIndex((r) => r.v === cell[0]), j = D.cols.findIndex((c) => c.s === cell[1]);
    return i >= 0 && j >= 0 ? [i, j] : null;
  }

  function setupFilters() {
    const py = $("f-python"), tier = $("f-driver"), version = $("f-driver-version"), construct = $("f-construct");
    py.innerHTML = `<option value="best">best per cell</option>` + D.pythons.map((p) => `<option value="${p}">${p}</option>`).join("");
    tier.innerHTML = D.tiers.map((t, k) => `<option value="${k}">${esc(t[0])}</option>`).join("");
    construct.innerHTML = `<option value="">none</option>` +
      D.constructs.map((c) => `<option value="${esc(c.id)}">${esc(c.id)} — ${esc(c.title)}</option>`).join("");
    py.value = view.python; tier.value = String(view.tier); version.value = view.driver; construct.value = view.construct;
    py.addEventListener("change", () => { view.python = py.value; paint(); });
    tier.addEventListener("change", () => { view.tier = +tier.value; view.driver = ""; version.value = ""; paint(); });
    version.addEventListener("input", () => { view.driver = version.value.trim(); view.tier = tierFor(view.driver); tier.value = String(view.tier); paint(); });
    construct.addEventListener("change", () => { view.construct = construct.value; paint(); });
  }

  const m = D.meta;
  $("meta").textContent = `${R} aimet-torch releases × ${C} torch series · matrix ${m.matrix} (updated ${m.updated}, sha256 ${m.sha256}…) · qatdoctor ${m.qatdoctor}`;
  $("foot").innerHTML = `Generated by <code>qatdoctor matrix grid --html</code> from <code>compat_matrix.toml</code> (matrix ${esc(m.matrix)}). ` +
    `Every cell is evaluated like <code>qatdoctor resolve -a aimet-torch=A -a torch=T -a python=P</code>; model-scope rules are caveats, shown per cell.`;
  const start = readState();
  buildTable();
  setupFilters();
  $("grid").addEventListener("keydown", onKey);
  $("grid").addEventListener("click", (ev) => {
    const td = ev.target.closest("td");
    if (td) { focus(+td.dataset.i, +td.dataset.j); open(+td.dataset.i, +td.dataset.j); }
  });
  $("panel-close").addEventListener("click", close);
  $("panel-body").addEventListener("click", (ev) => {
    const a = ev.target.closest("a[data-ev]");
    if (a) { ev.preventDefault(); showEvidence(a.dataset.ev); }
  });
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && openCell) { close(); ev.preventDefault(); } });
  paint();
  if (start) { focused = start; cells[0][0].tabIndex = -1; cells[start[0]][start[1]].tabIndex = 0; open(start[0], start[1]); }
  document.documentElement.dataset.ready = "1";
})();
