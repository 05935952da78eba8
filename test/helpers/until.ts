/** Polls `what` every 100 ms until it returns true (→ true) or `ms` pass (→ false). */
export async function until(what: () => Promise<boolean> | boolean, ms = 15_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await what()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}
