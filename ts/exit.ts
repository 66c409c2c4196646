// At exit: release the locks and markers this environment holds and kill its supervised children.
import * as native from './native.js';
import { isMainThread, onceAtExit } from './runtime.js';

export { isMainThread };

// What an environment (the main thread, or a worker thread) holds is let go when it exits,
// however the exit comes ('exit' runs for a normal end, process.exit() and uncaught exceptions).
// Node emits 'exit' in worker threads too: there it releases only what that worker acquired, so
// a worker's end never touches the main thread's locks, markers or children. The main thread's
// 'exit' is the end of the process, and takes every environment's with it: Node then tears down
// the workers (their cleanup hooks run), Bun does not, and their children must not outlive us.
// The native environment cleanup hook covers what 'exit' does not (worker.terminate()); all of
// this is idempotent.
onceAtExit(() => {
  if (isMainThread()) {
    native.releaseProcessLocks();
    native.killProcessSupervised();
  } else {
    native.releaseEnvLocks();
    native.killEnvSupervised();
  }
});
