// The dashboard's orders section: find an order (GET /admin/v1/orders?q=), its detail (tickets with their
// holders, refunds, mails), refund or cancel one ticket, edit a ticket's holder name, resend the tickets,
// and the CSV exports. Served by the issuer as /dashboard/orders.js beside dashboard.js; it only needs the
// event picker (#event-select) of the page.
//
// Requests: the staff session cookie (with the session's CSRF token in X-CSRF-Token for writes, read once
// from GET /admin/v1/session), or the admin token the page keeps in sessionStorage (as a bearer token).
// Every string from the server goes into the page as text, never as markup.
'use strict';

(function () {
  const { request, api, el, button, money } = window.DashboardCommon;
  const $ = (id) => document.getElementById(id);
  if (!$('orders-admin')) return;

  let current = null; // the order shown in the detail
  const armed = new Set(); // "refund:SEQ" / "cancel:SEQ" buttons clicked once (a second click confirms)

  function status(text, isProblem = false) {
    const s = $('orders-status');
    s.textContent = text;
    s.className = isProblem ? 'error-summary' : 'notice';
    s.hidden = !text;
  }
  function eventId() {
    const v = Number($('event-select')?.value);
    return Number.isFinite(v) && v > 0 ? v : null;
  }

  // ---- search ---------------------------------------------------------------------------------------------

  async function search() {
    const q = $('order-search').value.trim();
    const ev = eventId();
    const params = new URLSearchParams({ limit: '50' });
    if (ev !== null) params.set('event', String(ev));
    if (q) params.set('q', q);
    try {
      const r = await api(`/admin/v1/orders?${params}`);
      const body = $('order-results').tBodies[0];
      body.replaceChildren();
      for (const o of r.orders) {
        const tr = el('tr');
        const who = el('td');
        who.append(el('span', o.customer_name), el('br'), el('span', o.customer_email, 'meta'));
        const open = el('td');
        open.append(button('Open', `Open order ${o.id}`, () => openOrder(o.id)));
        tr.append(el('td', o.id), who, el('td', o.status), el('td', `${o.tickets - o.revoked_tickets} of ${o.tickets}`, 'num'),
          el('td', money(o.total_cents, o.currency), 'num'), open);
        body.append(tr);
      }
      $('order-results-summary').textContent =
        r.total === 0 ? 'No orders match.' : `${r.total} order${r.total === 1 ? '' : 's'} match${r.total === 1 ? 'es' : ''}${r.total > r.orders.length ? ` (showing ${r.orders.length})` : ''}.`;
    } catch (e) {
      status(`Could not search: ${e.message}`, true);
    }
  }

  // ---- one order ------------------------------------------------------------------------------------------

  async function openOrder(id) {
    try {
      current = await api(`/admin/v1/orders/${encodeURIComponent(id)}/detail`);
    } catch (e) {
      status(`Could not open order ${id}: ${e.message}`, true);
      return;
    }
    renderDetail();
    $('order-detail').hidden = false;
    $('order-detail-title').focus();
  }

  function renderDetail() {
    const o = current;
    $('order-detail-title').textContent = `Order ${o.id}`;
    $('order-detail-meta').textContent =
      `${o.customer_name} <${o.customer_email}> · ${o.status} · ${money(o.total_cents, o.currency)} · ${o.payment_method}`;
    const body = $('order-tickets').tBodies[0];
    body.replaceChildren();
    for (const t of o.tickets) {
      const n = t.seq + 1;
      const tr = el('tr');
      const holder = el('td');
      const form = el('form', undefined, 'holder-form');
      const input = el('input');
      input.id = `holder-${t.seq}`;
      input.type = 'text';
      input.maxLength = 100;
      input.required = true;
      input.value = t.holder_name;
      input.disabled = t.revoked;
      const label = el('label', `Holder of ticket ${n}`, 'visually-hidden');
      label.htmlFor = input.id;
      const save = el('button', 'Save', 'secondary');
      save.type = 'submit';
      save.disabled = t.revoked;
      save.setAttribute('aria-label', `Save holder of ticket ${n}`);
      form.append(label, input, save);
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        editHolder(t.seq, input.value);
      });
      holder.append(form);
      const actions = el('td', undefined, 'buttons');
      if (!t.revoked && o.status === 'confirmed') {
        for (const [action, verb] of [['refund', 'Refund'], ['cancel', 'Cancel']]) {
          const key = `${action}:${t.seq}`;
          const confirming = armed.has(key);
          const b = button(confirming ? `Confirm ${verb.toLowerCase()}` : verb,
            confirming ? `Confirm ${verb.toLowerCase()} of ticket ${n}` : `${verb} ticket ${n}`,
            () => closeTicket(t.seq, action));
          b.id = `${action}-ticket-${t.seq}`;
          actions.append(b);
        }
      }
      const addons = t.addons.length ? ` + ${t.addons.join(', ')}` : '';
      tr.append(el('td', n), el('td', `${t.ticket_type_name}${addons}`), holder,
        el('td', t.revoked ? 'refunded or cancelled' : 'valid'), actions);
      body.append(tr);
    }
    const refunds = $('order-refunds');
    refunds.replaceChildren(...o.refunds.map((r) => el('li',
      `${r.whole_order ? 'Whole order' : `Ticket ${r.ticket_seq + 1}`}: ${r.amount_cents === null ? 'the rest of the payment' : money(r.amount_cents, o.currency)} — ${r.status}${r.last_error ? ` (${r.last_error})` : ''}`)));
    if (o.refunds.length === 0) refunds.append(el('li', 'No refunds.'));
    const mails = $('order-mails');
    mails.replaceChildren(...o.mails.map((m) => el('li',
      `${m.channel === 'sms' ? 'SMS: ' : ''}${m.kind === 'tickets' ? 'Tickets' : m.kind === 'resend' ? 'Tickets (resent)' : m.kind === 'lookup' ? 'Order links' : m.kind}: ${m.status}${m.sent_at ? ` at ${new Date(m.sent_at).toLocaleString()}` : ''}`)));
    if (o.mails.length === 0) mails.append(el('li', 'No mails.'));
    $('order-resend').disabled = o.status !== 'confirmed' || o.tickets.every((t) => t.revoked);
  }

  // Two clicks on purpose: the ticket is refused at every gate afterwards and this cannot be undone.
  async function closeTicket(seq, action) {
    const key = `${action}:${seq}`;
    if (!armed.has(key)) {
      armed.add(key);
      renderDetail();
      $(`${action}-ticket-${seq}`)?.focus();
      return;
    }
    armed.delete(key);
    try {
      const r = await api(`/admin/v1/orders/${encodeURIComponent(current.id)}/tickets/${seq}/${action}`, { method: 'POST' });
      const money_back = r.refund_cents ? ` ${money(r.refund_cents, current.currency)} go back to the customer (refund ${r.refund?.status ?? 'pending'}).` : '';
      status(`Ticket ${seq + 1} of order ${r.order_id} is ${action === 'refund' ? 'refunded' : 'cancelled'}; scanners refuse it after their next sync (revocation list version ${r.revocation_version}).${money_back}`);
    } catch (e) {
      status(`Could not ${action} ticket ${seq + 1}: ${e.message}`, true);
    }
    await openOrder(current.id);
    await search();
  }

  async function editHolder(seq, name) {
    try {
      const r = await api(`/admin/v1/orders/${encodeURIComponent(current.id)}/tickets/${seq}/holder`,
        { method: 'PUT', json: { holder_name: name } });
      status(`Ticket ${seq + 1} now carries the name ${r.holder_name}. Scanners show it after their next manifest fetch.`);
    } catch (e) {
      status(`Could not change the holder of ticket ${seq + 1}: ${e.message}`, true);
    }
    await openOrder(current.id);
  }

  $('order-resend').addEventListener('click', async () => {
    try {
      await api(`/admin/v1/orders/${encodeURIComponent(current.id)}/resend`, { method: 'POST' });
      status(`The tickets of order ${current.id} are mailed again to ${current.customer_email}.`);
    } catch (e) {
      status(`Could not resend: ${e.message}`, true);
    }
    await openOrder(current.id);
  });

  // ---- exports --------------------------------------------------------------------------------------------

  async function download(kind) {
    const ev = eventId();
    if (ev === null) return;
    try {
      const res = await request(`/admin/v1/events/${ev}/exports/${kind}.csv`);
      if (!res.ok) throw new Error(((await res.json().catch(() => null))?.error?.message) || `${res.status}`);
      const url = URL.createObjectURL(await res.blob());
      const a = el('a');
      a.href = url;
      a.download = `event-${ev}-${kind}.csv`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      status(`The ${kind} list is downloaded (event-${ev}-${kind}.csv).`);
    } catch (e) {
      status(`Could not export the ${kind}: ${e.message}`, true);
    }
  }
  $('export-orders').addEventListener('click', () => download('orders'));
  $('export-attendees').addEventListener('click', () => download('attendees'));
  $('export-checkins').addEventListener('click', () => download('checkins'));

  $('order-search-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    search();
  });
  $('event-select')?.addEventListener('change', () => {
    $('order-detail').hidden = true;
    current = null;
    search();
  });
})();
