/** `gatehouse start` and `gatehouse check`. */
import { Gateway } from '../app.js';
import { auditLogOf } from '../audit/plugin.js';
import { compile } from '../config/compile.js';
import { ConfigError, formatIssue, loadConfigFile } from '../config/load.js';
import { Resources } from '../config/resources.js';
import { createLogger } from '../log.js';
import { Metrics } from '../metrics/metrics.js';
import { configPath, EXIT_OK, EXIT_REFUSED, parse, type CliIo } from './args.js';
import { PRODUCTION_NODE_FLAGS, UNPINNED_WARNING, youngGenerationPinned } from './node-flags.js';

export async function checkCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parse(args, { quiet: { type: 'boolean', short: 'q' } });
  const file = configPath(values, io.env);
  const resources = new Resources();
  const scope = resources.scope();
  try {
    const { config, source } = loadConfigFile(file, io.env);
    const rt = compile(config, source, { scope, log: createLogger({ level: 'silent' }), metrics: new Metrics({ defaults: false }), mode: 'offline' });
    for (const w of rt.warnings) io.err(`warning: ${formatIssue(w)}`);
    if (!values.quiet) io.out(`${file}: OK (${rt.routes.length} routes, ${rt.upstreams.size} upstreams, ${rt.authenticators.size} authenticators)`);
    return EXIT_OK;
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const i of err.issues) io.err(formatIssue(i));
      io.err(`${file}: ${err.issues.length} error${err.issues.length === 1 ? '' : 's'}`);
      return EXIT_REFUSED;
    }
    throw err;
  } finally {
    await resources.rollback(scope);
  }
}

export async function startCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parse(args, {});
  const file = configPath(values, io.env);
  const log = createLogger();
  let gw: Gateway;
  try {
    gw = await Gateway.start({ configFile: file, log });
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const i of err.issues) io.err(formatIssue(i));
      io.err(`${file}: configuration refused; the gateway did not start`);
    } else {
      io.err(`gatehouse: cannot start: ${(err as Error).message}`);
    }
    log.flush();
    return EXIT_REFUSED;
  }
  if (!youngGenerationPinned()) log.warn({ node_flags: PRODUCTION_NODE_FLAGS.join(' ') }, UNPINNED_WARNING);
  return new Promise<number>((resolveExit) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      const inflight = gw.inflight;
      // close() stops the listeners synchronously: log after it, so that whoever reads this line finds them closed.
      const closing = gw.close();
      log.info({ signal, inflight }, 'shutting down: draining in-flight requests');
      void closing.then(() => {
        log.info('stopped');
        log.flush();
        resolveExit(EXIT_OK);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => void gw.reload('SIGHUP'));
    // logrotate: reopen the audit file by name after it was moved away.
    process.on('SIGUSR2', () => {
      log.info('SIGUSR2: reopening the audit log');
      void auditLogOf(gw)?.reopen();
    });
  });
}
