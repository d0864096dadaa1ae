// The status page's script: polls /status.json every second and redraws the tables and the
// charts. Inline and dependency-free, so the page works with no network beyond this node.
"use strict";
(function () {
  const WINDOW_MS = 15 * 60 * 1000;
  // A young node's few samples are drawn over at least this much, not squeezed into 15 minutes.
  const MIN_SPAN_MS = 30 * 1000;
  const COLOURS = { age: "#d9480f", buffered: "#1971c2", writes: "#2f9e44", rows: "#7048e8" };
  // Relative to the origin, never to the page's own URL: that one may carry user:password@,
  // and a request built from such a URL is refused by the browser.
  const url = (path) => new URL(path, window.location.origin).toString();

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({
      "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
    })[c]);
  }

  function seconds(ms) {
    return (ms / 1000).toFixed(1) + " s";
  }

  function duration(s) {
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + (s % 60) + "s";
  }

  // Sets an element's HTML only when it changed, so buttons are not replaced under the cursor.
  function setHtml(element, html) {
    if (element.dataset.rendered !== html) {
      element.innerHTML = html;
      element.dataset.rendered = html;
    }
  }

  function renderKeyspaces(keyspaces) {
    const rows = keyspaces.map((k) => {
      const name = escapeHtml(k.name);
      const hit = k.hit_rate === null ? "–" : (k.hit_rate * 100).toFixed(1) + "%";
      return `<tr data-keyspace="${name}"><td data-field="name">${name}</td>` +
        `<td data-field="policy">${escapeHtml(k.policy)}</td>` +
        `<td data-field="table">${escapeHtml(k.table)}</td>` +
        `<td data-field="hit_rate" class="num">${hit}</td>` +
        `<td data-field="writes" class="num">${k.writes}</td>` +
        `<td data-field="buffered" class="num">${k.buffered}</td>` +
        `<td data-field="oldest_unflushed" class="num">${seconds(k.oldest_unflushed_ms)}</td>` +
        `<td data-field="dead_letters" class="num">${k.dead_letters}</td></tr>`;
    });
    setHtml(document.querySelector("#keyspaces tbody"), rows.join("\n"));
  }

  function renderDeadLetters(status) {
    const body = document.querySelector("#dead-letters tbody");
    const count = document.getElementById("dead-letter-count");
    const total = status.dead_letters_total;
    const listed = status.dead_letters.length;
    count.textContent = total === listed ? `(${total})` : `(${listed} of ${total} listed)`;
    if (status.dead_letters_error) {
      setHtml(body, `<tr><td colspan="5" class="error">${escapeHtml(status.dead_letters_error)}</td></tr>`);
      return;
    }
    if (total === 0) {
      setHtml(body, `<tr><td colspan="5">none</td></tr>`);
      return;
    }
    const rows = [];
    const keyspaces = [...new Set(status.dead_letters.map((l) => l.keyspace))];
    for (const keyspace of keyspaces) {
      const ks = escapeHtml(keyspace);
      rows.push(`<tr class="keyspace-actions" data-keyspace="${ks}"><th colspan="4">${ks}</th><td>` +
        `<button class="retry" data-action="retry" data-keyspace="${ks}">Retry all</button>` +
        `<button class="drop" data-action="drop" data-keyspace="${ks}">Drop all</button></td></tr>`);
      for (const l of status.dead_letters.filter((l) => l.keyspace === keyspace)) {
        const when = new Date(l.failed_at_ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
        const key = escapeHtml(l.key);
        rows.push(`<tr class="dead-letter" data-key="${key}"><td>${ks}</td>` +
          `<td class="key">${l.db ? "db" + l.db + " " : ""}${key}</td>` +
          `<td class="error">${escapeHtml(l.error)}</td><td>${when}</td><td>` +
          `<button class="retry" data-action="retry" data-db="${l.db}" data-key-hex="${l.key_hex}">Retry</button>` +
          `<button class="drop" data-action="drop" data-db="${l.db}" data-key-hex="${l.key_hex}">Drop</button></td></tr>`);
      }
    }
    setHtml(body, rows.join("\n"));
  }

  function ago(ms) {
    if (ms < 1000) return "now";
    return ms < 120000 ? `-${Math.round(ms / 1000)} s` : `-${Math.round(ms / 60000)} min`;
  }

  // One chart: a time axis over the history held (the last 15 minutes at most) and up to two
  // series, each on its own scale (left and right) unless they share one.
  function drawChart(canvas, samples, nowMs, series, shared) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || canvas.width, height = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(width * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const left = 48, right = width - 48, top = 10, bottom = height - 22;
    const oldest = samples.length ? samples[0].t : nowMs;
    const span = Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, nowMs - oldest));
    const x = (t) => left + (right - left) * (1 - (nowMs - t) / span);
    g.font = "11px system-ui, sans-serif";
    g.strokeStyle = "#d0d5db";
    g.fillStyle = "#6a7380";
    g.lineWidth = 1;
    g.strokeRect(left, top, right - left, bottom - top);
    for (let i = 4; i >= 0; i--) {
      const label = ago((span * i) / 4);
      g.fillText(label, x(nowMs - (span * i) / 4) - g.measureText(label).width / 2, height - 6);
    }
    const peaks = series.map((s) => Math.max(0, ...samples.map((p) => s.value(p))));
    const sharedPeak = Math.max(...peaks);
    series.forEach((s, i) => {
      const peak = (shared ? sharedPeak : peaks[i]) || 1;
      const y = (v) => bottom - (bottom - top) * (v / peak);
      g.fillStyle = s.colour;
      const label = s.format(peak);
      if (i === 0) g.fillText(label, 2, top + 9);
      else if (!shared) g.fillText(label, right + 4, top + 9);
      g.strokeStyle = s.colour;
      g.lineWidth = 1.5;
      g.beginPath();
      let started = false;
      for (const p of samples) {
        if (nowMs - p.t > span) continue;
        const px = x(p.t), py = y(s.value(p));
        if (started) g.lineTo(px, py); else g.moveTo(px, py);
        started = true;
      }
      g.stroke();
    });
    canvas.dataset.samples = String(samples.length);
    return peaks;
  }

  function drawCharts(status) {
    const samples = status.history;
    const last = samples.length ? samples[samples.length - 1] : null;
    const lag = document.getElementById("lag-chart");
    drawChart(lag, samples, status.now_ms, [
      { colour: COLOURS.age, value: (p) => p.oldest_unflushed_ms / 1000, format: (v) => v.toFixed(1) + " s" },
      { colour: COLOURS.buffered, value: (p) => p.buffered, format: (v) => String(Math.round(v)) },
    ], false);
    const throughput = document.getElementById("throughput-chart");
    const [peakWrites, peakRows] = drawChart(throughput, samples, status.now_ms, [
      { colour: COLOURS.writes, value: (p) => p.writes_per_s, format: (v) => v.toFixed(0) + "/s" },
      { colour: COLOURS.rows, value: (p) => p.rows_stored_per_s, format: (v) => v.toFixed(0) + "/s" },
    ], true);
    throughput.dataset.peakWrites = String(peakWrites);
    throughput.dataset.peakRows = String(peakRows);
    if (last) {
      document.getElementById("lag-now").textContent =
        `now: oldest unflushed ${seconds(last.oldest_unflushed_ms)}, ${last.buffered} buffered`;
      document.getElementById("throughput-now").textContent =
        `now: ${last.writes_per_s.toFixed(1)} writes/s, ${last.rows_stored_per_s.toFixed(1)} rows stored/s`;
    }
  }

  function render(status) {
    document.getElementById("durability").textContent = status.durability;
    document.getElementById("uptime").textContent = duration(status.uptime_s);
    document.getElementById("journal").textContent = status.journal.error
      ? "FAILED: " + status.journal.error
      : `${status.journal.segments} segments, ${status.journal.bytes} bytes`;
    document.getElementById("updated").textContent =
      "updated " + new Date(status.now_ms).toLocaleTimeString();
    renderKeyspaces(status.keyspaces);
    renderDeadLetters(status);
    drawCharts(status);
  }

  async function refresh() {
    try {
      const reply = await fetch(url("/status.json"), { cache: "no-store", credentials: "same-origin" });
      if (!reply.ok) throw new Error(`${reply.status} ${await reply.text()}`);
      render(await reply.json());
    } catch (e) {
      document.getElementById("updated").textContent = "refresh failed: " + e.message;
    }
  }

  async function act(button) {
    const action = button.dataset.action;
    const query = new URLSearchParams();
    if (button.dataset.keyHex !== undefined) {
      query.set("db", button.dataset.db);
      query.set("key", button.dataset.keyHex);
    } else {
      if (action === "drop" && !window.confirm(`Drop every dead letter of ${button.dataset.keyspace}?`)) return;
      query.set("keyspace", button.dataset.keyspace);
    }
    const result = document.getElementById("action-result");
    try {
      // The custom header is what a cross-site form cannot send: no CSRF through this page.
      const reply = await fetch(url(`/deadletters/${action}?${query}`), {
        method: "POST",
        headers: { "X-Sluice-Action": "1" },
        credentials: "same-origin",
      });
      const body = (await reply.text()).trim();
      result.className = reply.ok ? "done" : "refused";
      result.textContent = reply.ok ? body : `${action} refused (${reply.status}): ${body}`;
    } catch (e) {
      result.className = "refused";
      result.textContent = `${action} failed: ${e.message}`;
    }
    refresh();
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button) act(button);
  });
  refresh();
  setInterval(refresh, 1000);
})();
