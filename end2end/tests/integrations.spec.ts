import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { expect, test, type Page } from "@playwright/test";
import { hydrated, password, signIn } from "./helpers";

// Issue 5's pages: API tokens, webhook endpoints with their attempt log, workflows with a live run timeline.
// The stack (scripts/stack.sh) lets endpoints point at 127.0.0.1 and gives the `crm` inbound source this secret
// (the source belongs to e2e-python).
const CRM_SECRET = process.env.IMPLEMENTATION_ENG_CRM_SECRET ?? "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async function signedIn(page: Page, user: string) {
  await signIn(page, user);
  await expect(page.getByTestId("username")).toHaveText(user);
}

/** Standard Webhooks headers for `body`, signed with a `whsec_` secret. */
function signed(body: string, secret: string) {
  const id = `msg_${randomUUID()}`;
  const ts = Math.floor(Date.now() / 1000).toString();
  const signature = signed.sign(`${id}.${ts}.${body}`, secret);
  return { "content-type": "application/json", "webhook-id": id, "webhook-timestamp": ts, "webhook-signature": `v1,${signature}` };
}
signed.sign = (content: string, secret: string) =>
  createHmac("sha256", Buffer.from(secret.replace(/^whsec_/, ""), "base64")).update(content).digest("base64");

/** Does `headers` carry a valid Standard Webhooks signature of `body` under `secret`? */
function verifies(headers: Record<string, string | string[] | undefined>, body: string, secret: string): boolean {
  const [id, ts, sig] = ["webhook-id", "webhook-timestamp", "webhook-signature"].map((h) => String(headers[h] ?? ""));
  const expected = Buffer.from(signed.sign(`${id}.${ts}.${body}`, secret));
  return sig.split(" ").some((s) => {
    const got = Buffer.from(s.replace(/^v1,/, ""));
    return s.startsWith("v1,") && got.length === expected.length && timingSafeEqual(got, expected);
  });
}

/**
 * A receiver on 127.0.0.1 (the stack allowlists it) that answers 204 to deliveries signed with the
 * endpoint's secret and 401 otherwise. The stack's own sink checks the notification pipeline's fixed
 * secret, not a new endpoint's, so the test brings its own.
 */
class Receiver {
  server: Server;
  secret = "";
  verified: string[] = [];
  constructor() {
    this.server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        const ok = this.secret !== "" && verifies(req.headers, body, this.secret);
        if (ok) this.verified.push(String(req.headers["webhook-id"]));
        res.writeHead(ok ? 204 : 401).end();
      });
    });
  }
  async start(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/webhook`;
  }
  stop() {
    this.server.close();
  }
}

test.describe("API tokens", () => {
  test("a token is shown once, then listed by its prefix only, and can be revoked", async ({ page }) => {
    await signedIn(page, "e2e-ivan");
    await page.goto("/settings/tokens");
    await hydrated(page);
    const name = `ci-${Date.now()}`;
    await page.getByLabel("Name", { exact: true }).fill(name);
    await page.getByLabel("webhooks:read").check();
    await page.getByLabel("workflows:write").check();
    // Minting a token from a browser session asks for the password again.
    await page.getByLabel("Current password", { exact: true }).fill(password("e2e-ivan"));
    await page.getByTestId("create-token").click();
    const shown = page.getByTestId("new-token");
    await expect(shown).toContainText("ie_");
    const token = (await shown.textContent())!.trim();
    expect(token.length).toBeGreaterThan(20);
    await expect(page.getByText("Copy it now, it will not be shown again.")).toBeVisible();
    const row = page.getByTestId("token-row").filter({ hasText: name });
    await expect(row).toContainText("webhooks:read, workflows:write");

    // After a reload only the prefix is left.
    await page.reload();
    await hydrated(page);
    await expect(page.getByTestId("new-token")).toHaveCount(0);
    await expect(row.getByTestId("token-prefix")).toHaveText(`${token.slice(0, 8)}…`);
    expect(await page.content()).not.toContain(token);

    // The token works against the API (within its scopes) until it is revoked.
    const api = (path: string) => page.request.get(path, { headers: { authorization: `Bearer ${token}` } });
    expect((await api("/api/v1/webhooks/endpoints")).status()).toBe(200);
    expect((await api("/api/v1/workflows")).status()).toBe(403); // workflows:write does not imply read
    await row.getByRole("button", { name: `Revoke ${name}` }).click();
    await expect(row).toHaveCount(0);
    expect((await api("/api/v1/webhooks/endpoints")).status()).toBe(401);
  });

  test("a token without scopes is refused under the scopes field", async ({ page }) => {
    await signedIn(page, "e2e-ivan");
    await page.goto("/settings/tokens");
    await hydrated(page);
    await page.getByLabel("Name", { exact: true }).fill("no-scopes");
    await page.getByLabel("Current password", { exact: true }).fill(password("e2e-ivan"));
    await page.getByTestId("create-token").click();
    await expect(page.locator("#token-scopes-error")).toHaveText("Choose at least one scope.");
    await expect(page.getByTestId("new-token")).toHaveCount(0);
  });

  test("a wrong current password is refused and no token is made", async ({ page }) => {
    await signedIn(page, "e2e-ivan");
    await page.goto("/settings/tokens");
    await hydrated(page);
    await page.getByLabel("Name", { exact: true }).fill("wrong-password");
    await page.getByLabel("webhooks:read").check();
    await page.getByLabel("Current password", { exact: true }).fill("not the password");
    await page.getByTestId("create-token").click();
    await expect(page.getByRole("alert").filter({ hasText: "Your current password is not correct." })).toBeVisible();
    await expect(page.getByTestId("new-token")).toHaveCount(0);
    await expect(page.getByTestId("token-row").filter({ hasText: "wrong-password" })).toHaveCount(0);
  });
});

test.describe("webhooks", () => {
  test("an endpoint gets a secret once, a test event, and the delivered attempt in its log", async ({ page }) => {
    const receiver = new Receiver();
    const url = await receiver.start();
    test.info().attach("receiver", { body: url });
    await signedIn(page, "e2e-judy");
    await page.goto("/settings/webhooks");
    await hydrated(page);
    const description = `receiver ${Date.now()}`;
    await page.getByLabel("URL", { exact: true }).fill(url);
    await page.getByLabel("Description", { exact: true }).fill(description);
    await page.getByLabel("test.ping").check();
    await page.getByTestId("add-endpoint").click();
    await expect(page.getByTestId("new-secret")).toContainText("whsec_");
    receiver.secret = (await page.getByTestId("new-secret").textContent())!.trim();
    await expect(page.getByTestId("endpoint-row").filter({ hasText: description })).toContainText("Enabled");

    await page.getByTestId("open-new-endpoint").click();
    await expect(page.getByTestId("endpoint-detail")).toBeVisible();
    await hydrated(page);
    await expect(page.getByTestId("new-secret")).toHaveCount(0);
    await page.getByTestId("send-test").click();
    await expect(page.getByTestId("endpoint-status-message")).toContainText("queued");
    const attempt = page.getByTestId("attempt-row").first();
    await expect(attempt.getByTestId("attempt-outcome")).toHaveText("delivered", { timeout: 20_000 });
    await expect(attempt.getByTestId("attempt-status")).toHaveText(/^2\d\d$/);
    await expect(attempt).toContainText("test.ping");

    expect(receiver.verified.length).toBeGreaterThan(0);

    // Rotation asks for the password again, then shows the new secret once.
    await page.getByLabel("Current password", { exact: true }).fill(password("e2e-judy"));
    await page.getByTestId("rotate-secret").click();
    await expect(page.getByTestId("rotated-secret")).toContainText("whsec_");
    receiver.stop();
  });

  test("the event-type catalogue lists each type and links to its reference entry, whose example fits its JSON Schema", async ({ page }) => {
    await signedIn(page, "e2e-judy");
    await page.goto("/settings/webhooks");
    await hydrated(page);
    const types = page.getByTestId("event-type");
    expect(await types.count()).toBeGreaterThanOrEqual(7);
    // A full navigation to the server-rendered reference, not the app's client-side router.
    await page.locator('li[data-testid="event-type"][data-name="message.attempt.exhausted"]').getByRole("link").click();
    await expect(page).toHaveURL(/\/api\/docs#event-message\.attempt\.exhausted$/);
    const item = page.locator('article[data-testid="event-type"][data-name="message.attempt.exhausted"]');
    await item.getByText("JSON Schema of the body").click();
    const schema = JSON.parse((await item.getByTestId("event-schema").textContent())!);
    expect(schema.properties.type.const).toBe("message.attempt.exhausted");
    const example = JSON.parse((await item.getByTestId("event-example").textContent())!);
    // The example's fields are exactly what the schema names (required ones included).
    expect(Object.keys(example).sort()).toEqual(Object.keys(schema.properties).sort());
    for (const field of schema.properties.data.required ?? []) expect(example.data).toHaveProperty(field);
    for (const field of Object.keys(example.data)) expect(Object.keys(schema.properties.data.properties)).toContain(field);
  });

  test("what an endpoint missed while failing is recovered once, with the progress shown", async ({ page }) => {
    // The receiver refuses everything (401) until it knows the secret: the test event fails for good.
    const receiver = new Receiver();
    const url = await receiver.start();
    await signedIn(page, "e2e-judy");
    await page.goto("/settings/webhooks");
    await hydrated(page);
    const description = `recovery ${Date.now()}`;
    await page.getByLabel("URL", { exact: true }).fill(url);
    await page.getByLabel("Description", { exact: true }).fill(description);
    await page.getByLabel("test.ping").check();
    await page.getByTestId("add-endpoint").click();
    await expect(page.getByTestId("new-secret")).toContainText("whsec_");
    const secret = (await page.getByTestId("new-secret").textContent())!.trim();
    await page.getByTestId("open-new-endpoint").click();
    await expect(page.getByTestId("endpoint-detail")).toBeVisible();
    await hydrated(page);
    await page.getByTestId("send-test").click();
    await expect(page.getByTestId("attempt-outcome").first()).toHaveText("failed", { timeout: 20_000 });
    expect(receiver.verified).toEqual([]);

    // Fixed: the receiver knows the secret now. The form starts a day back.
    receiver.secret = secret;
    await expect(page.getByLabel("Since (UTC)")).toHaveValue(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/);
    await page.getByTestId("recover").click();
    await expect(page.getByTestId("endpoint-status-message")).toContainText("Recovering 1 missed message(s).");
    await expect(page.getByTestId("recovery").first()).toHaveAttribute("data-status", "completed", { timeout: 20_000 });
    await expect(page.getByTestId("recovery").first()).toContainText("Recovered: 1 of 1 sent");
    await expect.poll(() => receiver.verified.length, { timeout: 20_000 }).toBe(1);
    await expect(page.getByTestId("attempt-outcome").first()).toHaveText("delivered", { timeout: 20_000 });
    receiver.stop();
  });

  test("a private or non-HTTP URL is refused under the URL field", async ({ page }) => {
    await signedIn(page, "e2e-judy");
    await page.goto("/settings/webhooks");
    await hydrated(page);
    for (const url of ["http://10.0.0.1/", "ftp://x"]) {
      await page.getByLabel("URL", { exact: true }).fill(url);
      await page.getByTestId("add-endpoint").click();
      await expect(page.locator("#endpoint-url-error")).toBeVisible();
      await expect(page.locator("#endpoint-url-error")).not.toHaveText("");
      await expect(page.getByLabel("URL", { exact: true })).toHaveAttribute("aria-invalid", "true");
      await expect(page.getByTestId("new-secret")).toHaveCount(0);
    }
  });
});

test.describe("workflows", () => {
  test("the onboarding run waits for the CRM, and its timeline completes live after the inbound webhook", async ({ page }) => {
    // The stack's `crm` source belongs to e2e-python (scripts/stack.sh): only that user's runs hear it.
    await signedIn(page, "e2e-python");
    await page.goto("/workflows");
    await hydrated(page);
    const onboarding = page.locator('[data-testid="definition"][data-name="customer_onboarding"]');
    const email = `ada-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
    await onboarding.getByRole("textbox").fill(JSON.stringify({ email, name: "Ada" }));
    await onboarding.getByTestId("start-run").click();
    await expect(page).toHaveURL(/\/workflows\/runs\/[^/]+$/);
    const runId = page.url().split("/").pop()!;
    const status = page.getByTestId("run-detail").getByTestId("run-status");
    await expect(status).toHaveAttribute("data-status", "waiting", { timeout: 20_000 });
    await expect(page.getByTestId("current-step")).toHaveText("wait_crm_confirmation");

    const body = JSON.stringify({ correlation_id: runId, status: "confirmed" });
    const res = await page.request.post(`${process.env.E2E_BASE_URL ?? ""}/api/v1/inbound/crm`, { headers: signed(body, CRM_SECRET), data: body });
    expect(res.status(), await res.text()).toBeLessThan(300);

    // No reload: the page polls while the run is active.
    await expect(status).toHaveAttribute("data-status", "completed", { timeout: 20_000 });
    for (const step of ["create_account", "send_welcome", "notify_crm", "wait_crm_confirmation"]) {
      await expect(page.locator(`[data-testid="timeline-entry"][data-step="${step}"] [data-outcome="succeeded"]`).first()).toBeVisible();
    }
    await expect(page.getByTestId("live")).toHaveCount(0);
  });

  test("a definition with a bad field lists the error by its field path", async ({ page }) => {
    await signedIn(page, "e2e-ivan");
    await page.goto("/workflows");
    await hydrated(page);
    const source = ['name = "bad_retry"', "", "[[steps]]", 'name = "wait_a_moment"', 'action = { type = "delay", ms = 300 }', "retry = { max_attempts = 0 }"].join("\n");
    await page.getByLabel("Definition", { exact: true }).fill(source);
    await page.getByTestId("save-workflow").click();
    await expect(page.getByTestId("definition-errors")).toContainText("steps[0].retry.max_attempts");
    await expect(page.getByTestId("definitions")).not.toContainText("bad_retry");
  });
});

test.describe("without JavaScript", () => {
  test.use({ javaScriptEnabled: false });

  async function plainSignIn(page: Page, user: string) {
    await page.goto("/login");
    await page.getByLabel("Username").fill(user);
    await page.getByLabel("Password").fill(`password-of-${user}`);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByTestId("username")).toHaveText(user);
  }

  test("a token is created and shown once, then revoked, by plain form posts", async ({ page }) => {
    await plainSignIn(page, "e2e-ivan");
    await page.goto("/settings/tokens");
    const name = `plain-${Date.now()}`;
    await page.getByLabel("Name", { exact: true }).fill(name);
    await page.getByLabel("notifications:read").check();
    await page.getByLabel("Current password", { exact: true }).fill(password("e2e-ivan"));
    await page.getByTestId("create-token").click();
    await expect(page).toHaveURL(/\/settings\/tokens\??$/);
    const token = (await page.getByTestId("new-token").textContent())!.trim();
    expect(token).toMatch(/^ie_/);
    await page.reload();
    await expect(page.getByTestId("new-token")).toHaveCount(0);
    const row = page.getByTestId("token-row").filter({ hasText: name });
    await expect(row.getByTestId("token-prefix")).toHaveText(`${token.slice(0, 8)}…`);
    await row.getByRole("button", { name: `Revoke ${name}` }).click();
    await expect(page.getByTestId("token-row").filter({ hasText: name })).toHaveCount(0);
  });

  test("an endpoint is added (secret shown once) and sent a test event by plain form posts", async ({ page }) => {
    const receiver = new Receiver();
    const url = await receiver.start();
    await plainSignIn(page, "e2e-judy");
    await page.goto("/settings/webhooks");
    await page.getByLabel("URL", { exact: true }).fill(url);
    await page.getByTestId("add-endpoint").click();
    receiver.secret = (await page.getByTestId("new-secret").textContent())!.trim();
    expect(receiver.secret).toMatch(/^whsec_/);
    await page.getByTestId("open-new-endpoint").click();
    await expect(page.getByTestId("new-secret")).toHaveCount(0);
    await page.getByTestId("send-test").click();
    await expect(page.getByTestId("endpoint-detail")).toBeVisible();
    await expect(async () => {
      await page.reload();
      await expect(page.getByTestId("attempt-outcome").first()).toHaveText("delivered", { timeout: 1000 });
    }).toPass({ timeout: 20_000 });
    receiver.stop();
  });

  test("a refused endpoint URL is explained after a plain form post", async ({ page }) => {
    await plainSignIn(page, "e2e-judy");
    await page.goto("/settings/webhooks");
    await page.getByLabel("URL", { exact: true }).fill("http://10.0.0.1/");
    await page.getByTestId("add-endpoint").click();
    const alert = page.getByRole("region", { name: "Add endpoint" }).getByRole("alert");
    await expect(alert).toContainText("Could not add the endpoint: URL:");
    await expect(alert).not.toContainText("server function");
    await expect(page.getByTestId("new-secret")).toHaveCount(0);
  });

  test("a run is started by a plain form post and lands on its page", async ({ page }) => {
    await plainSignIn(page, "e2e-ivan");
    await page.goto("/workflows");
    const onboarding = page.locator('[data-testid="definition"][data-name="customer_onboarding"]');
    await onboarding.getByRole("textbox").fill(JSON.stringify({ email: `plain-${Date.now()}@example.com`, name: "Ada" }));
    await onboarding.getByTestId("start-run").click();
    await expect(page).toHaveURL(/\/workflows\/runs\/[^/]+$/);
    await expect(page.getByTestId("run-detail")).toBeVisible();
  });
});
