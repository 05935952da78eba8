/**
 * Whole-response deadlines of one upstream's exchanges. They all share the
 * upstream's timeout, so they fall due in the order they were added: a FIFO
 * and one timer, armed for the oldest exchange still under way, replace a
 * timer per request (issue 6: setTimeout + clearTimeout were ~0.5 µs and a
 * Timeout object per request). A finished exchange leaves a hole; the head
 * moves past holes as soon as the oldest exchange finishes, and the arrays
 * are compacted every COMPACT_AT of them, so that they hold about the
 * exchanges under way rather than a whole timeout's worth of requests
 * (issue 6: grown to a timeout of requests between timer runs, they were
 * copied as they grew and ended in the old generation).
 */
export interface Expiring {
  /** The deadline passed while the exchange was still under way. */
  expired(): void;
}

/** Holes skipped before the arrays are compacted. */
const COMPACT_AT = 4096;

export class DeadlineQueue {
  readonly timeoutMs: number;
  #items: (Expiring | undefined)[] = [];
  #due: number[] = [];
  /** Index of the oldest entry not yet skipped. */
  #head = 0;
  /** Ticket of #items[0]: tickets stay valid when the arrays are compacted. */
  #base = 0;
  #timer: NodeJS.Timeout | undefined = undefined;

  constructor(timeoutMs: number) {
    this.timeoutMs = timeoutMs;
  }

  /** Starts the clock for `item` (now = performance.now()); returns the ticket for remove(). */
  add(item: Expiring, now: number): number {
    this.#items.push(item);
    this.#due.push(now + this.timeoutMs);
    if (this.#timer === undefined) this.#arm(now);
    return this.#base + this.#items.length - 1;
  }

  /** The exchange is over: its deadline no longer matters. */
  remove(ticket: number): void {
    const i = ticket - this.#base;
    if (i < this.#head || i >= this.#items.length) return;
    this.#items[i] = undefined;
    if (i === this.#head) this.#skipFinished();
  }

  /** Moves the head past finished exchanges; compacts the arrays once enough are behind it. */
  #skipFinished(): void {
    const items = this.#items;
    let head = this.#head;
    while (head < items.length && items[head] === undefined) head++;
    if (head > COMPACT_AT || (head > 0 && head === items.length)) {
      items.splice(0, head);
      this.#due.splice(0, head);
      this.#base += head;
      head = 0;
    }
    this.#head = head;
  }

  /** Exchanges under way or not yet skipped (tests). */
  get size(): number {
    let n = 0;
    for (let i = this.#head; i < this.#items.length; i++) if (this.#items[i] !== undefined) n++;
    return n;
  }

  /** Entries held, finished or not: about the exchanges under way, not every request of the last timeout (tests). */
  get held(): number {
    return this.#items.length;
  }

  /** Stops the timer (the upstream is closed); pending exchanges no longer expire. */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(now: number): void {
    this.#skipFinished();
    const items = this.#items;
    if (this.#head === items.length) {
      this.#timer = undefined;
      return;
    }
    const wait = Math.max(1, Math.ceil((this.#due[this.#head] as number) - now));
    this.#timer = setTimeout(fire, wait, this);
    this.#timer.unref();
  }

  /** @internal the timer fired: expire what is due, re-arm for the rest. */
  fire(): void {
    const now = performance.now();
    const items = this.#items;
    const due = this.#due;
    for (; this.#head < items.length; this.#head++) {
      const item = items[this.#head];
      if (item === undefined) continue;
      if ((due[this.#head] as number) > now) break;
      items[this.#head] = undefined;
      try {
        item.expired();
      } catch {
        // An exchange's own problem: the others still expire.
      }
    }
    this.#arm(now);
  }
}

function fire(q: DeadlineQueue): void {
  q.fire();
}
