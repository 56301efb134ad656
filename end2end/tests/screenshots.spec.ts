import { expect, test } from "@playwright/test";
import * as path from "path";
import { hydrated, signIn } from "./helpers";

// Screenshots of the real pages for mockups/README.md (mockup beside page). They are written into
// mockups/screenshots/ when UPDATE_SCREENSHOTS=1 (scripts/screenshots.sh); otherwise into test-results/.
const dir = process.env.UPDATE_SCREENSHOTS ? path.join(__dirname, "..", "..", "mockups", "screenshots") : "test-results/screenshots";

for (const [width, viewport] of [["desktop", { width: 1280, height: 800 }], ["mobile", { width: 360, height: 780 }]] as const) {
  test.describe(width, () => {
    test.use({ viewport, colorScheme: "light" });

    test(`login and success pages (${width})`, async ({ page, browser }) => {
      const out = (name: string) => path.join(dir, `${name}-${width}.png`);
      await page.goto("/login");
      await hydrated(page);
      await page.screenshot({ path: out("login"), fullPage: true });

      await page.goto("/signup");
      await hydrated(page);
      await page.screenshot({ path: out("signup"), fullPage: true });

      // Another signed-in browser, so the success page shows a session to end.
      const other = await browser.newContext({ ignoreHTTPSErrors: true });
      await signIn(await other.newPage(), "e2e-carol");
      await signIn(page, "e2e-carol");
      await expect(page.getByTestId("username")).toHaveText("e2e-carol");
      await page.screenshot({ path: out("success"), fullPage: true });
      await other.close();

      await page.goto("/crypto");
      await hydrated(page);
      await page.getByTestId("method").selectOption("aes256_gcm_encrypt");
      await page.screenshot({ path: out("crypto"), fullPage: true });

      await page.goto("/notifications");
      await hydrated(page);
      await page.screenshot({ path: out("notifications"), fullPage: true });

      await page.goto("/settings/password");
      await hydrated(page);
      await page.screenshot({ path: out("password"), fullPage: true });

      await page.goto("/no-such-page");
      await page.screenshot({ path: out("not-found"), fullPage: true });
    });
  });
}
