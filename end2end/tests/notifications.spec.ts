import AxeBuilder from "@axe-core/playwright";
import { expect, test, type Page } from "@playwright/test";
import { hydrated, signIn } from "./helpers";

// e2e-gina and e2e-hank are created by scripts/test.sh; runs are listed per user. The stack runs the
// pipeline with a short retry base (APP_NOTIFY__RETRY__BASE_MS) so dead letters appear within seconds.

async function openDashboard(page: Page, user: string) {
  await signIn(page, user);
  await expect(page.getByTestId("username")).toBeVisible();
  await page.goto("/notifications");
  await hydrated(page);
}

async function startSimulation(page: Page, fields: Record<string, string>, rate = "As fast as possible") {
  for (const [label, value] of Object.entries(fields)) {
    await page.getByLabel(label, { exact: true }).fill(value);
  }
  await page.getByLabel(rate).check();
  await page.getByTestId("start-simulation").click();
}

async function expectNoViolations(page: Page) {
  const axe = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]).analyze();
  expect(axe.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`)).toEqual([]);
}

test("the dashboard needs a signed-in user", async ({ page }) => {
  await page.goto("/notifications");
  await expect(page).toHaveURL(/\/login\?next=%2Fnotifications$/);
});

test("a small simulation starts from the dashboard and completes, updated live without a reload", async ({ page }) => {
  const streams: string[] = [];
  page.on("request", (r) => {
    if (r.url().includes("/events")) streams.push(new URL(r.url()).pathname);
  });
  await openDashboard(page, "e2e-gina");
  await expect(page.getByTestId("no-runs")).toBeVisible();
  await expectNoViolations(page);
  // A marker that a full page load would wipe.
  await page.evaluate(() => ((window as unknown as { stillHere: boolean }).stillHere = true));

  await startSimulation(page, { Notifications: "600", Webhook: "1", Email: "1", SMS: "1", Push: "1" });
  await expect(page).toHaveURL(/\/notifications\?run=\d+$/);
  const panel = page.getByTestId("run-panel");
  await expect(panel.getByTestId("run-status")).toHaveText("Completed", { timeout: 30_000 });
  await expect(panel.getByTestId("delivered")).toHaveText("600");
  await expect(panel.getByTestId("dead-lettered")).toHaveText("0");
  await expect(panel.getByTestId("backlog")).toHaveText("0");
  await expect(page.getByTestId("run-progress")).toHaveAttribute("value", "600");
  expect(await page.evaluate(() => (window as unknown as { stillHere?: boolean }).stillHere)).toBe(true);
  expect(streams.some((p) => /^\/notifications\/runs\/\d+\/events$/.test(p))).toBe(true);
  await expect(page.getByTestId("runs").locator("li")).toHaveCount(1);
  await expect(page.getByTestId("runs").getByTestId("run-status")).toHaveText("Completed");
  await expectNoViolations(page);
});

test("bad simulation parameters are refused with a message under each field", async ({ page }) => {
  await openDashboard(page, "e2e-hank");
  await startSimulation(page, { Notifications: "-5", "Injected failures (%)": "150", Webhook: "0", Email: "0", SMS: "0", Push: "0" });
  await expect(page.locator("#sim-count-error")).toContainText("negative");
  await expect(page.locator("#sim-failure_percent-error")).toBeVisible();
  await expect(page.getByText("choose at least one channel")).toBeVisible();
  await expect(page).toHaveURL(/\/notifications$/);
  await expectNoViolations(page);
});

test("a paced run shows live progress and can be cancelled", async ({ page }) => {
  await openDashboard(page, "e2e-hank");
  await startSimulation(page, { Notifications: "100000", Webhook: "0", Email: "1", SMS: "0", Push: "0", "Injected failures (%)": "0" }, "1M / hour");
  const panel = page.getByTestId("run-panel");
  await expect(panel.getByTestId("live")).toBeVisible();
  // At 1M/hour (278/s) deliveries arrive within a couple of seconds, pushed by the stream.
  await expect.poll(async () => Number(await panel.getByTestId("delivered").textContent()), { timeout: 15_000 }).toBeGreaterThan(100);
  // The throughput chart fills in once a second, with its figures in the table under it.
  await expect(panel.locator("svg.chart polyline")).toBeVisible({ timeout: 15_000 });
  await expect(panel.getByTestId("throughput-table").locator("tbody tr").first()).toBeVisible();
  await expectNoViolations(page);
  await panel.getByTestId("cancel-run").click();
  await expect(panel.getByTestId("run-status")).toHaveText("Cancelled", { timeout: 15_000 });
  await expect(panel.getByTestId("live")).toHaveCount(0);
});

test("notifications that keep failing become dead letters, and can be replayed", async ({ page }) => {
  await openDashboard(page, "e2e-gina");
  await startSimulation(page, { Notifications: "5", Webhook: "0", Email: "0", SMS: "1", Push: "0", "Injected failures (%)": "100" });
  const panel = page.getByTestId("run-panel");
  await expect(panel.getByTestId("run-status")).toHaveText("Completed", { timeout: 30_000 });
  await expect(panel.getByTestId("dead-lettered")).toHaveText("5");
  await expect(panel.getByTestId("delivered")).toHaveText("0");
  const table = page.getByTestId("dead-letters");
  await expect(table.locator("tbody tr").first()).toContainText("sms");
  await page.getByTestId("replay-all").click();
  await expect(page.getByText(/\d+ put back in the queue\./)).toBeVisible();
});

test("notifications past their time to live expire unsent, counted apart on the dashboard", async ({ page }) => {
  // e2e-kim's own: a second-long life, and a second per delivery, so all but the first slots' worth expire.
  await openDashboard(page, "e2e-kim");
  await startSimulation(page, {
    Notifications: "3000",
    Webhook: "0",
    Email: "1",
    SMS: "0",
    Push: "0",
    "Added latency (ms)": "1000",
    "Expire after (s, optional)": "1",
  });
  const panel = page.getByTestId("run-panel");
  await expect(panel.getByTestId("run-status")).toHaveText("Completed", { timeout: 30_000 });
  const delivered = Number(await panel.getByTestId("delivered").textContent());
  const expired = Number(await panel.getByTestId("expired").textContent());
  expect(expired).toBeGreaterThan(1000);
  expect(delivered + expired).toBe(3000);
  await expect(panel.getByTestId("dead-lettered")).toHaveText("0");
  await expect(page.getByTestId("run-progress")).toHaveAttribute("value", "3000");
  await expectNoViolations(page);
});

test("the operator alone sees storage per store, with retention and the next pass", async ({ page }) => {
  // e2e-olga is APP_OPERATORS in the test stack; e2e-gina is not.
  await openDashboard(page, "e2e-olga");
  const storage = page.getByTestId("storage");
  await expect(storage.getByRole("heading", { name: "Storage" })).toBeVisible();
  const delivered = storage.locator('tr[data-store="notifications_delivered"]');
  await expect(delivered.locator('td[data-label="Kept for"]')).toHaveText("1 d");
  await expect(storage.locator('tr[data-store="webhook_messages"] td[data-label="Kept for"]')).toHaveText("14 d");
  await expect(storage).toContainText("next retention pass");
  await expectNoViolations(page);
  await page.context().clearCookies();
  await openDashboard(page, "e2e-gina");
  await expect(page.getByTestId("dead-letters").or(page.getByTestId("no-dead-letters"))).toBeVisible();
  await expect(page.getByTestId("storage")).toHaveCount(0);
});

test("a Web Push subscription is registered from the dashboard, listed by its id and deleted", async ({ page }) => {
  // The test stack's push service hands out subscriptions as a browser would (PushSubscription.toJSON()).
  const push = process.env.E2E_PUSH_SERVICE_URL;
  expect(push, "the test stack runs a push service (scripts/stack.sh)").toBeTruthy();
  const sub = await (await fetch(`${push}/subscriptions`, { method: "POST", body: "{}" })).json();
  await openDashboard(page, "e2e-pia");
  const card = page.getByTestId("push-subscriptions");
  await expect(card.getByTestId("vapid-key")).toContainText("applicationServerKey");
  await expect(card.getByText("No subscriptions yet.")).toBeVisible();
  // A key that is not one is named under its field.
  await card.getByLabel("Push endpoint (URL)").fill(sub.endpoint);
  await card.getByLabel("Public key (keys.p256dh, base64url)").fill("AAAA");
  await card.getByLabel("Auth secret (keys.auth, base64url)").fill(sub.keys.auth);
  await card.getByRole("button", { name: "Add subscription" }).click();
  await expect(card.getByText("must be 65 bytes, base64url")).toBeVisible();
  await card.getByLabel("Public key (keys.p256dh, base64url)").fill(sub.keys.p256dh);
  await card.getByRole("button", { name: "Add subscription" }).click();
  const row = card.locator("tr[data-subscription]");
  await expect(row).toHaveCount(1);
  await expect(row).toContainText(sub.endpoint);
  await expect(row.locator("td[data-label=\"Id\"] code")).toHaveText(/^psub_[A-Za-z0-9]{24}$/);
  await expectNoViolations(page);
  await row.getByRole("button", { name: "Delete" }).click();
  await expect(row).toHaveCount(0);
});
