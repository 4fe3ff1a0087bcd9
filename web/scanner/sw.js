// Service worker of the scanner: keeps the app shell and the wasm module cached so the scanner starts and
// works with no network at all. Shell files are answered from the cache at once and refreshed from the
// network in the background (a new version takes effect at the next start). API calls (/v1/, /admin/,
// /hub/) and anything outside the scanner are never cached: they carry the device token and must be live.
// A venue hub (`scanner hub --web`) serves the scanner at its root, so there the API is inside the scope.

const CACHE = 'ticket-scanner-shell-v2';
const SHELL = [
  './',
  'index.html',
  'style.css',
  'app.js',
  'engine.js',
  'store.js',
  'i18n.js',
  // Every language's messages, so that the switcher works offline too.
  'locales/en.json',
  'locales/de.json',
  'locales/fr.json',
  'manifest.webmanifest',
  'icon.svg',
  'icon-192.png',
  'icon-512.png',
  'pkg/scanner_wasm.js',
  'pkg/scanner_wasm_bg.wasm',
];
const scope = new URL(self.registration.scope);
const API = /^\/(?:v1|admin|hub)\//;

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // `reload`: the HTTP cache must not hand back an older file than the server has.
      await cache.addAll(SHELL.map((path) => new Request(new URL(path, scope), { cache: 'reload' })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
      await self.clients.claim();
    })(),
  );
});

function shellKey(url) {
  // The page itself, however it was reached (/scanner/, /scanner/index.html, with a query).
  if (url.pathname === scope.pathname || url.pathname === `${scope.pathname}index.html`) return new URL('./', scope).href;
  return url.origin + url.pathname;
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== scope.origin || !url.pathname.startsWith(scope.pathname)) return;
  if (API.test(url.pathname)) return;
  const key = shellKey(url);
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      const cached = await cache.match(key);
      const refresh = fetch(request, { cache: 'no-cache' })
        .then(async (response) => {
          if (response.ok && response.type === 'basic') await cache.put(key, response.clone());
          return response;
        })
        .catch(() => undefined);
      if (cached) {
        event.waitUntil(refresh);
        return cached;
      }
      return (await refresh) ?? new Response('Offline and not cached', { status: 503 });
    })(),
  );
});
