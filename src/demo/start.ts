/**
 * `npm start`: the demo upstream on 127.0.0.1:9091 plus `gatehouse start`
 * on the shipped gateway.yaml, in one process.
 */
import { main } from '../cli/main.js';
import { startEchoUpstream } from './echo-upstream.js';

const port = Number(process.env.DEMO_UPSTREAM_PORT ?? 9091);
startEchoUpstream(port).then(
  ({ server }) => {
    process.stderr.write(`demo upstream listening on http://127.0.0.1:${port}\n`);
    return main(['start', ...process.argv.slice(2)]).then((code) => {
      server.close();
      process.exitCode = code;
    });
  },
  (err: Error) => {
    process.stderr.write(`cannot start the demo upstream on 127.0.0.1:${port}: ${err.message}\n`);
    process.exitCode = 1;
  },
);
