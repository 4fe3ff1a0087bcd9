// The organizer dashboard: live entry figures from the merged redemption log (scanner-core's EventReport,
// served by GET /admin/v1/events/{id}/redemptions), the orders list with refunds, scanner device setup, and
// at the door: supervisor passes (POST /admin/v1/events/{id}/supervisor-passes) and the gate rules editor
// (GET/PUT /admin/v1/events/{id}/gates).
// The admin token is asked for once and kept in sessionStorage (this tab only); every call sends it as a
// bearer token. Every string from the server is put into the page as text, never as markup, except the
// setup and supervisor pass QR codes, which are SVGs the issuer renders itself.
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

  function signedOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin('The admin token is no longer accepted. Sign in again.');
  }

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
    await loadGates();
    startPolling();
  }

  $('event-select').addEventListener('change', async () => {
    eventId = Number($('event-select').value);
    sessionStorage.setItem(EVENT_KEY, String(eventId));
    $('device-setup').hidden = true;
    $('pass-result').hidden = true;
    await refresh();
    await loadGates();
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

  // ---- at the door: supervisor passes --------------------------------------------------------------------

  function fieldError(id, inputs, text) {
    const p = $(id);
    p.textContent = text || '';
    p.hidden = !text;
    for (const input of inputs) {
      if (text) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    }
  }

  function inlineSvg(box, markup) {
    const doc = new DOMParser().parseFromString(markup, 'image/svg+xml');
    const svg = doc.documentElement;
    box.replaceChildren();
    if (svg && svg.nodeName === 'svg') box.append(document.importNode(svg, true));
  }

  $('pass-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const nameInput = $('pass-name');
    const hoursInput = $('pass-hours');
    fieldError('pass-error', [nameInput, hoursInput], '');
    const name = nameInput.value.trim();
    const hours = Number(hoursInput.value);
    if (!name) {
      fieldError('pass-error', [nameInput], 'Enter the supervisor’s name.');
      return nameInput.focus();
    }
    if (!Number.isInteger(hours) || hours < 1 || hours > 168) {
      fieldError('pass-error', [hoursInput], 'The pass is valid for 1 to 168 hours (7 days).');
      return hoursInput.focus();
    }
    try {
      const p = await api(`/admin/v1/events/${eventId}/supervisor-passes`, { method: 'POST', json: { name, hours } });
      $('pass-title').textContent = `Supervisor pass for ${p.name}`;
      const until = new Date(p.not_after * 1000);
      $('pass-expiry').textContent = `Valid until ${until.toLocaleString()} (${until.toISOString().slice(0, 16).replace('T', ' ')} UTC).`;
      $('pass-expiry').dataset.notAfter = String(p.not_after);
      inlineSvg($('pass-qr'), p.qr_svg);
      $('pass-text').value = p.pass;
      $('pass-result').hidden = false;
      nameInput.value = '';
      say(`Supervisor pass made for ${p.name}.`);
      $('pass-title').focus();
    } catch (e) {
      if (e instanceof Unauthorized) return signedOut();
      fieldError('pass-error', [nameInput, hoursInput], `Could not make the pass: ${e.message}`);
    }
  });
  $('copy-pass').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('pass-text').value);
      say('Pass text copied.');
    } catch {
      $('pass-text').select();
      say('Select the pass text and copy it (the browser did not allow copying).');
    }
  });

  // ---- at the door: gate rules ---------------------------------------------------------------------------

  let gateNames = { ticket_type_names: [], addon_names: [] };
  let gateSeq = 0;

  async function loadGates() {
    if (eventId === null) return;
    try {
      const rules = await api(`/admin/v1/events/${eventId}/gates`);
      renderGates(rules);
      fieldError('gates-error', [], '');
    } catch (e) {
      if (e instanceof Unauthorized) return;
      fieldError('gates-error', [], `Could not load the gate rules: ${e.message}`);
    }
  }

  function renderGates(rules) {
    gateNames = { ticket_type_names: rules.ticket_type_names || [], addon_names: rules.addon_names || [] };
    $('gate-list').replaceChildren();
    for (const g of rules.gates) addGate(g);
    updateGateNumbers();
  }

  function updateGateNumbers() {
    const gates = [...$('gate-list').children];
    gates.forEach((fs, i) => {
      fs.querySelector('legend').textContent = `Gate ${i + 1}`;
    });
    $('gates-empty').hidden = gates.length > 0;
  }

  function checkboxes(legendText, names, ticked, kind) {
    const fs = el('fieldset');
    fs.append(el('legend', legendText));
    const box = el('div', undefined, 'choices');
    names.forEach((name, i) => {
      const label = el('label', undefined, 'check');
      const input = el('input');
      input.type = 'checkbox';
      input.value = String(i);
      input.dataset.kind = kind;
      input.checked = (ticked || []).includes(i);
      label.append(input, document.createTextNode(name));
      box.append(label);
    });
    if (names.length === 0) box.append(el('p', 'This event has none.', 'hint'));
    fs.append(box);
    return fs;
  }

  function addGate(rule = { gate: '' }) {
    const n = ++gateSeq;
    const fs = el('fieldset', undefined, 'gate');
    fs.append(el('legend', 'Gate'));
    const nameId = `gate-${n}-name`;
    const nameLabel = el('label', 'Gate name (as set on the scanners)');
    nameLabel.htmlFor = nameId;
    const name = el('input');
    Object.assign(name, { type: 'text', id: nameId, maxLength: 200, required: true, value: rule.gate || '' });
    name.dataset.kind = 'name';
    fs.append(nameLabel, name);
    fs.append(
      checkboxes('Admits only these ticket types (none ticked: every type)', gateNames.ticket_type_names, rule.ticket_types, 'type'),
      checkboxes('Admits only tickets with one of these add-ons (none ticked: no add-on needed)', gateNames.addon_names, rule.addons, 'addon'),
    );
    const redeemsId = `gate-${n}-redeems`;
    const redeemsLabel = el('label', 'Redeems an add-on (a bar or a merchandise stand, not an entrance)');
    redeemsLabel.htmlFor = redeemsId;
    const redeems = el('select');
    redeems.id = redeemsId;
    redeems.dataset.kind = 'redeems';
    redeems.append(Object.assign(el('option', 'No: this gate is an entrance'), { value: '' }));
    gateNames.addon_names.forEach((a, i) => redeems.append(Object.assign(el('option', `Yes: ${a}`), { value: String(i) })));
    redeems.value = rule.redeems_addon === undefined || rule.redeems_addon === null ? '' : String(rule.redeems_addon);
    fs.append(redeemsLabel, redeems);
    const remove = el('button', 'Remove gate', 'secondary');
    remove.type = 'button';
    const removeLabel = () => remove.setAttribute('aria-label', `Remove gate ${name.value.trim() || 'without a name'}`);
    removeLabel();
    name.addEventListener('input', removeLabel);
    remove.addEventListener('click', () => {
      fs.remove();
      updateGateNumbers();
      $('add-gate').focus();
    });
    const actions = el('p');
    actions.append(remove);
    fs.append(actions);
    $('gate-list').append(fs);
    updateGateNumbers();
    return name;
  }

  $('add-gate').addEventListener('click', () => addGate().focus());

  $('gates-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const nameInputs = [...$('gate-list').querySelectorAll('input[data-kind="name"]')];
    fieldError('gates-error', nameInputs, '');
    const gates = [];
    for (const fs of $('gate-list').children) {
      const name = fs.querySelector('input[data-kind="name"]');
      if (!name.value.trim()) {
        fieldError('gates-error', [name], `${fs.querySelector('legend').textContent} needs a name.`);
        return name.focus();
      }
      const ticked = (kind) =>
        [...fs.querySelectorAll(`input[data-kind="${kind}"]:checked`)].map((c) => Number(c.value));
      const gate = { gate: name.value.trim() };
      const types = ticked('type');
      const addons = ticked('addon');
      const redeems = fs.querySelector('select[data-kind="redeems"]').value;
      if (types.length) gate.ticket_types = types;
      if (addons.length) gate.addons = addons;
      if (redeems !== '') gate.redeems_addon = Number(redeems);
      gates.push(gate);
    }
    try {
      const rules = await api(`/admin/v1/events/${eventId}/gates`, { method: 'PUT', json: { gates } });
      renderGates(rules);
      say(
        rules.gates.length
          ? `Gate rules saved (${rules.gates.length} ${rules.gates.length === 1 ? 'gate' : 'gates'}). Scanners apply them after their next sync.`
          : 'Gate rules cleared: every gate admits every ticket.',
      );
    } catch (e) {
      if (e instanceof Unauthorized) return signedOut();
      fieldError('gates-error', [], `Could not save the gate rules: ${e.message}`);
    }
  });

  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && !$('app').hidden) refresh();
  });

  start();
})();
