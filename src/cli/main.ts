/**
 * The `gatehouse` command line (DESIGN.md §6).
 * Exit codes: 0 done, 1 refused or invalid, 2 usage.
 */
import { EXIT_USAGE, UsageError, defaultIo, type CliIo, type CommandHandler } from './args.js';
import { auditCommand } from './audit.js';
import { accountsCommand } from './accounts.js';
import { explainCommand } from './explain.js';
import { checkCommand, startCommand } from './serve.js';
import { upstreamCommand } from './upstream.js';

const USAGE = `Usage: gatehouse <command> [-c gateway.yaml] [options]

Commands:
  start                         run the gateway
  check                         validate the configuration (exit 1 with errors)
  upstream test NAME [--path P] try an upstream's credentials: token request, then a GET
  audit [--account NAME] [--since 24h] [--follow] [--json]
                                show the audit log (a readable table, or JSON lines)
  audit verify [FILE]           check the audit log's hash chain (exit 1 at the first broken line)
  explain [--token T] [--json] METHOD URL
                                offline: which route, who the token is, each rule, the decision
                                (exit 0 allowed, 1 refused)
  accounts create NAME --role R [--team T[:ROLE]]... [--expires-in 12mo] [--description D]
  accounts list | show NAME | rotate NAME [--grace 1h] | revoke NAME | delete NAME
                                manage service accounts (--json on every listing)

Every command takes -c FILE (default ./gateway.yaml, or $GATEHOUSE_CONFIG).`;

const COMMANDS: Record<string, CommandHandler> = {
  start: startCommand,
  check: checkCommand,
  upstream: upstreamCommand,
  audit: auditCommand,
  accounts: accountsCommand,
  explain: explainCommand,
};

export async function main(argv: string[], io: CliIo = defaultIo): Promise<number> {
  // `-c FILE` may also come before the command (DESIGN.md §6: anywhere).
  if ((argv[0] === '-c' || argv[0] === '--config') && argv.length > 1) argv = [...argv.slice(2), argv[0], argv[1]!];
  else if (argv[0]?.startsWith('--config=')) argv = [...argv.slice(1), argv[0]];
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    io.out(USAGE);
    return command === undefined ? EXIT_USAGE : 0;
  }
  const handler = COMMANDS[command];
  if (!handler) {
    io.err(`gatehouse: unknown command "${command}"\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(USAGE);
    return 0;
  }
  try {
    return await handler(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`gatehouse ${command}: ${err.message}`);
      return EXIT_USAGE;
    }
    io.err(`gatehouse ${command}: ${(err as Error).message}`);
    return 1;
  }
}
