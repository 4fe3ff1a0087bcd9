// IndexedDB storage of the scanner device, exactly as scanner-core's persistence contract
// (scanner-core/src/redemption/device.rs) asks: config, pending scans, document chunks + `folded`, and
// per-peer sync states. Nothing here interprets the bytes: scanner-core (through wasm) does.
//
// Every write that must survive a crash or a killed tab uses `durability: "strict"`, so the transaction
// only completes once the data is on disk (Chromium's default durability is "relaxed").

const DB_NAME = 'ticket-scanner';
const DB_VERSION = 1;

/** Object stores: `config` (key → value), `chunks` (number → bytes), `pending` (seq → bytes), `peers`. */
const STORES = ['config', 'chunks', 'pending', 'peers'];

function promised(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function completed(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
    tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'));
  });
}

export async function openStore() {
  const request = indexedDB.open(DB_NAME, DB_VERSION);
  request.onupgradeneeded = () => {
    const db = request.result;
    for (const name of STORES) {
      if (!db.objectStoreNames.contains(name)) db.createObjectStore(name);
    }
  };
  const db = await promised(request);
  return new Store(db);
}

export class Store {
  constructor(db) {
    this.db = db;
  }

  /** A read-write transaction over `stores`; `fill(stores)` queues its writes synchronously. */
  async write(stores, fill, { durable = true } = {}) {
    const tx = this.db.transaction(stores, 'readwrite', { durability: durable ? 'strict' : 'default' });
    const done = completed(tx);
    const objects = Object.fromEntries(stores.map((s) => [s, tx.objectStore(s)]));
    fill(objects);
    await done;
  }

  async get(store, key) {
    const tx = this.db.transaction([store], 'readonly');
    return promised(tx.objectStore(store).get(key));
  }

  async getConfig(key) {
    return this.get('config', key);
  }

  async setConfig(values, options) {
    await this.write(['config'], ({ config }) => {
      for (const [k, v] of Object.entries(values)) config.put(v, k);
    }, options);
  }

  /** Everything needed to restore the device: {config map, chunks in key order, pending [seq, bytes]}. */
  async readAll() {
    const tx = this.db.transaction(STORES, 'readonly');
    const config = {};
    const [configKeys, configValues, chunkKeys, chunkValues, pendingKeys, pendingValues] = await Promise.all([
      promised(tx.objectStore('config').getAllKeys()),
      promised(tx.objectStore('config').getAll()),
      promised(tx.objectStore('chunks').getAllKeys()),
      promised(tx.objectStore('chunks').getAll()),
      promised(tx.objectStore('pending').getAllKeys()),
      promised(tx.objectStore('pending').getAll()),
    ]);
    configKeys.forEach((k, i) => (config[k] = configValues[i]));
    return {
      config,
      chunkKeys,
      chunks: chunkValues,
      pending: pendingKeys.map((k, i) => [k, pendingValues[i]]),
    };
  }

  /** Deletes the whole device (log included). */
  async clearAll() {
    await this.write(STORES, (s) => {
      for (const name of STORES) s[name].clear();
    });
  }
}
