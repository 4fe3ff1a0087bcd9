// The organizer dashboard: live entry figures from the merged redemption log (scanner-core's EventReport,
// served by GET /admin/v1/events/{id}/redemptions), the orders list with refunds, and scanner device setup.
// The admin token is asked for once and kept in sessionStorage (this tab only); every call sends it as a
// bearer token. Every string from the server is put into the page as text, never as markup, except the
// setup QR, which is an SVG the issuer renders itself.
'use strict';

(function () {
  const TOKEN_KEY = 'tickets.adminToken';
  const EVENT_KEY = 'tickets.dashboardEvent';
  const POLL_MS = 4000;
  const $ = (id) => document.getElementById(id);

  let events = [];
  let eventId = null;
  let pollTimer = null;
  let refreshing = false;

  class Unauthorized extends Error {}

  async function api(path, { method = 'GET', json } = {}) {
    const headers = { authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ''}`, accept: 'application/json' };
    const init = { method, headers };
    if (json !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(json);
    }
    const res = await fetch(path, init);
    if (res.status === 401) throw new Unauthorized('the admin token was not accepted');
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new Error(body?.error?.message || `${method} ${path} answered ${res.status}`);
    return body;
  }

  function el(tag, text, className) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (className) e.className = className;
    return e;
  }
  function row(cells, className) {
    const tr = el('tr', undefined, className);
    for (const c of cells) {
      const td = c instanceof Node ? el('td') : el('td', c.text ?? c);
      if (c instanceof Node) td.append(c);
      if (c.num) td.className = 'num';
      tr.append(td);
    }
    return tr;
  }
  function fillTable(id, rows, emptyText, columns) {
    const body = $(id).tBodies[0];
    body.replaceChildren();
    if (rows.length === 0) {
      const tr = el('tr', undefined, 'empty');
      const td = el('td', emptyText);
      td.colSpan = columns;
      tr.append(td);
      body.append(tr);
      return;
    }
    body.append(...rows);
  }
  function money(cents, currency) {
    try {
      return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(cents / 100);
    } catch {
      return `${(cents / 100).toFixed(2)} ${currency}`;
    }
  }
  function say(text) {
    const m = $('message');
    m.textContent = text;
    m.hidden = !text;
  }
  function problem(text) {
    const p = $('problem');
    p.textContent = text;
    p.hidden = !text;
  }

  // ---- sign in / out -------------------------------------------------------------------------------------

  function showLogin(message) {
    stopPolling();
    $('app').hidden = true;
    $('sign-out').hidden = true;
    $('login').hidden = false;
    const err = $('login-error');
    err.textContent = message || '';
    err.hidden = !message;
    $('admin-token').focus();
  }

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('admin-token').value.trim());
    $('admin-token').value = '';
    await start();
  });
  $('sign-out').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin();
  });

  async function start() {
    if (!sessionStorage.getItem(TOKEN_KEY)) return showLogin();
    try {
      events = await api('/admin/v1/events');
    } catch (e) {
      if (e instanceof Unauthorized) {
        sessionStorage.removeItem(TOKEN_KEY);
        return showLogin('That token was not accepted. Check DATA_DIR/admin-token and try again.');
      }
      return showLogin(`The issuer could not be reached: ${e.message}`);
    }
    $('login').hidden = true;
    $('app').hidden = false;
    $('sign-out').hidden = false;
    const select = $('event-select');
    select.replaceChildren(...events.map((e) => Object.assign(el('option', e.name), { value: String(e.id) })));
    const remembered = Number(sessionStorage.getItem(EVENT_KEY));
    eventId = events.some((e) => e.id === remembered) ? remembered : events[0]?.id ?? null;
    if (eventId !== null) select.value = String(eventId);
    if (eventId === null) {
      $('event-title').textContent = 'No events yet';
      return;
    }
    await refresh();
    startPolling();
  }

  $('event-select').addEventListener('change', async () => {
    eventId = Number($('event-select').value);
    sessionStorage.setItem(EVENT_KEY, String(eventId));
    $('device-setup').hidden = true;
    await refresh();
  });

  function startPolling() {
    stopPolling();
    pollTimer = setInterval(refresh, POLL_MS);
  }
  function stopPolling() {
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = null;
  }

  // ---- live figures --------------------------------------------------------------------------------------

  async function refresh() {
    if (refreshing || eventId === null) return;
    refreshing = true;
    try {
      const [report, allEvents, orders] = await Promise.all([
        api(`/admin/v1/events/${eventId}/redemptions`),
        api('/admin/v1/events'),
        api(`/admin/v1/orders?event=${eventId}&limit=200`),
      ]);
      events = allEvents;
      const event = events.find((e) => e.id === eventId);
      if (event) renderEvent(event);
      renderReport(report, event);
      renderOrders(orders.orders);
      problem('');
      $('updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      if (e instanceof Unauthorized) {
        sessionStorage.removeItem(TOKEN_KEY);
        showLogin('The admin token is no longer accepted. Sign in again.');
      } else {
        problem(`Could not refresh: ${e.message}. Retrying.`);
      }
    } finally {
      refreshing = false;
    }
  }

  function renderEvent(event) {
    $('event-title').textContent = event.name;
    const capacity = event.ticket_types.reduce((n, t) => n + t.capacity, 0);
    const sold = event.ticket_types.reduce((n, t) => n + (t.capacity - t.available), 0);
    $('capacity').textContent = capacity;
    $('sold').textContent = sold;
  }

  function renderReport(r, event) {
    const capacity = event ? event.ticket_types.reduce((n, t) => n + t.capacity, 0) : 0;
    $('admitted').textContent = r.admitted;
    $('inside').textContent = Math.max(0, r.admitted - r.exits);
    $('refused').textContent = r.refused + r.already_used;
    $('conflict-count').textContent = r.conflicts.length;
    $('meter-fill').style.width = `${capacity ? Math.min(100, (100 * r.admitted) / capacity) : 0}%`;

    fillTable(
      'gates',
      Object.entries(r.admitted_by_gate).map(([gate, n]) => row([gate, { text: n, num: true }])),
      'No entries yet.',
      2,
    );
    // Amounts come formatted from scanner-core's report (`text`), in each currency's own minor unit.
    const collectedRows = Object.entries(r.collected_by_gate ?? {}).flatMap(([gate, sums]) =>
      sums.map((m) => row([gate, { text: m.text, num: true }])),
    );
    for (const m of r.collected ?? []) collectedRows.push(row(['All gates', { text: m.text, num: true }], 'total'));
    fillTable('collected', collectedRows, 'Nothing collected at the door yet.', 2);
    $('collected-summary').textContent = r.paid_at_door
      ? `Tickets paid at the door: ${r.paid_at_door}` +
        (r.paid_at_door_amount_unknown ? ` (${r.paid_at_door_amount_unknown} without a recorded amount)` : '') +
        `. Payment requests scanned: ${r.payment_requests}.`
      : '';
    const reasons = Object.entries(r.refused_by_reason);
    if (r.already_used) reasons.unshift(['already used', r.already_used]);
    fillTable('refusals', reasons.map(([reason, n]) => row([reason, { text: n, num: true }])), 'No refused scans.', 2);

    const conflictRows = [];
    for (const c of r.conflicts) {
      c.scans.forEach((s, i) => {
        const ticket = i === 0 ? `${c.ticket}${c.reentry ? ' (re-entry)' : ''}` : '';
        conflictRows.push(
          row([ticket, s.device_name || s.device, s.gate, s.at, scanLabel(s)], i === 0 ? 'conflict-first' : undefined),
        );
      });
    }
    fillTable('conflicts', conflictRows, 'No duplicates found.', 5);
    fillTable(
      'devices',
      r.devices.map((d) => row([d.name || d.device, { text: d.scans, num: true }, { text: d.admitted, num: true }])),
      'No scans synced yet.',
      3,
    );
    renderChart(r.admitted_by_hour);
  }

  function scanLabel(s) {
    const kind = s.kind === 'exit' ? 'exit' : 'entry';
    const by = s.path === 'edge' ? ', online' : '';
    return s.override_reason ? `${kind}, override: ${s.override_reason}${by}` : `${kind}${by}`;
  }

  // Bars per hour as inline SVG: no chart library, nothing from a CDN.
  function renderChart(byHour) {
    const NS = 'http://www.w3.org/2000/svg';
    const entries = Object.entries(byHour).sort(([a], [b]) => a.localeCompare(b));
    const box = $('chart');
    box.replaceChildren();
    if (entries.length === 0) {
      box.append(el('p', 'No entries yet.', 'hint'));
      return;
    }
    const width = 640;
    const height = 200;
    const pad = { top: 16, bottom: 28, left: 8, right: 8 };
    const max = Math.max(...entries.map(([, n]) => n));
    const slot = (width - pad.left - pad.right) / entries.length;
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', entries.map(([h, n]) => `${h}: ${n} entries`).join('; '));
    entries.forEach(([hour, n], i) => {
      const h = ((height - pad.top - pad.bottom) * n) / max;
      // A lone hour must not become one wall-wide block: bars are at most 48 units wide.
      const barWidth = Math.min(slot * 0.7, 48);
      const x = pad.left + i * slot + (slot - barWidth) / 2;
      const y = height - pad.bottom - h;
      const bar = document.createElementNS(NS, 'rect');
      Object.entries({ x, y, width: barWidth, height: h, class: 'bar' }).forEach(([k, v]) => bar.setAttribute(k, v));
      const title = document.createElementNS(NS, 'title');
      title.textContent = `${hour}: ${n}`;
      bar.append(title);
      const value = document.createElementNS(NS, 'text');
      Object.entries({ x: x + barWidth / 2, y: y - 3, 'text-anchor': 'middle', class: 'value' }).forEach(([k, v]) =>
        value.setAttribute(k, v),
      );
      value.textContent = n;
      const label = document.createElementNS(NS, 'text');
      Object.entries({ x: x + barWidth / 2, y: height - 10, 'text-anchor': 'middle', class: 'axis' }).forEach(([k, v]) =>
        label.setAttribute(k, v),
      );
      // `YYYY-MM-DDTHH:00Z` → `MM-DD HH:00`
      label.textContent = `${hour.slice(5, 10)} ${hour.slice(11, 16)}`;
      svg.append(bar, value, label);
    });
    box.append(svg);
  }

  // ---- orders and refunds --------------------------------------------------------------------------------

  const pendingConfirm = new Set();

  function renderOrders(orders) {
    const rows = orders.map((o) => {
      const who = el('span');
      who.append(el('span', o.customer_name), el('br'), el('span', o.customer_email, 'meta'));
      const status = el('span', o.status, `status-${o.status}`);
      let action = el('span', '');
      if (o.status === 'confirmed' || o.status === 'payment_conflict' || o.status === 'pending') {
        const confirming = pendingConfirm.has(o.id);
        const verb = o.status === 'pending' ? 'Cancel' : 'Refund';
        action = el('button', confirming ? `Confirm: ${verb.toLowerCase()} ${o.id}` : verb, 'secondary');
        action.type = 'button';
        action.dataset.order = o.id;
        action.setAttribute('aria-label', confirming ? `Confirm ${verb.toLowerCase()} of order ${o.id}` : `${verb} order ${o.id}`);
        action.addEventListener('click', () => refundClicked(o, verb === 'Cancel' ? 'cancel' : 'refund'));
      }
      return row([o.id, who, status, { text: o.tickets, num: true }, { text: money(o.total_cents, o.currency), num: true }, action]);
    });
    fillTable('orders', rows, 'No orders yet.', 6);
  }

  // Two clicks on purpose: a refund revokes the tickets at every gate and cannot be undone.
  async function refundClicked(order, action) {
    if (!pendingConfirm.has(order.id)) {
      pendingConfirm.add(order.id);
      await refresh();
      document.querySelector(`button[data-order="${CSS.escape(order.id)}"]`)?.focus();
      return;
    }
    pendingConfirm.delete(order.id);
    try {
      const r = await api(`/admin/v1/orders/${encodeURIComponent(order.id)}/${action}`, { method: 'POST' });
      say(
        `Order ${r.order_id} is ${r.status}. Its tickets are on the revocation list (version ${r.revocation_version}); ` +
          'scanners refuse them after their next sync.',
      );
    } catch (e) {
      problem(`Could not ${action} order ${order.id}: ${e.message}`);
    }
    await refresh();
  }

  // ---- scanner devices -----------------------------------------------------------------------------------

  $('device-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = $('device-name').value.trim();
    if (!name) return;
    try {
      const d = await api('/admin/v1/devices', { method: 'POST', json: { name, event: eventId } });
      $('setup-device-name').textContent = d.name;
      $('setup-url').value = d.setup_url;
      const doc = new DOMParser().parseFromString(d.setup_qr_svg, 'image/svg+xml');
      const svg = doc.documentElement;
      $('setup-qr').replaceChildren();
      if (svg && svg.nodeName === 'svg') $('setup-qr').append(document.importNode(svg, true));
      $('device-setup').hidden = false;
      $('device-name').value = '';
      say(`Scanner device "${d.name}" created.`);
      $('setup-url').focus();
      $('setup-url').select();
    } catch (e) {
      problem(`Could not create the device: ${e.message}`);
    }
  });
  $('copy-setup').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('setup-url').value);
      say('Setup link copied.');
    } catch {
      $('setup-url').select();
      say('Select the link and copy it (the browser did not allow copying).');
    }
  });

  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && !$('app').hidden) refresh();
  });

  start();
})();
