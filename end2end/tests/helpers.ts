import { expect, type BrowserContext, type Page } from "@playwright/test";

/** Users created by scripts/test.sh, each with password `password-of-<name>`. */
export const password = (user: string) => `password-of-${user}`;

export const SESSION_COOKIE = "__Host-session";

export async function sessionCookie(context: BrowserContext): Promise<string | undefined> {
  const cookies = await context.cookies();
  return cookies.find((c) => c.name === SESSION_COOKIE)?.value;
}

/** Waits until the WASM app has hydrated the server-rendered page. */
export async function hydrated(page: Page) {
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
}

export async function signIn(page: Page, user: string, pass = password(user)) {
  await page.goto("/login");
  await hydrated(page);
  await page.getByLabel("Username").fill(user);
  await page.getByLabel("Password").fill(pass);
  await page.getByRole("button", { name: "Sign in" }).click();
}
