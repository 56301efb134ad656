// Loads the crypto lab's WASM module (crates/crypto-wasm) the first time the page needs it, so the
// app's own WASM (every page, sign-in included) does not carry the crypto code. Slow requests
// (Argon2) go to a module worker running the same module; terminating it is how "Cancel" works.
const loaded = new Map();

function load(base) {
  if (!loaded.has(base)) {
    const promise = import(base + "crypto_wasm.js").then(async (m) => {
      await m.default();
      return m;
    });
    // A failed load (network, CSP) may be retried on the next call.
    promise.catch(() => loaded.delete(base));
    loaded.set(base, promise);
  }
  return loaded.get(base);
}

export async function labRun(base, requestJson) {
  return (await load(base)).lab_run(requestJson);
}

export async function benchSha256(base, data, minMs) {
  return (await load(base)).bench_sha256(data, minMs);
}

export async function benchAes256Gcm(base, data, minMs) {
  return (await load(base)).bench_aes256gcm(data, minMs);
}

let worker = null;
let waiting = null;

export function labRunInWorker(base, requestJson) {
  cancelWorker();
  return new Promise((resolve, reject) => {
    worker = new Worker(base + "worker.js", { type: "module" });
    waiting = { resolve, reject };
    worker.onmessage = (event) => {
      waiting = null;
      resolve(event.data);
    };
    worker.onerror = (event) => {
      const w = waiting;
      waiting = null;
      cancelWorker();
      if (w) w.reject(new Error(event.message || "the crypto worker failed to start"));
    };
    worker.postMessage(requestJson);
  });
}

// Stops the running computation at once (the worker and its memory are dropped).
export function cancelWorker() {
  if (worker) {
    worker.terminate();
    worker = null;
  }
  if (waiting) {
    const w = waiting;
    waiting = null;
    w.reject(new Error("cancelled"));
  }
}
