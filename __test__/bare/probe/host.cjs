// Runs in the host under test (Node or Bare): loads the probe addon and prints one
// `probe <name>=<value>` line. Usage: <node|bare> host.cjs <probe.node> order|remove-hook
const isBare = typeof Bare !== 'undefined';
const [addonPath, what] = (isBare ? Bare.argv : process.argv).slice(2);
let probe;
if (isBare) {
  probe = require.addon(addonPath);
} else {
  const m = { exports: {} };
  process.dlopen(m, addonPath);
  probe = m.exports;
}

if (what === 'order') {
  const status = probe.startTsfn();
  if (status !== 0) throw new Error(`napi_create_threadsafe_function/release returned ${status}`);
  const started = Date.now();
  const poll = setInterval(() => {
    const order = probe.tsfnFinalizeOrder();
    if (order !== 'pending' || Date.now() - started > 5000) {
      clearInterval(poll);
      console.log(`probe tsfn-finalize-order=${order}`);
    }
  }, 5);
} else if (what === 'remove-hook') {
  // Bare 1.31-1.33 abort inside this call (exit 134): the parent reports that.
  console.log(`probe remove-unknown-cleanup-hook=status ${probe.removeUnknownCleanupHook()}`);
} else {
  throw new Error(`unknown probe ${what}`);
}
