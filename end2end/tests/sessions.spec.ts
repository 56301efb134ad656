import { expect, test } from "@playwright/test";
import { hydrated, signIn } from "./helpers";

test("ending all other sessions from one browser signs out the other", async ({ browser }) => {
  const laptop = await browser.newContext({ ignoreHTTPSErrors: true });
  const phone = await browser.newContext({ ignoreHTTPSErrors: true });
  const a = await laptop.newPage();
  const b = await phone.newPage();

  await signIn(b, "e2e-dave");
  await expect(b).toHaveURL(/\/success$/);
  await signIn(a, "e2e-dave");
  await expect(a).toHaveURL(/\/success$/);

  // The laptop sees the phone's session and ends every other one.
  await expect(a.getByTestId("other-sessions")).toBeVisible();
  await a.getByTestId("end-all-others").click();
  await expect(a.getByTestId("no-other-sessions")).toBeVisible();

  // The phone is signed out on its next request; the laptop is not.
  await b.reload();
  await expect(b).toHaveURL(/\/login\?next=%2Fsuccess$/);
  await a.reload();
  await expect(a.getByTestId("username")).toHaveText("e2e-dave");

  await laptop.close();
  await phone.close();
});

test("security headers arrive through nginx", async ({ page }) => {
  const res = await page.goto("/login");
  const h = res!.headers();
  expect(h["content-security-policy"]).toContain("'wasm-unsafe-eval'");
  expect(h["content-security-policy"]).toContain("frame-ancestors 'none'");
  expect(h["x-content-type-options"]).toBe("nosniff");
  expect(h["referrer-policy"]).toBe("same-origin");
  // Hashed assets are cached for good.
  const css = await page.request.get(await page.locator('link[rel="stylesheet"]').getAttribute("href") as string);
  expect(css.status()).toBe(200);
  expect(css.headers()["cache-control"]).toContain("immutable");
  // HTTPS only from now on, pages and assets alike.
  expect(h["strict-transport-security"]).toMatch(/max-age=\d{8}/);
  expect(css.headers()["strict-transport-security"]).toMatch(/max-age=\d{8}/);
  // The build precompresses assets; nginx serves the .gz beside each one (gzip_static), which keeps
  // a strong ETag (on-the-fly gzip would weaken it).
  await hydrated(page);
  const wasm = await page.request.get((await page.evaluate(() => performance.getEntriesByType("resource").map((e) => e.name).find((n) => n.endsWith(".wasm")))) as string, {
    headers: { "Accept-Encoding": "gzip" },
  });
  expect(wasm.status()).toBe(200);
  expect(wasm.headers()["content-encoding"]).toBe("gzip");
  expect(wasm.headers()["etag"]).toMatch(/^"/);
});

test("readiness is answered through nginx", async ({ request }) => {
  const res = await request.get("/readyz");
  expect(res.status()).toBe(200);
  expect(await res.json()).toEqual({ ready: true, database: "ok", redis: "ok" });
});

test("the success page is never cached", async ({ page }) => {
  await signIn(page, "e2e-carol");
  await expect(page).toHaveURL(/\/success$/);
  const res = await page.request.get("/success");
  expect(res.status()).toBe(200);
  expect(res.headers()["cache-control"]).toBe("no-store");
});
