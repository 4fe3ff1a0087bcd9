// The scanner's languages: English, German and French. Every string the steward reads is a message in
// locales/<lang>.json (served with the app and cached by the service worker, so it works offline); this file
// only looks them up. The language is the one chosen with the switcher (kept on this phone), else the first
// of the browser's languages that the scanner speaks (de-AT is German), else English.
//
// Refusals are translated by their code from scanner-core (`refusal.<code>`), never by their English text.

export const LANGUAGES = ['en', 'de', 'fr'];
const CHOICE_KEY = 'scanner.language';

let messages = {};
let english = {};
/** The language the page speaks now. */
export let lang = 'en';

/** The first of `preferred` (BCP 47 tags, most wanted first) that the scanner speaks, else English. */
export function negotiate(preferred) {
  for (const tag of preferred ?? []) {
    const base = String(tag).toLowerCase().split('-')[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return 'en';
}

function chosen() {
  try {
    const choice = localStorage.getItem(CHOICE_KEY);
    if (LANGUAGES.includes(choice)) return choice;
  } catch {
    // Storage blocked: the browser's languages decide.
  }
  return negotiate(navigator.languages?.length ? navigator.languages : [navigator.language]);
}

async function load(language) {
  const response = await fetch(new URL(`locales/${language}.json`, import.meta.url));
  if (!response.ok) throw new Error(`locales/${language}.json: HTTP ${response.status}`);
  return response.json();
}

/** Loads the messages of the chosen language and translates the page's static text. */
export async function init() {
  lang = chosen();
  english = await load('en');
  messages = lang === 'en' ? english : await load(lang).catch(() => english);
  document.documentElement.lang = lang;
  translate(document);
}

/** The message `key` with `{name}` placeholders filled from `args`; English when the language lacks it. */
export function t(key, args = {}) {
  const text = messages[key] ?? english[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in args ? String(args[name]) : whole));
}

/** Static text marked in the HTML: `data-i18n` (text), `data-i18n-placeholder`, `data-i18n-label` (aria-label). */
export function translate(root) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll('[data-i18n-label]')) el.setAttribute('aria-label', t(el.dataset.i18nLabel));
  if (root.title !== undefined) root.title = t('title');
}

/** Keeps the steward's choice on this phone and shows the page in it. */
export function choose(language) {
  if (!LANGUAGES.includes(language)) return;
  try {
    localStorage.setItem(CHOICE_KEY, language);
  } catch {
    // Not kept: it still applies until the page is closed.
  }
  location.reload();
}
