// One fresh process attaching to a warm serve, as an app does at start-up:
// `attach.mjs <ours|upstream> <options-json>`. Prints one JSON line: import time, the first
// createQvac, a second createQvac in the same process, and the RSS the package added.
const [impl, json] = process.argv.slice(2);
const options = { mode: 'managed', ...JSON.parse(json) };
const rssBefore = process.memoryUsage().rss;
const t0 = performance.now();
const { createQvac } = await import(impl === 'ours' ? 'qvac-managed' : '@qvac/ai-sdk-provider');
const t1 = performance.now();
const rssAfterImport = process.memoryUsage().rss;
const first = await createQvac(options);
const t2 = performance.now();
const second = await createQvac(options);
const t3 = performance.now();
process.stdout.write(
  `${JSON.stringify({ importMs: t1 - t0, createMs: t2 - t1, firstAttachMs: t2 - t0, secondCreateMs: t3 - t2, addonRssMiB: (rssAfterImport - rssBefore) / 2 ** 20, pid: first.pid })}\n`
);
await second.close();
await first.close();
process.exit(0);
