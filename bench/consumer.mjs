// A consumer process for the reap-after-SIGKILL measurement: `consumer.mjs <ours|upstream> <options-json>`.
const [impl, json] = process.argv.slice(2);
const { createQvac } = await import(impl === 'ours' ? 'qvac-managed' : '@qvac/ai-sdk-provider');
const provider = await createQvac({ mode: 'managed', ...JSON.parse(json) });
process.stdout.write(`${JSON.stringify({ pid: provider.pid })}\n`);
setInterval(() => {}, 1000);
