// The QVAC SDK's side, run by Node in the bare lane: starts the worker with `bare-runtime/spawn`
// (as @qvac/sdk's node-rpc-client does) and talks to it over its own Unix socket, relaying the
// worker's events as JSON lines on stdout. stdin: "shutdown" asks the worker to clean up;
// "stop" is the SDK's stop done with requestCleanup: ask over the socket, wait for the ack, then
// terminate the worker (TERM, grace, KILL), and print the result.
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import spawn from 'bare-runtime/spawn';
import { requestCleanup } from 'qvac-managed';

const [worker, lockPath, socketPath] = process.argv.slice(2);
const say = (event) => console.log(JSON.stringify(event));
let child;
const acks = [];
const server = createServer((socket) => {
  createInterface({ input: socket }).on('line', (line) => {
    console.log(line);
    if (JSON.parse(line).event === 'ack') acks.shift()?.(JSON.parse(line).report);
  });
  createInterface({ input: process.stdin }).on('line', async (line) => {
    if (line === 'shutdown') socket.write('__shutdown__\n');
    if (line === 'stop') {
      const request = () => new Promise((resolve) => (acks.push(resolve), socket.write('__shutdown__\n')));
      const result = await requestCleanup(child, { request, timeoutMs: 5_000, graceMs: 1_000 });
      say({ event: 'stopped', ...result });
    }
  });
});
server.listen(socketPath, () => {
  child = spawn({ args: [worker, 'sdk', lockPath, socketPath], stdio: ['ignore', 'ignore', 'inherit'] });
  say({ event: 'spawned', workerPid: child.pid });
});
