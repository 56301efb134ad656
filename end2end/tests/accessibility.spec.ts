import AxeBuilder from "@axe-core/playwright";
import { expect, test, type Page } from "@playwright/test";
import { hydrated, signIn } from "./helpers";

async function expectNoViolations(page: Page) {
  const results = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]).analyze();
  const summary = results.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
  expect(summary).toEqual([]);
}

for (const [name, viewport] of [["desktop", { width: 1280, height: 800 }], ["phone", { width: 360, height: 780 }]] as const) {
  for (const scheme of ["light", "dark"] as const) {
    test.describe(`${name}, ${scheme}`, () => {
      test.use({ viewport, colorScheme: scheme });

      test("login page has no axe violations, also when showing an error", async ({ page }) => {
        await page.goto("/login");
        await hydrated(page);
        await expectNoViolations(page);
        await page.getByLabel("Username").fill("nobody");
        await page.getByLabel("Password").fill("wrong");
        await page.getByRole("button", { name: "Sign in" }).click();
        await expect(page.locator("#login-error")).toBeVisible();
        await expectNoViolations(page);
      });

      test("success page has no axe violations", async ({ page }) => {
        await signIn(page, "e2e-alice");
        await expect(page.getByTestId("username")).toBeVisible();
        await expectNoViolations(page);
      });

      test("crypto lab has no axe violations", async ({ page }) => {
        await page.goto("/crypto");
        await hydrated(page);
        await expectNoViolations(page);
        await page.getByTestId("method").selectOption("aes256_gcm_encrypt");
        await expectNoViolations(page);
      });

      test("notifications dashboard has no axe violations", async ({ page }) => {
        await signIn(page, "e2e-alice");
        await expect(page.getByTestId("username")).toBeVisible();
        await page.goto("/notifications");
        await hydrated(page);
        await expectNoViolations(page);
      });

      test("sign-up page has no axe violations, also when showing an error", async ({ page }) => {
        await page.goto("/signup");
        await hydrated(page);
        await expectNoViolations(page);
        await page.getByLabel("Username").fill("e2e-alice");
        await page.getByLabel("Password", { exact: true }).fill("password");
        await page.getByRole("button", { name: "Create account" }).click();
        await expect(page.locator("#password-error")).toBeVisible();
        await expectNoViolations(page);
      });

      for (const path of ["/settings/tokens", "/settings/webhooks", "/settings/password", "/workflows"]) {
        test(`${path} has no axe violations`, async ({ page }) => {
          await signIn(page, "e2e-alice");
          await expect(page.getByTestId("username")).toBeVisible();
          await page.goto(path);
          await hydrated(page);
          await expectNoViolations(page);
        });
      }

      test("a workflow run's page has no axe violations", async ({ page }) => {
        await signIn(page, "e2e-alice");
        await expect(page.getByTestId("username")).toBeVisible();
        await page.goto("/workflows");
        await hydrated(page);
        await page.locator('[data-testid="definition"][data-name="customer_onboarding"]').getByTestId("start-run").click();
        await expect(page).toHaveURL(/\/workflows\/runs\//);
        await expect(page.getByTestId("timeline")).toBeVisible();
        await expectNoViolations(page);
      });

      test("404 page has no axe violations", async ({ page }) => {
        const res = await page.goto("/no-such-page");
        expect(res?.status()).toBe(404);
        await expectNoViolations(page);
      });
    });
  }
}

test("the login works from the keyboard alone, with visible focus", async ({ page }) => {
  await page.goto("/login");
  await hydrated(page);
  await page.keyboard.press("Tab"); // skip link
  await expect(page.getByRole("link", { name: "Skip to content" })).toBeFocused();
  // Through the header (brand, navigation, sign-in link) to the form, every stop visibly focused.
  const username = page.getByLabel("Username");
  for (let i = 0; i < 8 && !(await username.evaluate((el) => el === document.activeElement)); i++) {
    await page.keyboard.press("Tab");
    const outlined = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle !== "none");
    expect(outlined).toBe(true);
  }
  await expect(username).toBeFocused();
  const outline = await page.getByLabel("Username").evaluate((el) => getComputedStyle(el).outlineStyle);
  expect(outline).not.toBe("none");
  await page.keyboard.type("e2e-bob");
  await page.keyboard.press("Tab");
  await expect(page.getByLabel("Password")).toBeFocused();
  await page.keyboard.type("password-of-e2e-bob");
  await page.keyboard.press("Enter");
  await expect(page.getByTestId("username")).toHaveText("e2e-bob");
});
