import AxeBuilder from "@axe-core/playwright";
import { expect, test, type Page } from "@playwright/test";
import { hydrated } from "./helpers";

async function openLab(page: Page) {
  await page.goto("/crypto");
  await hydrated(page);
}

async function verifyOnServer(page: Page) {
  await page.getByTestId("verify").click();
  await expect(page.getByTestId("verdict")).toHaveText("Server agrees");
}

test("SHA-256 is computed in the browser as you type and the server agrees", async ({ page }) => {
  await openLab(page);
  const hex = page.getByTestId("browser-output-hex");
  // Server-rendered default: SHA-256("hello, world").
  await expect(hex).toHaveText("09ca7e4eaa6e8ae9c7d261167129184883644d07dfba7cbfbc4c8a2e08360d5b");
  await page.getByLabel("Message").fill("abc");
  await expect(hex).toHaveText("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  await expect(page.getByTestId("method-info")).toContainText("Passwords");
  await verifyOnServer(page);
  // Editing again makes the old verdict disappear.
  await page.getByLabel("Message").fill("abcd");
  await expect(page.getByTestId("verdict")).toHaveCount(0);
});

test("AES-256-GCM with a generated key round-trips, and tampering is caught on both sides", async ({ page }) => {
  await openLab(page);
  await page.getByTestId("method").selectOption("aes256_gcm_encrypt");
  await page.getByRole("button", { name: /Generate a random value for Key/ }).click();
  const key = await page.getByRole("textbox", { name: "Key (hex, 32 bytes)" }).inputValue();
  expect(key).toMatch(/^[0-9a-f]{64}$/);
  await page.getByLabel("Message").fill("attack at dawn");
  const ciphertext = (await page.getByTestId("browser-output-hex").textContent())!;
  expect(ciphertext).toMatch(/^[0-9a-f]{60}$/); // 14 bytes + 16-byte tag
  await verifyOnServer(page);

  await page.getByTestId("method").selectOption("aes256_gcm_decrypt");
  await page.getByLabel("Ciphertext with tag (hex)").fill(ciphertext);
  await expect(page.getByTestId("browser-output-text")).toHaveText("attack at dawn");
  const flipped = (ciphertext[0] === "0" ? "1" : "0") + ciphertext.slice(1);
  await page.getByLabel("Ciphertext with tag (hex)").fill(flipped);
  await expect(page.getByTestId("browser-error")).toContainText("tampered");
  // The server refuses it the same way, so the two still agree.
  await verifyOnServer(page);
});

test("Argon2id runs in the browser with a busy state and matches the server", async ({ page }) => {
  await openLab(page);
  await page.getByTestId("method").selectOption("argon2id");
  await page.getByTestId("run-slow").click();
  await expect(page.getByTestId("browser-output-text")).toHaveText(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/, { timeout: 30_000 });
  await verifyOnServer(page);
});

test("Argon2id runs in a Web Worker: the page stays responsive and Cancel stops it", async ({ page }) => {
  await openLab(page);
  await page.getByTestId("method").selectOption("argon2id");
  // Deliberately heavy (256 MiB, 8 passes: several seconds) so there is time to watch it run.
  await page.getByLabel("m (KiB)").fill("262144");
  await page.getByLabel("t (passes)").fill("8");
  await page.getByTestId("run-slow").click();
  await expect(page.getByTestId("run-slow")).toHaveText("Working…");
  await expect(page.getByTestId("cancel-slow")).toBeVisible();
  // The main thread is free while the worker hashes: a round trip through it is quick, and the
  // page still takes input.
  const started = Date.now();
  await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => resolve(true))));
  expect(Date.now() - started).toBeLessThan(1000);
  await page.getByLabel("Password").fill("still typing");
  await expect(page.getByLabel("Password")).toHaveValue("still typing");
  await page.getByTestId("cancel-slow").click();
  await expect(page.getByTestId("browser-error")).toHaveText("Cancelled.");
  await expect(page.getByTestId("run-slow")).toHaveText("Run in the browser");
  await expect(page.getByTestId("run-slow")).toBeEnabled();
  await expect(page.getByTestId("cancel-slow")).toHaveCount(0);
  // A cancelled worker is replaced: the next run completes.
  await page.getByLabel("m (KiB)").fill("8192");
  await page.getByLabel("t (passes)").fill("1");
  await page.getByTestId("run-slow").click();
  await expect(page.getByTestId("browser-output-text")).toHaveText(/^\$argon2id\$v=19\$m=8192,t=1,p=1\$/, { timeout: 30_000 });
  await verifyOnServer(page);
});

test("the crypto module is loaded by the lab only, from a content-hashed folder", async ({ page }) => {
  const requested: string[] = [];
  page.on("request", (r) => requested.push(new URL(r.url()).pathname));
  await page.goto("/login");
  await hydrated(page);
  expect(requested.filter((p) => p.includes("crypto_wasm"))).toEqual([]);
  await openLab(page);
  await expect(page.getByTestId("browser-output-hex")).toHaveText(/^[0-9a-f]{64}$/);
  const module = requested.filter((p) => p.endsWith("crypto_wasm_bg.wasm"));
  expect(module.length).toBeGreaterThan(0);
  expect(module[0]).toMatch(/^\/pkg\/crypto-[0-9a-f]{16}\/crypto_wasm_bg\.wasm$/);
});

test("Ed25519 signs in the browser and the server produces the same signature", async ({ page }) => {
  await openLab(page);
  await page.getByTestId("method").selectOption("ed25519_sign");
  await page.getByLabel("Message").fill("");
  // RFC 8032 test 1: the empty message under the demo key.
  await expect(page.getByTestId("browser-output-hex")).toHaveText(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
  );
  await verifyOnServer(page);
});

test("the benchmark panel measures our WASM against WebCrypto and lists the figures", async ({ page }) => {
  await openLab(page);
  await expect(page.getByText("Not measured yet.")).toBeVisible();
  await page.getByTestId("run-bench").click();
  const table = page.getByTestId("bench-table");
  await expect(table.locator("tbody tr")).toHaveCount(6, { timeout: 30_000 });
  await expect(page.getByTestId("run-bench")).toHaveText("Run benchmark");
  const rows = await table.locator("tbody tr").evaluateAll((trs) =>
    trs.map((tr) => Array.from(tr.querySelectorAll("td")).map((td) => td.textContent ?? "")),
  );
  for (const [algorithm, size, ours, webcrypto] of rows) {
    expect(Number(ours), `${algorithm} ${size} ours`).toBeGreaterThan(0);
    expect(Number(webcrypto), `${algorithm} ${size} WebCrypto`).toBeGreaterThan(0);
  }
  // The figures go into docs/benchmarks.md from this output.
  console.log("browser benchmark (MB/s): " + JSON.stringify(rows));
  await expect(page.locator("svg.chart")).toBeVisible();
  // The chart and its table pass axe too.
  const axe = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]).analyze();
  expect(axe.violations.map((v) => v.id)).toEqual([]);
});
