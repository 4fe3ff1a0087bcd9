// Decoding benchmark of the browser build: scanner-core's degraded-frame corpus decoded by the wasm module
// in the system Chromium, timing each `decodeLuma` call (what the scanner's worker runs per camera frame).
// Prints one JSON object, in the same shape as the native bench's "decode" part, so the two compare.
//
//   cargo run --release -p scanner-bench --bin bench -- --corpus-dir /tmp/corpus   # writes the PNG corpus
//   scripts/web-build.sh                                                         # builds web/scanner/pkg
//   node web/scanner-wasm/bench.mjs /tmp/corpus
//
// Needs playwright-core from web/tests (npm ci there) and /usr/bin/chromium.

import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const { chromium } = await import(join(repo, 'web', 'tests', 'node_modules', 'playwright-core', 'index.mjs'));

const corpus = process.argv[2];
if (!corpus) {
  console.error('usage: node web/scanner-wasm/bench.mjs CORPUS_DIR (from `bench --corpus-dir`)');
  process.exit(2);
}
const expected = JSON.parse(readFileSync(join(corpus, 'expected.json'), 'utf8'));
const pkg = join(repo, 'web', 'scanner', 'pkg');
const types = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.png': 'image/png' };

const server = createServer((req, res) => {
  const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  const file = path.startsWith('/pkg/') ? join(pkg, path.slice(5)) : path.startsWith('/corpus/') ? join(corpus, path.slice(8)) : null;
  try {
    if (!file) throw new Error('not found');
    const body = readFileSync(file);
    res.setHeader('content-type', types[extname(file)] ?? 'application/octet-stream');
    res.end(body);
  } catch {
    res.statusCode = path === '/' ? 200 : 404;
    res.setHeader('content-type', 'text/html');
    res.end('<!doctype html><title>bench</title>');
  }
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
try {
  const page = await browser.newPage();
  await page.goto(`${base}/`);
  const result = await page.evaluate(async (frames) => {
    const started = performance.now();
    const wasm = await import('/pkg/scanner_wasm.js');
    await wasm.default({ module_or_path: '/pkg/scanner_wasm_bg.wasm' });
    const initMs = performance.now() - started;
    const canvas = document.createElement('canvas');
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    const byVariant = {};
    const all = [];
    let decoded = 0;
    for (const f of frames) {
      const img = new Image();
      img.src = `/corpus/${f.file}`;
      await img.decode();
      canvas.width = img.width;
      canvas.height = img.height;
      ctx.drawImage(img, 0, 0);
      const rgba = ctx.getImageData(0, 0, img.width, img.height).data;
      const luma = new Uint8Array(img.width * img.height);
      for (let i = 0; i < luma.length; i++) luma[i] = rgba[4 * i]; // the corpus is greyscale
      const t = performance.now();
      const text = wasm.decodeLuma(img.width, img.height, luma);
      const ms = performance.now() - t;
      // A frame without a code ("has_code": false) is read right when nothing is returned.
      const ok = f.has_code === false ? text === undefined : text === f.expected;
      decoded += ok;
      all.push(ms);
      (byVariant[f.variant] ??= { frames: 0, decoded: 0, ms: [] }).frames++;
      byVariant[f.variant].decoded += ok;
      byVariant[f.variant].ms.push(ms);
    }
    const stats = (ms) => {
      const s = [...ms].sort((a, b) => a - b);
      const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
      return { median_ms: +q(0.5).toFixed(3), p99_ms: +q(0.99).toFixed(3) };
    };
    const variants = {};
    for (const [name, v] of Object.entries(byVariant)) variants[name] = { frames: v.frames, decoded: v.decoded, ...stats(v.ms) };
    return { wasm_init_ms: +initMs.toFixed(1), overall: { frames: frames.length, decoded, ...stats(all) }, variants };
  }, expected.frames);
  const wasmBytes = readFileSync(join(pkg, 'scanner_wasm_bg.wasm')).length;
  console.log(JSON.stringify({ browser: await browser.version(), wasm_raw_bytes: wasmBytes, decode: result }, null, 2));
} finally {
  await browser.close();
  server.close();
}
