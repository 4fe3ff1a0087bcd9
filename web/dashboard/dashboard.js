// The organizer dashboard: live entry figures from the merged redemption log (scanner-core's EventReport,
// served by GET /admin/v1/events/{id}/redemptions), the orders list with refunds, scanner device setup, and
// at the door: supervisor passes (POST /admin/v1/events/{id}/supervisor-passes) and the gate rules editor
// (GET/PUT /admin/v1/events/{id}/gates).
// Signing in: a staff member's email and password (POST /admin/v1/session sets an HttpOnly session cookie;
// every write then carries the session's CSRF token in X-CSRF-Token), or the legacy admin token, kept in
// sessionStorage (this tab only) and sent as a bearer token. An invitation link (/dashboard/#invite=TOKEN)
// opens the "set your password" form. Sections the signed-in role may not use are hidden (the server
// refuses them anyway). Owners also get the Staff, API token and Audit log sections.
// Every string from the server is put into the page as text, never as markup, except the setup and
// supervisor pass QR codes, which are SVGs the issuer renders itself.
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
  // Who is signed in (GET /admin/v1/session): email, role, permissions and, for a cookie session, csrf_token.
  let me = null;

  class Unauthorized extends Error {}

  function can(permission) {
    return !!me && me.permissions.includes(permission);
  }

  // The shared request and DOM helpers (common.js); a 401 here means the sign-in is gone.
  const common = window.DashboardCommon;
  const { el, row, fillTable, money } = common;
  async function api(path, opts = {}) {
    try {
      return await common.api(path, opts);
    } catch (e) {
      if (e.status === 401) {
        throw new Unauthorized(sessionStorage.getItem(TOKEN_KEY) ? 'the admin token was not accepted' : 'not signed in');
      }
      throw e;
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

  function showLogin(message, notice) {
    stopPolling();
    me = null;
    common.forgetSession();
    $('app').hidden = true;
    $('invite').hidden = true;
    $('sign-out').hidden = true;
    $('whoami').hidden = true;
    $('login').hidden = false;
    const err = $('login-error');
    err.textContent = message || '';
    err.hidden = !message;
    $('password-error').hidden = true;
    $('login-notice').textContent = notice || '';
    $('login-notice').hidden = !notice;
    (message ? $('admin-token') : $('login-email')).focus();
  }

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('admin-token').value.trim());
    $('admin-token').value = '';
    await start();
  });

  $('password-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const err = $('password-error');
    err.hidden = true;
    const email = $('login-email').value.trim();
    const password = $('login-password').value;
    if (!email || !password) {
      err.textContent = 'Enter your email and your password.';
      err.hidden = false;
      return (email ? $('login-password') : $('login-email')).focus();
    }
    let res;
    try {
      res = await fetch('/admin/v1/session', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ email, password }),
      });
    } catch (e) {
      err.textContent = `The issuer could not be reached: ${e.message}`;
      err.hidden = false;
      return;
    }
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      err.textContent =
        res.status === 429
          ? `Too many failed sign-ins. Try again in ${Math.ceil((Number(res.headers.get('retry-after')) || 60) / 60)} minutes.`
          : body?.error?.message || `Sign-in failed (${res.status}).`;
      err.hidden = false;
      $('login-password').value = '';
      return $('login-password').focus();
    }
    $('login-password').value = '';
    sessionStorage.removeItem(TOKEN_KEY);
    me = body;
    await start();
  });

  $('sign-out').addEventListener('click', async () => {
    if (!sessionStorage.getItem(TOKEN_KEY)) {
      try {
        await api('/admin/v1/session', { method: 'DELETE' });
      } catch {
        // Signed out locally whatever the server said: the cookie expires on its own.
      }
    }
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin();
  });

  function signedOut() {
    const hadToken = !!sessionStorage.getItem(TOKEN_KEY);
    sessionStorage.removeItem(TOKEN_KEY);
    if (hadToken) showLogin('The admin token is no longer accepted. Sign in again.');
    else showLogin(undefined, 'Your session has ended. Sign in again.');
  }

  const ROLE_NAMES = { owner: 'Owner', box_office: 'Box office', door_supervisor: 'Door supervisor', viewer: 'Viewer' };

  // Shows only what the role may use; the server checks every request again.
  function applyRole() {
    $('whoami').textContent = `${me.email} (${ROLE_NAMES[me.role] || me.role})`;
    $('whoami').hidden = false;
    $('device-form').hidden = !can('door');
    document.querySelector('section[aria-labelledby="door-title"]').hidden = !can('door');
    document.querySelector('section[aria-labelledby="orders-title"]').hidden = !can('orders');
    for (const [id, permission] of [['orders-admin', 'orders'], ['catalog', 'catalog']]) {
      if ($(id)) $(id).hidden = !can(permission);
    }
    $('staff-admin').hidden = !can('staff');
    $('audit').hidden = !can('staff');
    $('api-tokens').hidden = me.account_id === null || me.account_id === undefined;
  }

  async function start() {
    if (location.hash.startsWith('#invite=')) return showInvite();
    try {
      common.forgetSession();
      me = await api('/admin/v1/session');
    } catch (e) {
      if (e instanceof Unauthorized) {
        if (sessionStorage.getItem(TOKEN_KEY)) {
          sessionStorage.removeItem(TOKEN_KEY);
          return showLogin('That token was not accepted. Check DATA_DIR/admin-token and try again.');
        }
        return showLogin();
      }
      return showLogin(`The issuer could not be reached: ${e.message}`);
    }
    try {
      events = await api('/admin/v1/events');
    } catch (e) {
      if (e instanceof Unauthorized) return signedOut();
      events = [];
      problem(`Could not load the events: ${e.message}`);
    }
    $('login').hidden = true;
    $('app').hidden = false;
    $('sign-out').hidden = false;
    applyRole();
    loadStaffSections();
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
    if (can('reports')) await loadGates();
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
        can('orders') ? api(`/admin/v1/orders?event=${eventId}&limit=200`) : { orders: [] },
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
        signedOut();
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
      const hub = $('device-hub').value.trim();
      const pin = $('device-hub-pin').value.trim();
      const json = { name, event: eventId };
      // Only when given: the issuer checks the hub by the rule the device applies to the link.
      if (hub) json.hub = hub;
      if (pin) json.hub_cert_sha256 = pin;
      const d = await api('/admin/v1/devices', { method: 'POST', json });
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

  // ---- invitations: set your password -------------------------------------------------------------------

  function showInvite() {
    stopPolling();
    $('login').hidden = true;
    $('app').hidden = true;
    $('invite').hidden = false;
    $('invite-password').focus();
  }

  $('invite-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const first = $('invite-password');
    const second = $('invite-password2');
    fieldError('invite-error', [first, second], '');
    if (first.value.length < 12) {
      fieldError('invite-error', [first], 'Choose a password of at least 12 characters.');
      return first.focus();
    }
    if (first.value !== second.value) {
      fieldError('invite-error', [second], 'The two passwords differ.');
      return second.focus();
    }
    const token = decodeURIComponent(location.hash.slice('#invite='.length));
    let res;
    try {
      res = await fetch('/admin/v1/invitations/accept', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ token, password: first.value }),
      });
    } catch (e) {
      return fieldError('invite-error', [], `The issuer could not be reached: ${e.message}`);
    }
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      const text =
        res.status === 404
          ? 'This invitation link no longer works (it was used or it expired). Ask an owner for a new one.'
          : body?.error?.message || `Could not set the password (${res.status}).`;
      return fieldError('invite-error', [first], text);
    }
    first.value = '';
    second.value = '';
    // The token is used up: take it out of the address bar and the history entry.
    history.replaceState(null, '', location.pathname);
    $('login-email').value = body.email;
    showLogin(undefined, `Your password is set. Sign in as ${body.email}.`);
    $('login-password').focus();
  });

  // ---- owners: staff accounts ----------------------------------------------------------------------------

  async function loadStaffSections() {
    if (can('staff')) {
      loadStaff();
      loadAudit(true);
    }
    if (!$('api-tokens').hidden) loadTokens();
  }

  function button(text, label, onClick) {
    const b = el('button', text, 'secondary');
    b.type = 'button';
    if (label) b.setAttribute('aria-label', label);
    b.addEventListener('click', onClick);
    return b;
  }

  async function staffChange(account, change, done) {
    try {
      await api(`/admin/v1/staff/${account.id}`, { method: 'PATCH', json: change });
      say(done);
    } catch (e) {
      if (e instanceof Unauthorized) return signedOut();
      problem(`Could not change ${account.email}: ${e.message}`);
    }
    await loadStaff();
  }

  function showInvitation(email, url) {
    $('staff-invite-email').textContent = email;
    $('staff-invite-url').value = url;
    $('staff-invite-result').hidden = false;
    $('staff-invite-heading').focus();
  }

  async function loadStaff() {
    let list;
    try {
      list = (await api('/admin/v1/staff')).staff;
    } catch (e) {
      if (e instanceof Unauthorized) return signedOut();
      return problem(`Could not load the staff list: ${e.message}`);
    }
    const rows = list.map((a) => {
      const select = el('select');
      select.setAttribute('aria-label', `Role of ${a.email}`);
      for (const [value, name] of Object.entries(ROLE_NAMES)) {
        select.append(Object.assign(el('option', name), { value, selected: value === a.role }));
      }
      const actions = el('p', undefined, 'buttons');
      actions.append(
        button('Save role', `Save role of ${a.email}`, () =>
          staffChange(a, { role: select.value }, `${a.email} is now ${ROLE_NAMES[select.value]}.`),
        ),
        a.status === 'disabled'
          ? button('Enable', `Enable ${a.email}`, () => staffChange(a, { disabled: false }, `${a.email} is enabled.`))
          : button('Disable', `Disable ${a.email}`, () =>
              staffChange(a, { disabled: true }, `${a.email} is disabled and signed out everywhere.`),
            ),
      );
      if (a.status !== 'disabled') {
        actions.append(
          button('New invitation link', `New invitation link for ${a.email}`, async () => {
            try {
              const r = await api(`/admin/v1/staff/${a.id}/invitation`, { method: 'POST' });
              showInvitation(a.email, r.invitation_url);
            } catch (e) {
              problem(`Could not make a new link for ${a.email}: ${e.message}`);
            }
          }),
        );
      }
      return row([a.email, select, a.status, actions]);
    });
    fillTable('staff-table', rows, 'No staff accounts yet.', 4);
  }

  $('staff-invite-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const email = $('staff-email');
    fieldError('staff-error', [email], '');
    if (!email.value.trim() || !email.checkValidity()) {
      fieldError('staff-error', [email], 'Enter your colleague’s email address.');
      return email.focus();
    }
    try {
      const a = await api('/admin/v1/staff', { method: 'POST', json: { email: email.value.trim(), role: $('staff-role').value } });
      email.value = '';
      say(`Account created for ${a.email} (${ROLE_NAMES[a.role]}). Send them the invitation link.`);
      showInvitation(a.email, a.invitation_url);
    } catch (e) {
      if (e instanceof Unauthorized) return signedOut();
      fieldError('staff-error', [email], `Could not invite: ${e.message}`);
      return email.focus();
    }
    await loadStaff();
  });
  $('copy-invite').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('staff-invite-url').value);
      say('Invitation link copied.');
    } catch {
      $('staff-invite-url').select();
      say('Select the link and copy it (the browser did not allow copying).');
    }
  });

  // ---- API tokens ----------------------------------------------------------------------------------------

  async function loadTokens() {
    let tokens;
    try {
      tokens = (await api('/admin/v1/api-tokens')).api_tokens.filter((t) => t.revoked_at === null);
    } catch (e) {
      if (e instanceof Unauthorized) return signedOut();
      return problem(`Could not load your API tokens: ${e.message}`);
    }
    const rows = tokens.map((t) =>
      row([
        t.name,
        new Date(t.created_at * 1000).toLocaleString(),
        button('Revoke', `Revoke API token ${t.name}`, async () => {
          try {
            await api(`/admin/v1/api-tokens/${encodeURIComponent(t.id)}/revoke`, { method: 'POST' });
            say(`API token "${t.name}" revoked.`);
          } catch (e) {
            problem(`Could not revoke "${t.name}": ${e.message}`);
          }
          await loadTokens();
        }),
      ]),
    );
    fillTable('api-token-table', rows, 'No API tokens.', 3);
  }

  $('api-token-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = $('api-token-name');
    fieldError('api-token-error', [name], '');
    if (!name.value.trim()) {
      fieldError('api-token-error', [name], 'Name the token (e.g. the script that uses it).');
      return name.focus();
    }
    try {
      const t = await api('/admin/v1/api-tokens', { method: 'POST', json: { name: name.value.trim() } });
      name.value = '';
      $('api-token-value').value = t.token;
      $('api-token-result').hidden = false;
      $('api-token-value').focus();
      $('api-token-value').select();
      say(`API token "${t.name}" created. Copy it now: it is not shown again.`);
    } catch (e) {
      if (e instanceof Unauthorized) return signedOut();
      return fieldError('api-token-error', [name], `Could not create the token: ${e.message}`);
    }
    await loadTokens();
  });

  // ---- audit log -----------------------------------------------------------------------------------------

  const AUDIT_PAGE = 50;
  let auditOldest = null;

  function changeText(entry) {
    const lines = [];
    if (entry.before !== null) lines.push(`before: ${JSON.stringify(entry.before)}`);
    if (entry.after !== null) lines.push(`after: ${JSON.stringify(entry.after)}`);
    return lines.join('\n');
  }

  async function loadAudit(reset) {
    const params = new URLSearchParams({ limit: String(AUDIT_PAGE) });
    for (const [key, id] of [['action', 'audit-action'], ['actor', 'audit-actor'], ['target', 'audit-target']]) {
      const v = $(id).value.trim();
      if (v) params.set(key, v);
    }
    if (!reset && auditOldest !== null) params.set('before_id', String(auditOldest));
    let entries;
    try {
      entries = (await api(`/admin/v1/audit?${params}`)).entries;
    } catch (e) {
      if (e instanceof Unauthorized) return signedOut();
      return problem(`Could not load the audit log: ${e.message}`);
    }
    const rows = entries.map((e) => {
      const who = el('span');
      who.append(el('span', e.actor_email), el('br'), el('span', ROLE_NAMES[e.actor_role] || e.actor_role, 'meta'));
      const change = el('pre', changeText(e), 'change');
      return row([new Date(e.at_ms).toLocaleString(), who, e.action, e.target, change]);
    });
    if (reset) fillTable('audit-table', rows, 'No matching entries.', 5);
    else $('audit-table').tBodies[0].append(...rows);
    if (entries.length) auditOldest = entries[entries.length - 1].id;
    $('audit-more').hidden = entries.length < AUDIT_PAGE;
  }

  $('audit-filter').addEventListener('submit', (ev) => {
    ev.preventDefault();
    auditOldest = null;
    loadAudit(true);
  });
  $('audit-more').addEventListener('click', () => loadAudit(false));

  window.addEventListener('hashchange', () => {
    if (location.hash.startsWith('#invite=')) showInvite();
  });

  start();
})();
