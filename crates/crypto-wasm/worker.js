// Runs slow lab requests (Argon2) off the page's main thread. The page terminates this worker to
// cancel; one request at a time, answered in order.
import init, { lab_run } from "./crypto_wasm.js";

const ready = init();
self.onmessage = async (event) => {
  await ready;
  self.postMessage(lab_run(event.data));
};
