/* driftwarden dashboard.
 *
 * Plain JavaScript and hand-written SVG, embedded in the binary: the page
 * must work on machines without internet access, so nothing is fetched
 * but this service's own JSON. Every 2 s it reads
 *   /api/v1/overview                  models, states, events/s
 *   /api/v1/models/{m}                the checks of the chosen model
 *   /api/v1/models/{m}/history?since  new samples only (merged here)
 *   /api/v1/alerts                    active alerts, recent activity
 *   /api/v1/models/{m}/features/{f}/ecdf   the chosen check's distributions
 * and updates the DOM in place, keyed by model and feature, so focus and
 * hover survive a refresh.
 */
(function () {
  'use strict';

  const REFRESH_MS = 2000;
  const STATE_COLOR = { ok: '#3b82f6', pending: '#d97706', firing: '#dc2626' };
  const POINT_COLOR = { ok: '#16a34a', pending: '#d97706', firing: '#dc2626' };
  const BASELINE_COLOR = '#94a3b8';
  const WINDOW_COLOR = '#2563eb';
  const GAP_COLOR = '#dc2626';
  const SEVERITY = { firing: 0, pending: 1, ok: 2 };

  /* ---------- state ---------- */

  const view = readHash();
  const histories = {};
  let timer = null;
  let clipIds = 0;

  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    return { model: p.get('model'), feature: p.get('feature'), check: p.get('check') };
  }

  function writeHash() {
    const p = new URLSearchParams();
    if (view.model) p.set('model', view.model);
    if (view.feature) p.set('feature', view.feature);
    if (view.check) p.set('check', view.check);
    history.replaceState(null, '', '#' + p.toString());
  }

  /* ---------- small helpers ---------- */

  const $ = (id) => document.getElementById(id);

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({
      '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
    })[c]);
  }

  async function getJSON(url) {
    const response = await fetch(url, { cache: 'no-store' });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || response.status + ' ' + url);
    return body;
  }

  function fmtInt(n) {
    return n == null ? '–' : Math.round(n).toLocaleString('en-US');
  }

  function fmtRate(r) {
    if (r == null) return '–';
    return r >= 100 ? fmtInt(r) : r.toFixed(1);
  }

  function fmtStat(test, v) {
    if (v == null || !isFinite(v)) return '–';
    if (test === 'missing_rate') return (v * 100).toFixed(1) + '%';
    if (test === 'chi2') return v >= 100 ? v.toFixed(0) : v.toFixed(1);
    return v.toFixed(3);
  }

  function statName(test) {
    return { ks: 'D', chi2: 'χ²', missing_rate: 'missing' }[test] || test;
  }

  function testName(test) {
    return { ks: 'KS', chi2: 'χ²', missing_rate: 'missing rate' }[test] || test;
  }

  function pct(v, digits) {
    return (v * 100).toFixed(digits == null ? 1 : digits) + '%';
  }

  function clock(ms) {
    const d = new Date(ms);
    const two = (n) => String(n).padStart(2, '0');
    return two(d.getHours()) + ':' + two(d.getMinutes()) + ':' + two(d.getSeconds());
  }

  function ago(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    return Math.round(s / 3600) + ' h ago';
  }

  function niceStep(span, count) {
    const raw = span / Math.max(1, count);
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / p;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
  }

  function ticks(lo, hi, count) {
    if (!(hi > lo)) return [lo];
    const step = niceStep(hi - lo, count);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
      out.push(+v.toFixed(12));
    }
    return out;
  }

  function fmtTick(v, step) {
    const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step || 1))));
    return v.toLocaleString('en-US', {
      minimumFractionDigits: decimals, maximumFractionDigits: decimals,
    });
  }

  function timeTicks(t0, t1, count) {
    const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600].map((s) => s * 1000);
    const step = steps.find((s) => (t1 - t0) / s <= count) || 7200000;
    const out = [];
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) out.push(t);
    return out;
  }

  function scale(d0, d1, r0, r1) {
    const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
    return (v) => r0 + (v - d0) * k;
  }

  /* ---------- history cache: merge ?since= answers ---------- */

  function mergeHistory(model, h) {
    const c = histories[model] || (histories[model] = { series: {}, rate: [], last: null, keep: 600 });
    c.keep = h.keep || c.keep;
    for (const p of h.rate || []) c.rate.push(p);
    trim(c.rate, c.keep);
    for (const s of h.checks || []) {
      const key = s.check + '/' + s.name;
      const into = c.series[key] || (c.series[key] = {
        name: s.name, check: s.check, test: s.test, t: [], statistic: [], threshold: [], state: [],
      });
      into.since = s.state_since_ms;
      for (const col of ['t', 'statistic', 'threshold', 'state']) {
        for (const v of s[col]) into[col].push(v);
        trim(into[col], c.keep);
      }
      if (into.t.length) c.last = Math.max(c.last || 0, into.t[into.t.length - 1]);
    }
    for (const p of c.rate) c.last = Math.max(c.last || 0, p.t_ms);
    return c;
  }

  function trim(a, keep) {
    if (a.length > keep) a.splice(0, a.length - keep);
  }

  function timeDomain(c) {
    let t0 = Infinity;
    let t1 = -Infinity;
    for (const key in c.series) {
      const t = c.series[key].t;
      if (t.length) {
        t0 = Math.min(t0, t[0]);
        t1 = Math.max(t1, t[t.length - 1]);
      }
    }
    if (!isFinite(t0)) return [Date.now() - 60000, Date.now()];
    return t1 - t0 < 10000 ? [t1 - 10000, t1] : [t0, t1];
  }

  /* ---------- keyed DOM updates ---------- */

  function keyed(container, items, key, create, update) {
    const existing = new Map();
    for (const node of Array.from(container.children)) {
      if (node.dataset && node.dataset.key != null) existing.set(node.dataset.key, node);
      else node.remove();
    }
    let previous = null;
    for (const item of items) {
      const k = key(item);
      let node = existing.get(k);
      existing.delete(k);
      if (!node) {
        node = create(item);
        node.dataset.key = k;
      }
      const wanted = previous ? previous.nextSibling : container.firstChild;
      if (wanted !== node) container.insertBefore(node, wanted);
      update(node, item);
      previous = node;
    }
    for (const node of existing.values()) node.remove();
  }

  /* ---------- overview ---------- */

  function renderOverview(models) {
    const box = $('overview');
    if (!models.length) {
      box.innerHTML = '<p class="message">No models are monitored yet.</p>';
      return;
    }
    if (box.querySelector('.message')) box.innerHTML = '';
    keyed(box, models, (m) => m.model, createTile, updateTile);
  }

  function createTile(m) {
    const tile = document.createElement('article');
    tile.className = 'model-tile';
    tile.tabIndex = 0;
    tile.setAttribute('role', 'button');
    tile.addEventListener('click', () => selectModel(m.model));
    tile.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        selectModel(m.model);
      }
    });
    return tile;
  }

  function updateTile(tile, m) {
    tile.dataset.model = m.model;
    tile.dataset.state = m.state;
    tile.classList.toggle('selected', m.model === view.model);
    tile.setAttribute('aria-label', 'model ' + m.model + ', ' + m.state);
    const alertsClass = m.firing ? 'bad' : m.pending ? 'warn' : '';
    const lastEvent = m.last_event_ms == null ? '–'
      : clock(m.last_event_ms) + ' <small>' + new Date(m.last_event_ms).toLocaleDateString('en-US', { month: 'short', day: 'numeric' }) + '</small>';
    tile.innerHTML =
      '<div class="title"><span class="model-name">' + esc(m.model) + '</span>' +
      '<span class="pill big ' + m.state + '" data-role="state">' + m.state + '</span></div>' +
      stat('Events', fmtInt(m.events)) +
      '<div class="stat"><span class="label">Events / s</span><span class="rate">' +
      '<span class="value">' + fmtRate(m.events_per_second) + '</span>' + rateSpark(m.rate) + '</span></div>' +
      stat('Drifted', m.drifted + ' <small>of ' + m.checks + ' checks</small>', m.drifted ? 'bad' : '') +
      stat('Alerts', m.firing + ' <small>firing</small> · ' + m.pending + ' <small>pending</small>', alertsClass) +
      stat('Last event', lastEvent);
  }

  function stat(label, value, cls) {
    return '<div class="stat"><span class="label">' + label + '</span>' +
      '<span class="value ' + (cls || '') + '">' + value + '</span></div>';
  }

  function rateSpark(rate) {
    const w = 120;
    const h = 30;
    if (!rate || rate.length < 2) return '<svg viewBox="0 0 120 30" aria-hidden="true"></svg>';
    const max = Math.max(1, ...rate.map((p) => p[1]));
    const x = scale(rate[0][0], rate[rate.length - 1][0], 1, w - 1);
    const y = scale(0, max, h - 2, 3);
    const line = rate.map((p, i) => (i ? 'L' : 'M') + x(p[0]).toFixed(1) + ' ' + y(p[1]).toFixed(1)).join(' ');
    const area = line + ' L' + x(rate[rate.length - 1][0]).toFixed(1) + ' ' + (h - 1) + ' L1 ' + (h - 1) + ' Z';
    return '<svg viewBox="0 0 ' + w + ' ' + h + '" role="img" aria-label="events per second, peak ' + fmtRate(max) + '">' +
      '<path d="' + area + '" fill="#2563eb" fill-opacity="0.12"/>' +
      '<path d="' + line + '" fill="none" stroke="#2563eb" stroke-width="1.6" stroke-linejoin="round"/></svg>';
  }

  /* ---------- feature cards ---------- */

  /**
   * One card per check, data-quality checks aside: they ride along on the
   * card of their feature (`plan` for `plan` and `plan.unknown_category`),
   * whose state is then the worst of them all. Distribution checks
   * (features, prediction) are feature cards; others (performance) are
   * metric cards.
   */
  function cardItems(status) {
    const quality = status.checks.filter((c) => c.check === 'data_quality');
    const items = status.checks
      .filter((c) => c.check !== 'data_quality')
      .map((c, order) => {
        const own = c.check !== 'feature_drift' ? []
          : quality.filter((q) => q.name === c.name || q.name.startsWith(c.name + '.'));
        const state = worstState([c.state].concat(own.map((q) => q.state)));
        const metric = c.check !== 'feature_drift' && c.check !== 'prediction_drift';
        return { key: c.check + '/' + c.name, drift: c, quality: own, state: state, order: order, metric: metric };
      });
    items.sort((a, b) => SEVERITY[a.state] - SEVERITY[b.state] || a.order - b.order);
    return items;
  }

  function worstState(states) {
    return states.reduce((w, s) => (SEVERITY[s] < SEVERITY[w] ? s : w), 'ok');
  }

  function renderCards(status, hist) {
    const box = $('cards');
    box.dataset.model = status.model;
    const items = cardItems(status);
    const domain = timeDomain(hist);
    keyed(box, items, (i) => i.key, createCard, (node, item) => updateCard(node, item, hist, domain));
    return items;
  }

  function createCard(item) {
    const card = document.createElement('article');
    card.className = 'card';
    card.tabIndex = 0;
    card.setAttribute('role', 'button');
    const pick = () => selectFeature(item.drift.name, item.drift.check);
    card.addEventListener('click', pick);
    card.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        pick();
      }
    });
    return card;
  }

  function updateCard(card, item, hist, domain) {
    const c = item.drift;
    // Only inputs and the prediction are features; a test reads these.
    if (item.metric) card.dataset.metric = c.name;
    else card.dataset.feature = c.name;
    card.dataset.check = c.check;
    card.dataset.state = item.state;
    card.classList.toggle('selected', view.feature === c.name && view.check === c.check);
    card.setAttribute('aria-label', c.name + ': ' + item.state + (c.drifted ? ', drifted' : ''));
    const series = hist.series[c.check + '/' + c.name];
    const width = Math.max(180, card.clientWidth - 28);
    card.innerHTML =
      '<div class="card-head"><h3 title="' + esc(c.name) + '">' + esc(c.name) + '</h3>' +
      '<span class="pill ' + item.state + '" data-role="state">' + item.state + '</span></div>' +
      '<div class="tags">' + (c.drifted ? '<span class="tag drifted">drifted</span>' : '') +
      '<span class="tag">' + testName(c.test) + '</span>' +
      (c.check === 'prediction_drift' ? '<span class="tag output">model output</span>' : '') +
      (item.metric ? '<span class="tag output">' + esc(c.check) + '</span>' : '') + '</div>' +
      reading(c) +
      (c.statistic == null ? filling(c) : sparkline(series, domain, width, 64, c)) +
      cardFoot(c, item.quality);
  }

  function reading(c) {
    return '<div class="reading"><span class="big">' + statName(c.test) + ' ' + fmtStat(c.test, c.statistic) +
      '</span><span class="of">/ threshold ' + fmtStat(c.test, c.threshold) + '</span></div>';
  }

  function filling(c) {
    const share = c.capacity ? Math.min(1, c.n / c.capacity) : 0;
    return '<div class="filling"><span>window filling: ' + fmtInt(c.n) + ' of ' + fmtInt(c.capacity) +
      ' events</span><div class="bar"><svg viewBox="0 0 100 6" preserveAspectRatio="none" aria-hidden="true">' +
      '<rect width="' + (share * 100).toFixed(1) + '" height="6" fill="#93c5fd"/></svg></div></div>';
  }

  const QUALITY_LABEL = { missing_rate: 'missing', unknown_category_rate: 'unknown' };

  function cardFoot(c, quality) {
    // The missing rate always shows; other rates only when they matter.
    const shown = quality.filter((q) => q.test === 'missing_rate' || q.state !== 'ok' || q.statistic > 0);
    const dq = shown.map((q) => {
      const cls = q.state === 'firing' ? 'dq-bad' : q.state === 'pending' ? 'dq-warn' : '';
      const label = QUALITY_LABEL[q.test] || q.test;
      return '<span class="' + cls + '" title="' + esc(label) + ' rate of the last ' + fmtInt(q.n) +
        ' events; alert above ' + fmtStat('missing_rate', q.threshold) + '">' + esc(label) + ' ' +
        fmtStat('missing_rate', q.statistic) + (q.state !== 'ok' ? ' · ' + q.state : '') + '</span>';
    }).join(' ');
    return '<div class="card-foot"><span>n ' + fmtInt(c.n) + ' / ' + fmtInt(c.capacity) +
      ' · m ' + fmtInt(c.m) + '</span><span>' + dq + '</span></div>';
  }

  /* ---------- statistic-over-time charts ---------- */

  /** Points of a series as [t, statistic, threshold, state], nulls kept. */
  function points(series) {
    if (!series) return [];
    return series.t.map((t, i) => [t, series.statistic[i], series.threshold[i], series.state[i]]);
  }

  function yTop(pts) {
    let max = 0;
    for (const p of pts) {
      if (p[1] != null) max = Math.max(max, p[1]);
      if (p[2] != null) max = Math.max(max, p[2]);
    }
    return max > 0 ? max * 1.15 : 1;
  }

  /**
   * The statistic as a line coloured by alert state, its threshold dashed,
   * an area tinted with the current state; `axes` adds ticks and labels.
   */
  function statChart(series, domain, w, h, current, axes) {
    const pts = points(series);
    const pad = axes ? { l: 46, r: 12, t: 10, b: 24 } : { l: 2, r: 5, t: 6, b: 3 };
    const top = yTop(pts);
    const x = scale(domain[0], domain[1], pad.l, w - pad.r);
    const y = scale(0, top, h - pad.b, pad.t);
    const parts = [];
    if (axes) parts.push(statAxes(domain, top, x, y, w, h, pad, current.test));
    parts.push(thresholdLine(pts, x, y));
    if (axes && current.threshold != null) {
      parts.push('<text x="' + (w - pad.r) + '" y="' + (y(current.threshold) - 5) +
        '" text-anchor="end" class="threshold-label">threshold ' + fmtStat(current.test, current.threshold) + '</text>');
    }
    parts.push(stateArea(pts, x, y, h - pad.b, current.state));
    parts.push(stateLines(pts, x, y));
    parts.push(statePoints(pts, x, y, axes ? 2.2 : 1.7));
    const label = statName(current.test) + ' over time: now ' + fmtStat(current.test, current.statistic) +
      ', threshold ' + fmtStat(current.test, current.threshold) + ', ' + current.state;
    return '<svg class="' + (axes ? 'chart' : 'spark') + '" viewBox="0 0 ' + w + ' ' + h + '" width="' + w +
      '" height="' + h + '" role="img" aria-label="' + esc(label) + '">' + parts.join('') + '</svg>';
  }

  function sparkline(series, domain, w, h, current) {
    return statChart(series, domain, w, h, current, false);
  }

  function statAxes(domain, top, x, y, w, h, pad, test) {
    let out = '';
    const ys = ticks(0, top / 1.15, 3);
    const step = ys.length > 1 ? ys[1] - ys[0] : top;
    for (const v of ys) {
      out += '<line x1="' + pad.l + '" x2="' + (w - pad.r) + '" y1="' + y(v) + '" y2="' + y(v) + '" stroke="#eef2f7"/>';
      out += '<text x="' + (pad.l - 6) + '" y="' + (y(v) + 4) + '" text-anchor="end">' +
        (test === 'missing_rate' ? pct(v, 0) : fmtTick(v, step)) + '</text>';
    }
    const inside = (t) => x(t) >= pad.l + 22 && x(t) <= w - pad.r - 22;
    for (const t of timeTicks(domain[0], domain[1], 5).filter(inside)) {
      out += '<line x1="' + x(t) + '" x2="' + x(t) + '" y1="' + (h - pad.b) + '" y2="' + (h - pad.b + 4) + '" stroke="#cbd5e1"/>';
      out += '<text x="' + x(t) + '" y="' + (h - 6) + '" text-anchor="middle">' + clock(t) + '</text>';
    }
    out += '<line x1="' + pad.l + '" x2="' + (w - pad.r) + '" y1="' + (h - pad.b) + '" y2="' + (h - pad.b) + '" stroke="#cbd5e1"/>';
    return out;
  }

  function thresholdLine(pts, x, y) {
    const d = pathOf(pts.filter((p) => p[2] != null).map((p) => [x(p[0]), y(p[2])]), true);
    return d ? '<path d="' + d + '" fill="none" stroke="#475569" stroke-width="1.3" stroke-dasharray="4 3"/>' : '';
  }

  function stateArea(pts, x, y, base, state) {
    const known = pts.filter((p) => p[1] != null);
    if (known.length < 2) return '';
    const line = pathOf(known.map((p) => [x(p[0]), y(p[1])]), false);
    const first = x(known[0][0]).toFixed(1);
    const last = x(known[known.length - 1][0]).toFixed(1);
    const opacity = state === 'ok' ? 0.08 : 0.16;
    return '<path d="' + line + ' L' + last + ' ' + base + ' L' + first + ' ' + base + ' Z" fill="' +
      STATE_COLOR[state] + '" fill-opacity="' + opacity + '"/>';
  }

  /** One polyline per run of equal state, each joined to the previous run. */
  function stateLines(pts, x, y) {
    let out = '';
    let run = [];
    let runState = null;
    let previous = null;
    const flush = () => {
      if (run.length > 1) {
        out += '<path d="' + pathOf(run, false) + '" fill="none" stroke="' + STATE_COLOR[runState] +
          '" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>';
      }
    };
    for (const p of pts) {
      if (p[1] == null) {
        flush();
        run = [];
        previous = null;
        continue;
      }
      const xy = [x(p[0]), y(p[1])];
      if (p[3] !== runState) {
        flush();
        run = previous ? [previous] : [];
        runState = p[3];
      }
      run.push(xy);
      previous = xy;
    }
    flush();
    return out;
  }

  function statePoints(pts, x, y, r) {
    const known = pts.filter((p) => p[1] != null);
    // Dense series read better as a line; keep the dots sparse.
    const every = Math.max(1, Math.ceil(known.length / 90));
    let out = '';
    known.forEach((p, i) => {
      const lastOne = i === known.length - 1;
      if (i % every && !lastOne) return;
      out += '<circle cx="' + x(p[0]).toFixed(1) + '" cy="' + y(p[1]).toFixed(1) + '" r="' +
        (lastOne ? r + 1.3 : r) + '" fill="' + POINT_COLOR[p[3]] + '"' +
        (lastOne ? ' stroke="#fff" stroke-width="1.5"' : '') + '/>';
    });
    return out;
  }

  function pathOf(xys, step) {
    if (!xys.length) return '';
    let d = 'M' + xys[0][0].toFixed(1) + ' ' + xys[0][1].toFixed(1);
    for (let i = 1; i < xys.length; i++) {
      if (step) d += ' H' + xys[i][0].toFixed(1);
      d += ' L' + xys[i][0].toFixed(1) + ' ' + xys[i][1].toFixed(1);
    }
    return d;
  }

  /* ---------- detail: distributions of the chosen check ---------- */

  function renderDetail(data, item, hist) {
    const box = $('detail');
    const c = item.drift;
    const panelWidth = Math.max(320, box.clientWidth - 36);
    const figures = detailFigures(c, item.quality);
    let chart = '';
    if (data && data.kind === 'numeric') chart = ecdfBlock(data, c, panelWidth);
    else if (data && data.kind === 'categorical') chart = categoryBlock(data, c, panelWidth);
    else if (!item.metric) chart = '<p class="empty">The distribution is not available yet.</p>';
    const series = hist.series[c.check + '/' + c.name];
    box.dataset.feature = c.name;
    box.dataset.state = item.state;
    box.innerHTML =
      '<div class="detail-head"><h2>' + esc(c.name) + '</h2><span class="pill ' + item.state + '">' + item.state +
      '</span>' + (c.drifted ? '<span class="tag drifted">drifted</span>' : '') +
      '<span class="sub">' + subtitle(item) + '</span></div>' + figures + chart +
      '<h3 class="subhead">' + statName(c.test) + ' over time</h3>' +
      statChart(series, timeDomain(hist), panelWidth, 150, c, true);
  }

  function subtitle(item) {
    const c = item.drift;
    if (item.metric) return esc(c.check.replace('_', ' ')) + ' · ' + esc(c.test) + ' against the baseline';
    return (c.check === 'prediction_drift' ? 'model output' : 'input feature') + ' · ' + testName(c.test) +
      ' test against the baseline';
  }

  function detailFigures(c, quality) {
    const cls = c.drifted ? 'bad' : '';
    let out = '<div class="figures">' + stat(statName(c.test), fmtStat(c.test, c.statistic), cls) +
      stat('Threshold', fmtStat(c.test, c.threshold)) +
      stat('Window n', fmtInt(c.n) + ' <small>/ ' + fmtInt(c.capacity) + '</small>') +
      stat('Baseline m', fmtInt(c.m));
    const missing = quality.find((q) => q.test === 'missing_rate');
    if (missing) {
      out += stat('Missing', fmtStat('missing_rate', missing.statistic),
        missing.state === 'firing' ? 'bad' : missing.state === 'pending' ? 'warn' : '');
    }
    return out + '</div>';
  }

  function legend(entries) {
    return '<div class="legend">' + entries.map((e) => '<span><svg viewBox="0 0 22 10" aria-hidden="true">' + e[0] +
      '</svg>' + e[1] + '</span>').join('') + '</div>';
  }

  function ecdfBlock(data, c, w) {
    const v = data.numeric;
    const gap = v.gap;
    const keys = legend([
      ['<line x1="0" x2="22" y1="5" y2="5" stroke="' + BASELINE_COLOR + '" stroke-width="3"/>', 'baseline (' + fmtInt(v.m) + ')'],
      ['<line x1="0" x2="22" y1="5" y2="5" stroke="' + WINDOW_COLOR + '" stroke-width="2.2"/>', 'window (last ' + fmtInt(v.n) + ')'],
      ['<line x1="11" x2="11" y1="0" y2="10" stroke="' + GAP_COLOR + '" stroke-width="3"/>', 'largest gap D'],
    ]);
    let caption = '';
    if (gap) {
      caption = '<p class="caption">Largest gap <b>D = ' + gap.d.toFixed(3) + '</b> at ' + esc(c.name) + ' = ' +
        fmtValue(gap.at) + ': ' + pct(gap.baseline) + ' of the baseline is at or below it, against ' +
        pct(gap.window) + ' of the window.</p>';
    }
    return keys + ecdfChart(v, w, 270) + caption;
  }

  function fmtValue(x) {
    const a = Math.abs(x);
    if (a >= 1000) return x.toLocaleString('en-US', { maximumFractionDigits: 0 });
    if (a >= 10) return x.toFixed(1);
    return x.toPrecision(3);
  }

  /** x range holding all but the outer 0.5 % of either curve, and the gap. */
  function ecdfDomain(v) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const e of [v.baseline, v.window]) {
      if (!e.x.length) continue;
      const first = e.y.findIndex((y) => y >= 0.005);
      const last = e.y.findIndex((y) => y >= 0.995);
      lo = Math.min(lo, e.x[Math.max(0, first)]);
      hi = Math.max(hi, e.x[last < 0 ? e.x.length - 1 : last]);
    }
    if (v.gap) {
      lo = Math.min(lo, v.gap.at);
      hi = Math.max(hi, v.gap.at);
    }
    if (!isFinite(lo)) return [0, 1];
    if (hi <= lo) return [lo - 1, hi + 1];
    const pad = (hi - lo) * 0.03;
    return [lo - pad, hi + pad];
  }

  function ecdfChart(v, w, h) {
    const pad = { l: 44, r: 14, t: 12, b: 30 };
    const dom = ecdfDomain(v);
    const x = scale(dom[0], dom[1], pad.l, w - pad.r);
    const y = scale(0, 1, h - pad.b, pad.t);
    const clip = 'clip' + ++clipIds;
    let out = '<defs><clipPath id="' + clip + '"><rect x="' + pad.l + '" y="0" width="' + (w - pad.l - pad.r) +
      '" height="' + h + '"/></clipPath></defs>';
    out += ecdfAxes(dom, x, y, w, h, pad);
    out += '<g clip-path="url(#' + clip + ')">' +
      stepPath(v.baseline, x, y, dom, BASELINE_COLOR, 3) + stepPath(v.window, x, y, dom, WINDOW_COLOR, 2.2) + '</g>';
    if (v.gap) out += gapMarker(v.gap, x, y, w, h, pad);
    const label = 'ECDF of baseline and window' + (v.gap ? ', largest gap D ' + v.gap.d.toFixed(3) : '');
    return '<svg class="chart" viewBox="0 0 ' + w + ' ' + h + '" width="' + w + '" height="' + h +
      '" role="img" aria-label="' + esc(label) + '">' + out + '</svg>';
  }

  function ecdfAxes(dom, x, y, w, h, pad) {
    let out = '';
    for (const p of [0, 0.25, 0.5, 0.75, 1]) {
      out += '<line x1="' + pad.l + '" x2="' + (w - pad.r) + '" y1="' + y(p) + '" y2="' + y(p) + '" stroke="#eef2f7"/>';
      out += '<text x="' + (pad.l - 6) + '" y="' + (y(p) + 4) + '" text-anchor="end">' + pct(p, 0) + '</text>';
    }
    const xs = ticks(dom[0], dom[1], 6);
    const step = xs.length > 1 ? xs[1] - xs[0] : 1;
    for (const t of xs) {
      out += '<line x1="' + x(t) + '" x2="' + x(t) + '" y1="' + (h - pad.b) + '" y2="' + (h - pad.b + 4) + '" stroke="#cbd5e1"/>';
      out += '<text x="' + x(t) + '" y="' + (h - pad.b + 17) + '" text-anchor="middle">' + fmtTick(t, step) + '</text>';
    }
    out += '<line x1="' + pad.l + '" x2="' + (w - pad.r) + '" y1="' + (h - pad.b) + '" y2="' + (h - pad.b) + '" stroke="#cbd5e1"/>';
    return out;
  }

  /** F(x[i]) = y[i], flat in between: horizontal then vertical moves. */
  function stepPath(e, x, y, dom, color, width) {
    if (!e.x.length) return '';
    const left = Math.min(dom[0], e.x[0]);
    let d = 'M' + x(left).toFixed(1) + ' ' + y(0).toFixed(1);
    for (let i = 0; i < e.x.length; i++) {
      d += 'H' + x(e.x[i]).toFixed(1) + 'V' + y(e.y[i]).toFixed(1);
    }
    d += 'H' + x(Math.max(dom[1], e.x[e.x.length - 1])).toFixed(1);
    return '<path d="' + d + '" fill="none" stroke="' + color + '" stroke-width="' + width +
      '" stroke-linejoin="round"/>';
  }

  function gapMarker(gap, x, y, w, h, pad) {
    const gx = x(gap.at);
    const y1 = y(gap.baseline);
    const y2 = y(gap.window);
    const mid = (y1 + y2) / 2;
    const right = gx < w - pad.r - 90;
    let out = '<line x1="' + gx + '" x2="' + gx + '" y1="' + Math.max(y1, y2) + '" y2="' + (h - pad.b) +
      '" stroke="' + GAP_COLOR + '" stroke-width="1" stroke-dasharray="2 3"/>';
    out += '<rect x="' + (gx - 5) + '" y="' + Math.min(y1, y2) + '" width="10" height="' + Math.abs(y1 - y2) +
      '" fill="' + GAP_COLOR + '" fill-opacity="0.12"/>';
    out += '<line x1="' + gx + '" x2="' + gx + '" y1="' + y1 + '" y2="' + y2 + '" stroke="' + GAP_COLOR +
      '" stroke-width="3" stroke-linecap="round"/>';
    for (const cy of [y1, y2]) {
      out += '<line x1="' + (gx - 5) + '" x2="' + (gx + 5) + '" y1="' + cy + '" y2="' + cy + '" stroke="' +
        GAP_COLOR + '" stroke-width="2"/>';
    }
    out += '<text class="gap-label" x="' + (right ? gx + 10 : gx - 10) + '" y="' + (mid + 4) + '" text-anchor="' +
      (right ? 'start' : 'end') + '">D = ' + gap.d.toFixed(3) + '</text>';
    return out;
  }

  function categoryBlock(data, c, w) {
    const v = data.categorical;
    const keys = legend([
      ['<rect x="0" y="1" width="22" height="8" rx="2" fill="' + BASELINE_COLOR + '"/>', 'baseline (' + fmtInt(v.m) + ')'],
      ['<rect x="0" y="1" width="22" height="8" rx="2" fill="' + WINDOW_COLOR + '"/>', 'window (last ' + fmtInt(v.n) + ')'],
    ]);
    let biggest = null;
    for (const k of v.categories) {
      if (!biggest || Math.abs(k.window - k.baseline) > Math.abs(biggest.window - biggest.baseline)) biggest = k;
    }
    let caption = '';
    if (biggest && v.n > 0) {
      const delta = (biggest.window - biggest.baseline) * 100;
      caption = '<p class="caption">Largest shift: <b>' + esc(biggest.name) + '</b> ' + pct(biggest.baseline) +
        ' → ' + pct(biggest.window) + ' (' + (delta >= 0 ? '+' : '−') + Math.abs(delta).toFixed(1) +
        ' points).</p>';
    }
    return keys + categoryChart(v, w, biggest) + caption;
  }

  function categoryChart(v, w, biggest) {
    const row = 50;
    const pad = { l: 110, r: 120, t: 8, b: 4 };
    const h = pad.t + pad.b + row * v.categories.length;
    const max = Math.max(0.01, ...v.categories.map((k) => Math.max(k.window, k.baseline)));
    const x = scale(0, max, pad.l, w - pad.r);
    let out = '';
    v.categories.forEach((k, i) => {
      const top = pad.t + i * row;
      const delta = (k.window - k.baseline) * 100;
      out += '<text class="cat-label" x="' + (pad.l - 10) + '" y="' + (top + 25) + '" text-anchor="end">' + esc(k.name) + '</text>';
      out += bar(x, pad.l, top + 6, k.baseline, BASELINE_COLOR);
      out += bar(x, pad.l, top + 24, k.window, WINDOW_COLOR);
      const strong = k === biggest;
      out += '<text x="' + (w - 8) + '" y="' + (top + 25) + '" text-anchor="end" ' +
        (strong ? 'class="gap-label"' : 'class="bar-label"') + '>' + (delta >= 0 ? '+' : '−') +
        Math.abs(delta).toFixed(1) + ' pts</text>';
    });
    return '<svg class="chart" viewBox="0 0 ' + w + ' ' + h + '" width="' + w + '" height="' + h +
      '" role="img" aria-label="category shares, baseline against window">' + out + '</svg>';
  }

  function bar(x, left, top, share, color) {
    const width = Math.max(1, x(share) - left);
    return '<rect x="' + left + '" y="' + top + '" width="' + width.toFixed(1) + '" height="15" rx="3" fill="' +
      color + '"/><text class="bar-label" x="' + (left + width + 6).toFixed(1) + '" y="' + (top + 12) + '">' +
      pct(share) + '</text>';
  }

  /* ---------- alerts and recent activity ---------- */

  function renderAlerts(alerts, models) {
    const box = $('alerts');
    if (!alerts.active.length) {
      box.innerHTML = '<p class="empty good">No active alerts.</p>';
      return;
    }
    // The model is only worth a word when there is more than one.
    const named = models > 1;
    box.innerHTML = '<ul class="alert-list">' + alerts.active.map((a) =>
      '<li class="alert-row ' + a.state + '" data-model="' + esc(a.model) + '" data-feature="' + esc(a.feature) +
      '" data-check="' + esc(a.check) + '"><span class="pill ' + a.state + '">' + a.state + '</span>' +
      '<span><span class="feature">' + (named ? esc(a.model) + ' · ' : '') + esc(a.feature) + '</span>' +
      '<span class="what">' + a.check.replace('_', ' ') +
      (a.since_ms ? ' · <span title="' + ago(a.since_ms) + '">since ' + clock(a.since_ms) + '</span>' : '') +
      '</span></span><span class="nums">' + statName(a.test) + ' ' + fmtStat(a.test, a.statistic) + ' / ' +
      fmtStat(a.test, a.threshold) + '</span></li>').join('') + '</ul>';
    for (const li of box.querySelectorAll('.alert-row')) {
      li.addEventListener('click', () => {
        view.model = li.dataset.model;
        if (li.dataset.check !== 'data_quality') {
          selectFeature(li.dataset.feature, li.dataset.check);
          return;
        }
        // A data-quality alert opens the card of its feature.
        const name = li.dataset.feature;
        const card = Array.from(document.querySelectorAll('#cards .card[data-feature]'))
          .find((c) => name === c.dataset.feature || name.startsWith(c.dataset.feature + '.'));
        if (card) selectFeature(card.dataset.feature, card.dataset.check);
      });
    }
  }

  function renderRecent(alerts) {
    const entries = [];
    for (const n of alerts.notifications) {
      const names = n.alerts.map((a) => a.feature).join(', ');
      entries.push([n.received_ms, 'notify', '<b>Notification #' + n.sequence + '</b> ' + esc(n.status) +
        ' <span class="muted">' + esc(n.model) + ':</span> ' + esc(names)]);
    }
    for (const c of alerts.changes) {
      const kind = c.check === 'data_quality' ? ' missing rate' : c.check === 'prediction_drift' ? ' (output)' : '';
      entries.push([c.t_ms, c.to, '<b>' + esc(c.feature) + '</b>' + kind + ' <span class="muted">' + c.from +
        ' →</span> ' + c.to]);
    }
    entries.sort((a, b) => b[0] - a[0]);
    const box = $('recent');
    if (!entries.length) {
      box.innerHTML = '<li><span></span><span></span><span class="text muted">Nothing has changed yet.</span></li>';
      return;
    }
    box.innerHTML = entries.slice(0, 40).map((e) => '<li><time datetime="' + new Date(e[0]).toISOString() + '">' +
      clock(e[0]) + '</time><span class="mark ' + e[1] + '"></span><span class="text">' + e[2] + '</span></li>').join('');
  }

  /* ---------- selection ---------- */

  function selectModel(model) {
    if (view.model === model) return;
    view.model = model;
    view.feature = null;
    view.check = null;
    writeHash();
    refreshSoon();
  }

  function selectFeature(feature, check) {
    view.feature = feature;
    view.check = check;
    writeHash();
    for (const card of document.querySelectorAll('#cards .card')) {
      card.classList.toggle('selected', card.dataset.feature === feature && card.dataset.check === check);
    }
    refreshSoon();
  }

  function refreshSoon() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 0);
  }

  function setLive(ok, message) {
    const live = $('live');
    live.classList.toggle('up', ok);
    live.classList.toggle('down', !ok);
    $('live-text').textContent = ok ? 'live · updated ' + clock(Date.now()) : 'disconnected · ' + message;
  }

  /* ---------- the refresh loop ---------- */

  async function refresh() {
    try {
      const overview = await getJSON('/api/v1/overview');
      renderOverview(overview.models);
      const model = pickModel(overview.models);
      if (model) await refreshModel(model);
      renderAlertsAndRecent(await getJSON('/api/v1/alerts'), overview.models.length);
      setLive(true);
    } catch (error) {
      setLive(false, error.message);
    } finally {
      clearTimeout(timer);
      timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  function pickModel(models) {
    if (!models.length) return null;
    if (!models.some((m) => m.model === view.model)) {
      // A feature named in the address is kept: it usually belongs to the
      // model picked here (the only one, or the one firing).
      if (view.model) view.feature = null;
      const firing = models.find((m) => m.state === 'firing');
      view.model = (firing || models[0]).model;
    }
    for (const tile of document.querySelectorAll('.model-tile')) {
      tile.classList.toggle('selected', tile.dataset.model === view.model);
    }
    return view.model;
  }

  async function refreshModel(model) {
    const base = '/api/v1/models/' + encodeURIComponent(model);
    const known = histories[model];
    const since = known && known.last != null ? '?since=' + known.last : '';
    const [status, history] = await Promise.all([getJSON(base), getJSON(base + '/history' + since)]);
    const hist = mergeHistory(model, history);
    const items = renderCards(status, hist);
    const item = pickFeature(items);
    if (!item) {
      $('detail').innerHTML = '<p class="empty">This model has no checks.</p>';
      return;
    }
    const url = base + '/features/' + encodeURIComponent(item.drift.name) + '/ecdf?check=' + item.drift.check;
    const data = item.metric ? null : await getJSON(url).catch(() => null);
    renderDetail(data, item, hist);
  }

  function pickFeature(items) {
    let item = items.find((i) => i.drift.name === view.feature && (!view.check || i.drift.check === view.check));
    if (!item) item = items[0];
    if (item) {
      view.feature = item.drift.name;
      view.check = item.drift.check;
    }
    for (const card of document.querySelectorAll('#cards .card')) {
      card.classList.toggle('selected', !!item && card.dataset.key === item.key);
    }
    return item;
  }

  function renderAlertsAndRecent(alerts, models) {
    renderAlerts(alerts, models);
    renderRecent(alerts);
  }

  window.addEventListener('hashchange', () => {
    const next = readHash();
    view.model = next.model || view.model;
    view.feature = next.feature;
    view.check = next.check;
    refreshSoon();
  });

  refresh();
})();
