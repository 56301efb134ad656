import { expect, test } from "@playwright/test";
import { hydrated, password, sessionCookie, signIn, SESSION_COOKIE } from "./helpers";

test("login succeeds and lands on /success showing the username", async ({ page, context }) => {
  await signIn(page, "e2e-alice");
  await expect(page).toHaveURL(/\/success$/);
  await expect(page.getByRole("heading", { name: "You are signed in" })).toBeVisible();
  await expect(page.getByTestId("username")).toHaveText("e2e-alice");
  await expect(page.getByTestId("header-user")).toHaveText("e2e-alice");
  await expect(page.getByTestId("absolute-expiry")).toContainText("UTC");
  const cookie = (await context.cookies()).find((c) => c.name === SESSION_COOKIE);
  expect(cookie?.httpOnly).toBe(true);
  expect(cookie?.secure).toBe(true);
  expect(cookie?.sameSite).toBe("Strict");
});

test("wrong password shows the generic error and sets no session", async ({ page, context }) => {
  await signIn(page, "e2e-alice", "not-the-password");
  const error = page.locator("#login-error");
  await expect(error).toHaveText("Invalid username or password.");
  await expect(error).toBeFocused();
  expect(await sessionCookie(context)).toBeUndefined();
  // An unknown user gets exactly the same message.
  await page.getByLabel("Username").fill("no-such-user-anywhere");
  await page.getByLabel("Password").fill("whatever");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(error).toHaveText("Invalid username or password.");
  expect(await sessionCookie(context)).toBeUndefined();
});

test("the session cookie value changes across login", async ({ page, context }) => {
  // A cookie planted before login (session fixation) is not kept.
  const url = test.info().project.use.baseURL as string;
  await context.addCookies([{ name: SESSION_COOKIE, value: "planted-by-attacker", url, secure: true, httpOnly: true, sameSite: "Strict" }]);
  await signIn(page, "e2e-bob");
  await expect(page).toHaveURL(/\/success$/);
  const first = await sessionCookie(context);
  expect(first).toBeTruthy();
  expect(first).not.toBe("planted-by-attacker");
  // Signing in again from a signed-in browser issues another id.
  await signIn(page, "e2e-bob");
  await expect(page).toHaveURL(/\/success$/);
  const second = await sessionCookie(context);
  expect(second).toBeTruthy();
  expect(second).not.toBe(first);
});

test("logout, then replaying the old cookie is refused", async ({ page, context, browser }) => {
  await signIn(page, "e2e-carol");
  await expect(page).toHaveURL(/\/success$/);
  const old = await sessionCookie(context);
  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page).toHaveURL(/\/login$/);
  expect(await sessionCookie(context)).toBeUndefined();

  const attacker = await browser.newContext({ ignoreHTTPSErrors: true });
  const url = test.info().project.use.baseURL as string;
  await attacker.addCookies([{ name: SESSION_COOKIE, value: old!, url, secure: true, httpOnly: true, sameSite: "Strict" }]);
  const replay = await attacker.newPage();
  await replay.goto("/success");
  await expect(replay).toHaveURL(/\/login\?next=%2Fsuccess$/);
  await attacker.close();
});

test("/success without a session redirects to login, then back after signing in", async ({ page }) => {
  const res = await page.goto("/success");
  expect(res?.status()).toBe(200);
  await expect(page).toHaveURL(/\/login\?next=%2Fsuccess$/);
  await hydrated(page);
  await page.getByLabel("Username").fill("e2e-dave");
  await page.getByLabel("Password").fill(password("e2e-dave"));
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(/\/success$/);
  await expect(page.getByTestId("username")).toHaveText("e2e-dave");
});

test.describe("without JavaScript", () => {
  test.use({ javaScriptEnabled: false });

  test("the login works as a plain form post", async ({ page, context }) => {
    await page.goto("/login");
    await page.getByLabel("Username").fill("e2e-erin");
    await page.getByLabel("Password").fill("wrong-password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.locator("#login-error")).toHaveText("Invalid username or password.");
    expect(await sessionCookie(context)).toBeUndefined();
    await expect(page.getByLabel("Username")).toHaveValue("e2e-erin");

    await page.getByLabel("Password").fill(password("e2e-erin"));
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page).toHaveURL(/\/success$/);
    await expect(page.getByTestId("username")).toHaveText("e2e-erin");
    expect(await sessionCookie(context)).toBeTruthy();
  });
});

test("after hydration the form submits without a full page load", async ({ page }) => {
  await page.goto("/login");
  await hydrated(page);
  // A full page load would wipe this.
  await page.evaluate(() => ((window as any).__sameDocument = true));
  let navigations = 0;
  page.on("framenavigated", (f) => {
    if (f === page.mainFrame()) navigations++;
  });
  await page.getByLabel("Username").fill("e2e-frank");
  await page.getByLabel("Password").fill("wrong");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.locator("#login-error")).toHaveText("Invalid username or password.");
  expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);

  await page.getByLabel("Password").fill(password("e2e-frank"));
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("username")).toHaveText("e2e-frank");
  await expect(page).toHaveURL(/\/success$/);
  expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);
  // Client-side routing changes the URL without loading a new document.
  expect(navigations).toBeLessThanOrEqual(1);
});
