/**
 * The Node flags a gateway runs with (issue 6). After a quiet spell of a few
 * seconds (allocation under 1 MB/s), V8 shrinks the young generation to its
 * minimum, 1 MB by default, at its next collection, and grows it back only
 * as objects survive: the first seconds of traffic after the spell pay
 * with a scavenge every 15–20 ms, 1–7 ms each, on this path, where every
 * request in flight keeps its context alive. Measured with a gateway left
 * idle for 30 s and then loaded: p99 19–31 ms against 8–9 ms for one
 * never left idle, and the same on a fresh start. Pinning the minimum at
 * V8's usual working size (16 MB a semi-space) removes both.
 *
 * Node refuses `--min-semi-space-size` in NODE_OPTIONS, and V8 reads it only
 * when the heap is set up (v8.setFlagsFromString() later has no effect), so
 * it has to be on node's own command line: the Docker image and the npm
 * scripts carry it, and `gatehouse start` says so when it is missing.
 */
export const PRODUCTION_NODE_FLAGS: readonly string[] = ['--min-semi-space-size=16'];

/** Whether node's command line sets the young generation's minimum size (in any spelling V8 accepts). */
export function youngGenerationPinned(execArgv: readonly string[] = process.execArgv): boolean {
  return execArgv.some((a) => /^--min[-_]semi[-_]space[-_]size(=|$)/.test(a));
}

/** The warning `gatehouse start` logs when node runs without the minimum set. */
export const UNPINNED_WARNING =
  'node was started without --min-semi-space-size: after a quiet spell V8 shrinks its young generation, and the first seconds of traffic pay with a GC pause every few milliseconds (p99 about doubled); start node with the flags in node_flags (the Docker image and npm start do)';
