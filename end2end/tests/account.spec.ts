import { expect, test, type Page } from "@playwright/test";
import { hydrated, sessionCookie } from "./helpers";

// Sign-up and password change. The stack turns sign-up on (APP_SIGNUP__ENABLED=true). Every user made
// here has a name of its own per run, so it never meets scripts/test.sh's e2e-* users or another run's.
const unique = (what: string) => `e2e-${what}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
const GOOD = "a long and quite unguessable passphrase";
const NEWER = "another passphrase, changed from browser A";

async function fillSignup(page: Page, username: string, pass: string) {
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password", { exact: true }).fill(pass);
  await page.getByRole("button", { name: "Create account" }).click();
}

async function signUp(page: Page, username: string, pass = GOOD) {
  await page.goto("/signup");
  await hydrated(page);
  await fillSignup(page, username, pass);
  await expect(page).toHaveURL(/\/success$/);
  await expect(page.getByTestId("header-user")).toHaveText(username);
}

async function signInAs(page: Page, username: string, pass: string) {
  await page.goto("/login");
  await hydrated(page);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(pass);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(/\/success$/);
}

test("sign-up refuses a common password with the message, then a good one lands on /success", async ({ page, context }) => {
  const username = unique("signup");
  await page.goto("/login");
  await hydrated(page);
  await page.getByTestId("signup-link").click();
  await expect(page).toHaveURL(/\/signup$/);
  await hydrated(page);

  const field = page.getByLabel("Password", { exact: true });
  await expect(field).toHaveAttribute("autocomplete", "new-password");
  await expect(field).not.toHaveAttribute("maxlength", /.*/);
  const hint = page.locator("#password-hint");
  await expect(hint).toContainText("15 or more characters recommended");
  await field.fill("abc");
  await expect(hint).toContainText("3 so far: at least 8 needed");
  // The toggle shows what was typed, and hides it again.
  await page.getByTestId("password-toggle").click();
  await expect(field).toHaveAttribute("type", "text");
  await page.getByTestId("password-toggle").click();
  await expect(field).toHaveAttribute("type", "password");

  await fillSignup(page, username, "password");
  const error = page.locator("#password-error");
  await expect(error).toContainText("one of the most commonly used");
  await expect(field).toBeFocused();
  await expect(field).toHaveAttribute("aria-invalid", "true");
  expect(await sessionCookie(context)).toBeUndefined();

  // Longer than 128 characters: refused with a message, not cut off by the browser.
  const tooLong = "x1".repeat(70);
  await field.fill(tooLong);
  await expect(field).toHaveValue(tooLong);
  await expect(hint).toContainText("140 characters: at most 128 are accepted");
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(error).toContainText("Passwords are at most 128 characters.");

  await fillSignup(page, username, GOOD);
  await expect(page).toHaveURL(/\/success$/);
  await expect(page.getByTestId("username")).toHaveText(username);
  expect(await sessionCookie(context)).toBeTruthy();
});

// ASVS 6.2.7: nothing on the page cancels a paste into a password field (a password manager or the
// clipboard must work), on the hydrated sign-up, login and password pages.
test("pasting into every password field is allowed", async ({ page }) => {
  const pastes = async () =>
    page.locator('input[type="password"]').evaluateAll((fields) =>
      fields.map((f) => {
        const data = new DataTransfer();
        data.setData("text/plain", "pasted secret");
        const event = new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true });
        return f.dispatchEvent(event); // false if any listener called preventDefault()
      }),
    );
  await page.goto("/signup");
  await hydrated(page);
  expect(await pastes()).toEqual([true]);
  await page.goto("/login");
  await hydrated(page);
  expect(await pastes()).toEqual([true]);
  await signUp(page, unique("paste"));
  await page.goto("/settings/password");
  await hydrated(page);
  expect(await pastes()).toEqual([true, true, true]);
});

test("a password change in browser A signs browser B out, and A stays signed in", async ({ page, browser }) => {
  const username = unique("change");
  await signUp(page, username);
  const other = await browser.newContext({ ignoreHTTPSErrors: true });
  const b = await other.newPage();
  await signInAs(b, username, GOOD);

  await page.goto("/settings/password");
  await hydrated(page);
  await expect(page.getByRole("link", { name: "Password" })).toHaveAttribute("aria-current", "page");
  // A wrong current password is refused under its field, and nothing changes.
  await page.getByLabel("Current password", { exact: true }).fill("not the password");
  await page.getByLabel("New password", { exact: true }).fill(NEWER);
  await page.getByLabel("Confirm new password", { exact: true }).fill(NEWER);
  await page.getByTestId("change-password").click();
  await expect(page.locator("#current_password-error")).toHaveText("Your current password is not correct.");
  await expect(page.getByLabel("Current password", { exact: true })).toBeFocused();

  await page.getByLabel("Current password", { exact: true }).fill(GOOD);
  await page.getByTestId("change-password").click();
  await expect(page.getByTestId("password-changed")).toHaveText(
    "Password changed. 1 other session was signed out; this one stays signed in. " +
      "Your API tokens were revoked: create new ones for your scripts.",
  );
  await expect(page).toHaveURL(/\/settings\/password\?changed=1$/);

  // B's session was ended: its next page load goes to the login.
  await b.goto("/success");
  await expect(b).toHaveURL(/\/login\?next=%2Fsuccess$/);
  // A is still signed in.
  await page.goto("/success");
  await expect(page.getByTestId("username")).toHaveText(username);
  // And the new password is the one that works.
  await signInAs(b, username, NEWER);
  await other.close();
});

test.describe("without JavaScript", () => {
  test.use({ javaScriptEnabled: false });

  test("sign-up works as a plain form post", async ({ page, context }) => {
    const username = unique("nojs");
    await page.goto("/signup");
    // No script, no toggle: the button only appears once hydrated.
    await expect(page.getByTestId("password-toggle")).toBeHidden();
    await fillSignup(page, username, "baseball");
    await expect(page.locator("#password-error")).toContainText("one of the most commonly used");
    await expect(page.getByLabel("Username")).toHaveValue(username);
    expect(await sessionCookie(context)).toBeUndefined();

    await page.getByLabel("Password", { exact: true }).fill(GOOD);
    await page.getByRole("button", { name: "Create account" }).click();
    await expect(page).toHaveURL(/\/success$/);
    await expect(page.getByTestId("username")).toHaveText(username);
    expect(await sessionCookie(context)).toBeTruthy();
  });

  test("password change works as a plain form post", async ({ page }) => {
    const username = unique("nojs-change");
    await page.goto("/signup");
    await fillSignup(page, username, GOOD);
    await expect(page).toHaveURL(/\/success$/);
    await page.goto("/settings/password");
    await page.getByLabel("Current password", { exact: true }).fill(GOOD);
    await page.getByLabel("New password", { exact: true }).fill(NEWER);
    await page.getByLabel("Confirm new password", { exact: true }).fill("does not match");
    await page.getByTestId("change-password").click();
    await expect(page.locator("#confirm_password-error")).toContainText("not the same");

    await page.getByLabel("Current password", { exact: true }).fill(GOOD);
    await page.getByLabel("New password", { exact: true }).fill(NEWER);
    await page.getByLabel("Confirm new password", { exact: true }).fill(NEWER);
    await page.getByTestId("change-password").click();
    await expect(page.getByTestId("password-changed")).toContainText("Password changed. You had no other sessions");
    await page.goto("/success");
    await expect(page.getByTestId("username")).toHaveText(username);
  });
});
