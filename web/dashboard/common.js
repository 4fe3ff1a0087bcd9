// What the dashboard's sections share (loaded before dashboard.js, catalog.js and orders.js): requests to
// the admin API with the page's credentials, and the few DOM helpers every section builds its tables and
// buttons with. One copy, so every section authenticates, reports errors and escapes text alike.
//
// Credentials: the admin token the page keeps in sessionStorage (sent as a bearer token; a browser never
// attaches one on its own, so it needs no CSRF token), or the staff session cookie, whose writes carry the
// session's CSRF token in X-CSRF-Token (read once from GET /admin/v1/session).
// Every string from the server goes into the page as text, never as markup.
'use strict';

window.DashboardCommon = (function () {
  const TOKEN_KEY = 'tickets.adminToken';
  let csrf = null;

  /** A refused request: the server's message, the field it names (422) and the HTTP status. */
  class ApiError extends Error {
    constructor(message, field, status) {
      super(message);
      this.field = field;
      this.status = status;
    }
  }

  function authHeaders() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    return token ? { authorization: `Bearer ${token}` } : {};
  }
  async function csrfToken() {
    if (csrf !== null) return csrf;
    try {
      const res = await fetch('/admin/v1/session', { credentials: 'same-origin', headers: authHeaders() });
      const body = res.ok ? await res.json() : null;
      csrf = body?.csrf_token || '';
    } catch {
      csrf = '';
    }
    return csrf;
  }
  /** After signing in or out: the next write asks for the new session's CSRF token. */
  function forgetSession() {
    csrf = null;
  }
  /** The fetch Response of one admin API request. */
  async function request(path, { method = 'GET', json } = {}) {
    const headers = { ...authHeaders(), accept: 'application/json' };
    if (method !== 'GET' && !headers.authorization) {
      const t = await csrfToken();
      if (t) headers['x-csrf-token'] = t;
    }
    const init = { method, headers, credentials: 'same-origin' };
    if (json !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(json);
    }
    return fetch(path, init);
  }
  /** The JSON answer of one admin API request, or an ApiError. */
  async function api(path, opts = {}) {
    const res = await request(path, opts);
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      const what = `${opts.method || 'GET'} ${path} answered ${res.status}`;
      throw new ApiError(body?.error?.message || what, body?.error?.field, res.status);
    }
    return body;
  }

  function el(tag, text, className) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (className) e.className = className;
    return e;
  }
  /** A table row: a cell is text, a Node, or { text, num } (num: right-aligned number). */
  function row(cells, className) {
    const tr = el('tr', undefined, className);
    for (const c of cells) {
      const td = el('td');
      if (c instanceof Node) td.append(c);
      else if (c && typeof c === 'object') {
        td.textContent = c.text;
        if (c.num) td.className = 'num';
      } else td.textContent = c;
      tr.append(td);
    }
    return tr;
  }
  /** Replaces the rows of table `id`, or shows `emptyText` across `columns` columns. */
  function fillTable(id, rows, emptyText, columns) {
    const body = document.getElementById(id).tBodies[0];
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
  function button(text, label, onClick, className = 'secondary') {
    const b = el('button', text, className);
    b.type = 'button';
    if (label) b.setAttribute('aria-label', label);
    b.addEventListener('click', onClick);
    return b;
  }
  function money(cents, currency) {
    try {
      return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(cents / 100);
    } catch {
      return `${(cents / 100).toFixed(2)} ${currency}`;
    }
  }

  return { TOKEN_KEY, ApiError, authHeaders, csrfToken, forgetSession, request, api, el, row, fillTable, button, money };
})();
