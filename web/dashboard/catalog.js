// The dashboard's catalog section: create and edit events (times typed and shown in the event's own time
// zone), their ticket types, add-ons and shared quotas, and hide or stop selling what has sold (nothing is
// deleted: a ticket carries its type's index). Served by the issuer as /dashboard/catalog.js beside
// dashboard.js; it needs only its own <section id="catalog"> of the page, and starts when the signed-in
// part of the page (#app) is shown.
//
// API: GET/POST /admin/v1/events, GET/PATCH /admin/v1/events/{id}, POST/PATCH .../ticket-types[/{index}],
// .../addons[/{index}], .../quotas[/{id}]. The server validates everything again; a refusal names the
// field (422) or explains the conflict (409), and the form shows it next to that field.
// Requests: the staff session cookie (with the session's CSRF token in X-CSRF-Token for writes, read once
// from GET /admin/v1/session), or the admin token the page keeps in sessionStorage (as a bearer token).
// Every string from the server goes into the page as text, never as markup.
'use strict';

(function () {
  const { api, el, row, fillTable, button, money } = window.DashboardCommon;
  const $ = (id) => document.getElementById(id);
  if (!$('catalog')) return;

  let events = [];
  let current = null; // the event being edited (admin view), or null for a new one
  let editingType = null; // index of the ticket type in the form, or null to add one
  let editingAddon = null;
  let editingQuota = null;

  // ---------------------------------------------------------------------------------------------------
  // Requests

  // ---------------------------------------------------------------------------------------------------
  // Page helpers

  /** "12.50" or "12,5" → 1250; null when it is not an amount. */
  function cents(text) {
    const m = /^\s*(\d{1,9})(?:[.,](\d{1,2}))?\s*$/.exec(text);
    if (!m) return null;
    return Number(m[1]) * 100 + Number((m[2] || '0').padEnd(2, '0'));
  }
  function amount(c) {
    return (c / 100).toFixed(2);
  }
  function status(text) {
    const s = $('catalog-status');
    s.textContent = text;
    s.hidden = !text;
  }
  /** Shows a form's error next to the field the server (or the check here) named, and moves focus there. */
  function fieldError(form, message, fieldId) {
    const p = $(`${form}-error`);
    p.textContent = message;
    p.hidden = !message;
    for (const input of $(`${form}-form`).querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
    const field = fieldId && $(fieldId);
    if (message && field) {
      field.setAttribute('aria-invalid', 'true');
      field.focus();
    }
  }
  function buttons(...list) {
    const span = el('span', undefined, 'buttons');
    span.append(...list);
    return span;
  }
  function stateText(item) {
    if (item.hidden) return 'Hidden';
    if (item.sales_stopped) return 'Not selling';
    if (item.on_sale === false) return 'Outside sales window';
    return 'On sale';
  }

  // ---------------------------------------------------------------------------------------------------
  // Events

  const EVENT_FIELDS = { name: 'event-name', venue: 'event-venue', timezone: 'event-timezone', starts_at: 'event-starts', ends_at: 'event-ends' };

  function fillTimezones() {
    const list = $('catalog-timezones');
    if (list.options.length || typeof Intl.supportedValuesOf !== 'function') return;
    for (const tz of Intl.supportedValuesOf('timeZone')) list.append(new Option(tz));
  }

  async function loadEvents(selectId) {
    events = await api('/admin/v1/events');
    const select = $('catalog-event');
    const keep = selectId ?? select.value;
    select.replaceChildren(new Option('New event', ''));
    for (const e of events) select.append(new Option(`${e.name} (${e.starts_display})`, String(e.id)));
    select.value = events.some((e) => String(e.id) === String(keep)) ? String(keep) : '';
    // The page's report picker offers new events too.
    const picker = $('event-select');
    if (picker) {
      for (const e of events) {
        if (![...picker.options].some((o) => o.value === String(e.id))) picker.append(new Option(e.name, String(e.id)));
      }
    }
    showEvent(events.find((e) => String(e.id) === select.value) || null);
  }

  function showEvent(event) {
    current = event;
    $('event-form-title').textContent = event ? `Edit ${event.name}` : 'New event';
    $('event-save').textContent = event ? 'Save event' : 'Create event';
    $('event-name').value = event?.name ?? '';
    $('event-venue').value = event?.venue ?? '';
    $('event-timezone').value = event?.timezone ?? (Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC');
    $('event-starts').value = event?.starts_local ?? '';
    $('event-ends').value = event?.ends_local ?? '';
    $('event-when').textContent = event ? `${event.starts_display} – ${event.ends_display} (${event.timezone})` : '';
    fieldError('event', '');
    $('catalog-details').hidden = !event;
    if (!event) return;
    renderTypes();
    renderAddons();
    renderQuotas();
    resetTypeForm();
    resetAddonForm();
    resetQuotaForm();
  }

  async function refresh(message) {
    const fresh = await api(`/admin/v1/events/${current.id}`);
    const i = events.findIndex((e) => e.id === fresh.id);
    if (i >= 0) events[i] = fresh;
    current = fresh;
    $('event-when').textContent = `${fresh.starts_display} – ${fresh.ends_display} (${fresh.timezone})`;
    renderTypes();
    renderAddons();
    renderQuotas();
    if (message) status(message);
  }

  $('catalog-event').addEventListener('change', () => {
    status('');
    showEvent(events.find((e) => String(e.id) === $('catalog-event').value) || null);
  });

  $('event-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    status('');
    const body = {
      name: $('event-name').value,
      venue: $('event-venue').value,
      timezone: $('event-timezone').value.trim(),
      starts_at: $('event-starts').value,
      ends_at: $('event-ends').value,
    };
    for (const [field, id] of Object.entries(EVENT_FIELDS)) {
      if (!String(body[field]).trim()) return fieldError('event', `${$(id).labels[0].textContent}: please fill this in.`, id);
    }
    try {
      if (current) {
        await api(`/admin/v1/events/${current.id}`, { method: 'PATCH', json: body });
        await loadEvents(current.id);
        status(`Saved ${body.name.trim()}.`);
      } else {
        const created = await api('/admin/v1/events', { method: 'POST', json: body });
        await loadEvents(created.id);
        status(`Created ${body.name.trim()}. Add its ticket types below.`);
        $('tt-name').focus();
      }
    } catch (e) {
      fieldError('event', e.message, EVENT_FIELDS[e.field]);
    }
  });

  // ---------------------------------------------------------------------------------------------------
  // Ticket types

  function currency() {
    return current?.ticket_types[0]?.currency || 'EUR';
  }

  function renderTypes() {
    const quotaName = (id) => current.quotas.find((q) => q.id === id)?.name;
    const rows = current.ticket_types.map((t) => {
      const name = t.quota_id ? `${t.name} (${quotaName(t.quota_id)})` : t.name;
      return row([
        { text: String(t.index), num: true },
        name,
        { text: money(t.price_cents, t.currency), num: true },
        { text: String(t.capacity), num: true },
        { text: String(t.reserved), num: true },
        { text: String(Math.max(0, t.available)), num: true },
        stateText(t),
        buttons(
          button('Edit', `Edit ${t.name}`, () => editType(t)),
          button(t.hidden ? 'Show' : 'Hide', `${t.hidden ? 'Show' : 'Hide'} ${t.name}`, () =>
            patchType(t, { hidden: !t.hidden }, `${t.name} is ${t.hidden ? 'listed again' : 'hidden from buyers'}.`),
          ),
          button(t.sales_stopped ? 'Resume selling' : 'Stop selling', `${t.sales_stopped ? 'Resume selling' : 'Stop selling'} ${t.name}`, () =>
            patchType(t, { sales_stopped: !t.sales_stopped }, `${t.name} is ${t.sales_stopped ? 'on sale again' : 'no longer sold'}.`),
          ),
        ),
      ]);
    });
    fillTable('ticket-types', rows, 'No ticket types yet.', 8);
    const quotaSelect = $('tt-quota');
    const keep = quotaSelect.value;
    quotaSelect.replaceChildren(new Option('None (own capacity only)', ''));
    for (const q of current.quotas) quotaSelect.append(new Option(`${q.name} (${q.capacity})`, String(q.id)));
    quotaSelect.value = current.quotas.some((q) => String(q.id) === keep) ? keep : '';
  }

  async function patchType(t, json, message) {
    try {
      await api(`/admin/v1/events/${current.id}/ticket-types/${t.index}`, { method: 'PATCH', json });
      await refresh(message);
    } catch (e) {
      status('');
      const p = $('catalog-problem');
      p.textContent = e.message;
      p.hidden = false;
    }
  }

  function resetTypeForm() {
    editingType = null;
    $('tt-form').reset();
    $('tt-currency').value = currency();
    $('tt-form-title').textContent = 'Add a ticket type';
    $('tt-save').textContent = 'Add ticket type';
    $('tt-cancel').hidden = true;
    fieldError('tt', '');
  }

  function editType(t) {
    editingType = t.index;
    $('tt-form-title').textContent = `Edit ${t.name}`;
    $('tt-save').textContent = 'Save ticket type';
    $('tt-cancel').hidden = false;
    $('tt-name').value = t.name;
    $('tt-price').value = amount(t.price_cents);
    $('tt-currency').value = t.currency;
    $('tt-capacity').value = String(t.capacity);
    $('tt-sales-start').value = t.sales_start_local ?? '';
    $('tt-sales-end').value = t.sales_end_local ?? '';
    $('tt-reentry').checked = t.reentry;
    $('tt-at-door').checked = t.at_door_allowed;
    $('tt-quota').value = t.quota_id ? String(t.quota_id) : '';
    fieldError('tt', '');
    $('tt-name').focus();
  }

  const TYPE_FIELDS = {
    name: 'tt-name', price_cents: 'tt-price', currency: 'tt-currency', capacity: 'tt-capacity',
    sales_start: 'tt-sales-start', sales_end: 'tt-sales-end', quota_id: 'tt-quota',
  };

  $('tt-cancel').addEventListener('click', resetTypeForm);
  $('tt-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('catalog-problem').hidden = true;
    const price = cents($('tt-price').value);
    if (price === null) return fieldError('tt', 'Price: enter an amount such as 12.50 (0 for free).', 'tt-price');
    const capacity = Number($('tt-capacity').value);
    if (!$('tt-capacity').value || !Number.isInteger(capacity) || capacity < 0) {
      return fieldError('tt', 'Capacity: enter a whole number of tickets.', 'tt-capacity');
    }
    const body = {
      name: $('tt-name').value,
      price_cents: price,
      currency: $('tt-currency').value.trim(),
      capacity,
      sales_start: $('tt-sales-start').value || null,
      sales_end: $('tt-sales-end').value || null,
      reentry: $('tt-reentry').checked,
      at_door_allowed: $('tt-at-door').checked,
      quota_id: $('tt-quota').value ? Number($('tt-quota').value) : null,
    };
    try {
      if (editingType === null) {
        // A new type takes only the fields it sets; absent sales window sides stay open.
        if (body.sales_start === null) delete body.sales_start;
        if (body.sales_end === null) delete body.sales_end;
        await api(`/admin/v1/events/${current.id}/ticket-types`, { method: 'POST', json: body });
      } else {
        const before = current.ticket_types.find((t) => t.index === editingType);
        // Only what changed: re-entry and currency are fixed once tickets sold, so resending them unchanged
        // must not read as an attempt to change them.
        for (const k of Object.keys(body)) if (JSON.stringify(before[k] ?? null) === JSON.stringify(body[k])) delete body[k];
        if (body.sales_start !== undefined && body.sales_start === (before.sales_start_local ?? null)) delete body.sales_start;
        if (body.sales_end !== undefined && body.sales_end === (before.sales_end_local ?? null)) delete body.sales_end;
        await api(`/admin/v1/events/${current.id}/ticket-types/${editingType}`, { method: 'PATCH', json: body });
      }
      const name = $('tt-name').value.trim();
      const verb = editingType === null ? 'Added' : 'Saved';
      resetTypeForm();
      await refresh(`${verb} ticket type ${name}.`);
    } catch (e) {
      fieldError('tt', e.message, TYPE_FIELDS[e.field] || 'tt-name');
    }
  });

  // ---------------------------------------------------------------------------------------------------
  // Add-ons

  function renderAddons() {
    const rows = current.addons.map((a) =>
      row([
        { text: String(a.index), num: true },
        a.name,
        { text: money(a.price_cents, currency()), num: true },
        { text: String(a.capacity), num: true },
        { text: String(a.reserved), num: true },
        stateText(a),
        buttons(
          button('Edit', `Edit ${a.name}`, () => editAddon(a)),
          button(a.hidden ? 'Show' : 'Hide', `${a.hidden ? 'Show' : 'Hide'} ${a.name}`, () =>
            patchAddon(a, { hidden: !a.hidden }, `${a.name} is ${a.hidden ? 'listed again' : 'hidden from buyers'}.`),
          ),
          button(a.sales_stopped ? 'Resume selling' : 'Stop selling', `${a.sales_stopped ? 'Resume selling' : 'Stop selling'} ${a.name}`, () =>
            patchAddon(a, { sales_stopped: !a.sales_stopped }, `${a.name} is ${a.sales_stopped ? 'on sale again' : 'no longer sold'}.`),
          ),
        ),
      ]),
    );
    fillTable('addons', rows, 'No add-ons yet.', 7);
  }

  async function patchAddon(a, json, message) {
    try {
      await api(`/admin/v1/events/${current.id}/addons/${a.index}`, { method: 'PATCH', json });
      await refresh(message);
    } catch (e) {
      const p = $('catalog-problem');
      p.textContent = e.message;
      p.hidden = false;
    }
  }

  function resetAddonForm() {
    editingAddon = null;
    $('addon-form').reset();
    $('addon-form-title').textContent = 'Add an add-on';
    $('addon-save').textContent = 'Add add-on';
    $('addon-cancel').hidden = true;
    fieldError('addon', '');
  }

  function editAddon(a) {
    editingAddon = a.index;
    $('addon-form-title').textContent = `Edit ${a.name}`;
    $('addon-save').textContent = 'Save add-on';
    $('addon-cancel').hidden = false;
    $('addon-name').value = a.name;
    $('addon-price').value = amount(a.price_cents);
    $('addon-capacity').value = String(a.capacity);
    fieldError('addon', '');
    $('addon-name').focus();
  }

  $('addon-cancel').addEventListener('click', resetAddonForm);
  $('addon-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const price = cents($('addon-price').value);
    if (price === null) return fieldError('addon', 'Price: enter an amount such as 5.00 (0 for free).', 'addon-price');
    const capacity = Number($('addon-capacity').value);
    if (!$('addon-capacity').value || !Number.isInteger(capacity) || capacity < 0) {
      return fieldError('addon', 'Capacity: enter a whole number.', 'addon-capacity');
    }
    const body = { name: $('addon-name').value, price_cents: price, capacity };
    try {
      if (editingAddon === null) {
        await api(`/admin/v1/events/${current.id}/addons`, { method: 'POST', json: body });
      } else {
        await api(`/admin/v1/events/${current.id}/addons/${editingAddon}`, { method: 'PATCH', json: body });
      }
      const verb = editingAddon === null ? 'Added' : 'Saved';
      resetAddonForm();
      await refresh(`${verb} add-on ${body.name.trim()}.`);
    } catch (e) {
      fieldError('addon', e.message, { name: 'addon-name', price_cents: 'addon-price', capacity: 'addon-capacity' }[e.field] || 'addon-name');
    }
  });

  // ---------------------------------------------------------------------------------------------------
  // Shared quotas

  function renderQuotas() {
    const rows = current.quotas.map((q) => {
      const members = current.ticket_types.filter((t) => t.quota_id === q.id).map((t) => t.name).join(', ');
      return row([
        q.name,
        { text: String(q.capacity), num: true },
        { text: String(q.reserved), num: true },
        members || '—',
        button('Edit', `Edit quota ${q.name}`, () => editQuota(q)),
      ]);
    });
    fillTable('quotas', rows, 'No shared quotas.', 5);
  }

  function resetQuotaForm() {
    editingQuota = null;
    $('quota-form').reset();
    $('quota-form-title').textContent = 'Add a shared quota';
    $('quota-save').textContent = 'Add quota';
    $('quota-cancel').hidden = true;
    fieldError('quota', '');
  }

  function editQuota(q) {
    editingQuota = q.id;
    $('quota-form-title').textContent = `Edit quota ${q.name}`;
    $('quota-save').textContent = 'Save quota';
    $('quota-cancel').hidden = false;
    $('quota-name').value = q.name;
    $('quota-capacity').value = String(q.capacity);
    fieldError('quota', '');
    $('quota-name').focus();
  }

  $('quota-cancel').addEventListener('click', resetQuotaForm);
  $('quota-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const capacity = Number($('quota-capacity').value);
    if (!$('quota-capacity').value || !Number.isInteger(capacity) || capacity < 0) {
      return fieldError('quota', 'Capacity: enter a whole number of tickets.', 'quota-capacity');
    }
    const body = { name: $('quota-name').value, capacity };
    try {
      if (editingQuota === null) {
        await api(`/admin/v1/events/${current.id}/quotas`, { method: 'POST', json: body });
      } else {
        await api(`/admin/v1/events/${current.id}/quotas/${editingQuota}`, { method: 'PATCH', json: body });
      }
      const verb = editingQuota === null ? 'Added' : 'Saved';
      resetQuotaForm();
      await refresh(`${verb} quota ${body.name.trim()}.`);
    } catch (e) {
      fieldError('quota', e.message, { name: 'quota-name', capacity: 'quota-capacity' }[e.field] || 'quota-name');
    }
  });

  // ---------------------------------------------------------------------------------------------------
  // Start when the signed-in part of the page is shown (and again after each sign-in).

  let started = false;
  async function start() {
    if (started || $('app').hidden) return;
    started = true;
    fillTimezones();
    try {
      await loadEvents();
    } catch (e) {
      started = false;
      const p = $('catalog-problem');
      p.textContent = `The catalog could not be loaded: ${e.message}`;
      p.hidden = false;
    }
  }
  new MutationObserver(() => {
    if ($('app').hidden) started = false;
    else start();
  }).observe($('app'), { attributes: true, attributeFilter: ['hidden'] });
  start();
})();
