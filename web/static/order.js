// Progressive enhancement of the server-rendered order form. The form works without this script (a plain
// POST, priced and validated by the server); the script only adds a live total, messages next to a field
// as soon as it is left, and a fresh availability count every 20 s. (Event times come from the server,
// already in the event's own zone.)
// It never decides a price: the server prices the order again. Its words come from the page, in the page's
// language (the server's message catalog, a JSON block `#order-messages`), and amounts are formatted for
// the page's language too.
'use strict';

(function () {
  let messages = {};
  try {
    messages = JSON.parse(document.getElementById('order-messages')?.textContent ?? '{}');
  } catch {
    // A page without the block: the keys show, the form still works.
  }
  /** The message `key` with its `{name}` placeholders filled from `args`. */
  const say = (key, args = {}) =>
    (messages[key] ?? key).replace(/\{(\w+)\}/g, (whole, name) => (name in args ? String(args[name]) : whole));

  // Focus the error summary of a rejected form so keyboard and screen reader users land on it.
  const summary = document.getElementById('error-summary');
  if (summary) summary.focus();

  const form = document.getElementById('order-form');
  if (!form) return;
  const currency = form.dataset.currency || 'EUR';
  const totalEl = document.getElementById('total');
  const money = new Intl.NumberFormat(document.documentElement.lang || undefined, { style: 'currency', currency });

  function total() {
    let cents = 0;
    for (const fs of form.querySelectorAll('fieldset.ticket-type')) {
      const qty = Number.parseInt(fs.querySelector('input[type=number]').value, 10);
      if (!Number.isFinite(qty) || qty <= 0) continue;
      let unit = Number(fs.dataset.price);
      for (const cb of fs.querySelectorAll('input[type=checkbox]:checked')) unit += Number(cb.dataset.price);
      cents += unit * qty;
    }
    return cents;
  }
  // Pay at the door only for the ticket types the organizer allows it for (data-at-door); the server
  // checks the order again, this only says so before the customer submits.
  const atDoor = document.getElementById('payment-at-door');
  function updateAtDoor() {
    if (!atDoor) return;
    const blocked = [];
    for (const fs of form.querySelectorAll('fieldset.ticket-type')) {
      const qty = Number.parseInt(fs.querySelector('input[type=number]').value, 10);
      if (!Number.isFinite(qty) || qty <= 0 || fs.dataset.atDoor !== 'false') continue;
      let unit = Number(fs.dataset.price);
      for (const cb of fs.querySelectorAll('input[type=checkbox]:checked')) unit += Number(cb.dataset.price);
      if (unit > 0) blocked.push(fs.querySelector('legend').textContent);
    }
    atDoor.disabled = blocked.length > 0;
    let hint = document.getElementById('payment-at-door-hint');
    if (blocked.length === 0) {
      hint?.remove();
      return;
    }
    if (!hint) {
      hint = document.createElement('p');
      hint.className = 'hint';
      hint.id = 'payment-at-door-hint';
      atDoor.closest('label').insertAdjacentElement('afterend', hint);
    }
    hint.textContent = say('at-door-blocked', { types: blocked.join(', ') });
    const online = document.getElementById('payment-online');
    if (atDoor.checked && online) online.checked = true;
  }
  function showTotal() {
    totalEl.textContent = money.format(total() / 100);
    updateAtDoor();
  }
  form.addEventListener('input', showTotal);
  form.addEventListener('change', showTotal);
  showTotal();

  // Inline validation with the browser's own constraint checks, shown in words next to the field.
  function fieldMessage(input) {
    if (input.validity.valid) return '';
    if (input.validity.valueMissing) return say('fill-in');
    if (input.validity.typeMismatch && input.type === 'email') return say('email-format');
    if (input.validity.rangeOverflow) return say('at-most', { max: input.max });
    if (input.validity.rangeUnderflow) return say('negative');
    if (input.validity.badInput || input.validity.stepMismatch) return say('whole-number');
    return input.validationMessage;
  }
  function check(input) {
    const id = `${input.id}-live-error`;
    let el = document.getElementById(id);
    const msg = fieldMessage(input);
    if (!msg) {
      // Fixed: drop our message and the server's earlier one about this field.
      if (el) el.remove();
      document.getElementById(`${input.id}-error`)?.remove();
      input.removeAttribute('aria-invalid');
      input.removeAttribute('aria-describedby');
      return true;
    }
    if (!el) {
      el = document.createElement('p');
      el.className = 'field-error';
      el.id = id;
      input.insertAdjacentElement('afterend', el);
    }
    el.textContent = msg;
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', id);
    return false;
  }
  for (const input of form.querySelectorAll('input[type=text], input[type=email], input[type=number]')) {
    input.addEventListener('blur', () => check(input));
  }
  form.addEventListener('submit', (ev) => {
    let firstBad = null;
    for (const input of form.querySelectorAll('input[type=text], input[type=email], input[type=number]')) {
      if (!input.disabled && !check(input) && !firstBad) firstBad = input;
    }
    if (!firstBad && total() === 0 && !hasTickets()) {
      firstBad = form.querySelector('fieldset.ticket-type input[type=number]:not([disabled])');
      if (firstBad) {
        firstBad.setCustomValidity(say('choose'));
        check(firstBad);
        firstBad.setCustomValidity('');
      }
    }
    if (firstBad) {
      ev.preventDefault();
      firstBad.focus();
      return;
    }
    // One order per click: a double click must not place two orders.
    const button = form.querySelector('button[type=submit]');
    if (button.disabled) ev.preventDefault();
    button.disabled = true;
    button.textContent = say('placing');
  });
  function hasTickets() {
    return [...form.querySelectorAll('fieldset.ticket-type input[type=number]')].some(
      (i) => Number.parseInt(i.value, 10) > 0,
    );
  }
  // Browsers keep a form's disabled button when the page comes back from the back/forward cache.
  window.addEventListener('pageshow', () => {
    const button = form.querySelector('button[type=submit]');
    button.disabled = false;
    button.textContent = say('submit');
  });

  // A name per ticket: the server's text area per ticket type (one name a line) becomes one field per
  // ticket, following the quantity. The fields post as `holder_{index}` (repeated, in ticket order); the
  // text area is disabled so that it does not post as well. The server validates every name again.
  for (const box of form.querySelectorAll('.holder-names')) {
    const index = box.dataset.index;
    const area = box.querySelector('textarea');
    const quantity = document.getElementById(`qty_${index}`);
    if (!area || !quantity) continue;
    const names = area.value.split('\n');
    area.disabled = true;
    area.hidden = true;
    box.querySelector(`label[for="${area.id}"]`).hidden = true;
    const fields = document.createElement('div');
    fields.className = 'holder-fields';
    box.append(fields);
    let shown = -1;
    const follow = () => {
      const wanted = Math.min(Math.max(Number.parseInt(quantity.value, 10) || 0, 0), 20);
      if (wanted === shown) return;
      // Keep what was typed, also for tickets removed and added back.
      fields.querySelectorAll('input').forEach((input, i) => (names[i] = input.value));
      fields.replaceChildren();
      for (let i = 0; i < wanted; i++) {
        const input = document.createElement('input');
        input.type = 'text';
        input.id = `holder_${index}_${i}`;
        input.name = `holder_${index}`;
        input.maxLength = 100;
        input.autocomplete = 'off';
        input.value = names[i] ?? '';
        const label = document.createElement('label');
        label.htmlFor = input.id;
        label.textContent = say('holder', { type: box.dataset.name, n: i + 1 });
        fields.append(label, input);
      }
      box.hidden = wanted === 0;
      shown = wanted;
    };
    quantity.addEventListener('input', follow);
    quantity.addEventListener('change', follow);
    follow();
  }

  async function refreshAvailability() {
    let event;
    try {
      const res = await fetch(`/v1/events/${form.dataset.event}`, { headers: { accept: 'application/json' } });
      if (!res.ok) return;
      event = await res.json();
    } catch {
      return; // Offline for a moment: the server checks availability again on submit anyway.
    }
    for (const tt of event.ticket_types) {
      const span = form.querySelector(`[data-ticket-type="${tt.index}"]`);
      const input = form.querySelector(`#qty_${tt.index}`);
      if (!span || !input) continue;
      const left = Math.max(0, tt.available);
      span.textContent = left === 0 ? say('sold-out') : say('left', { count: left });
      span.className = left === 0 ? 'availability soldout' : 'availability';
      input.max = String(Math.min(left, 20));
      input.disabled = left === 0;
    }
    for (const a of event.addons) {
      for (const span of form.querySelectorAll(`[data-addon="${a.index}"]`)) {
        const left = Math.max(0, a.available);
        span.textContent = left === 0 ? say('addon-sold-out') : say('left', { count: left });
        const cb = span.closest('label')?.querySelector('input[type=checkbox]');
        if (cb && left === 0 && !cb.checked) cb.disabled = true;
      }
    }
  }
  setInterval(refreshAvailability, 20_000);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') refreshAvailability();
  });
})();
