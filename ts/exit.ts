// At process exit: release every lock and marker this process holds and kill supervised children.
import * as native from './native.js';

// What this process holds is let go at exit, however the exit comes ('exit' runs for a normal
// end, process.exit() and uncaught exceptions): locks and consumer markers are released and
// supervised children's groups are killed. The native environment cleanup hook does the same
// where it runs (normal end, worker threads); both are idempotent.
process.once('exit', () => {
  native.releaseAllLocks();
  native.killAllSupervised();
});
