// Runs slow lab requests (Argon2) off the page's main thread. The page terminates this worker to
// cancel; one request at a time, answered in order.
import init, { lab_run } from "./crypto_wasm.js";

const ready = init();
self.onmessage = async (event) => {
  await ready;
  // Only the page that started this worker can message it; anything but a request string is
  // answered as an invalid request, like malformed JSON.
  const request = typeof event.data === "string" ? event.data : "";
  self.postMessage(lab_run(request));
};
