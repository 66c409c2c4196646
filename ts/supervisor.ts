// spawnSupervised(): a child in its own process group with readiness, intent-classified exit and group stop.
import { QvacError, fromNative } from './errors.js';
import './exit.js';
import * as native from './native.js';

export interface SpawnSupervisedOptions {
  command: string;
  args?: string[];
  /** Added to (or overriding) the inherited environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** Default: ready once spawned. */
  readiness?: { http: string; bearer?: string } | { outputLine: string };
  /** Default 180000. The child is killed when it passes. */
  startTimeoutMs?: number;
  /** SIGTERM-to-SIGKILL grace for `stop()`. Default 5000. */
  graceMs?: number;
  /** How much of stdout+stderr to keep. Default 8192. */
  outputTailBytes?: number;
  /** Kill the child if this process dies (Linux PR_SET_PDEATHSIG). Default false. */
  dieWithParent?: boolean;
}

/** How a supervised child ended, by our intent rather than its exit code. */
export interface SupervisedExit {
  kind: 'stopped' | 'crashed' | 'failed-to-start' | 'start-timeout';
  code: number | null;
  signal: string | null;
  outputTail: string;
}

/** `ready` rejected: the child exited first (EXITED_BEFORE_READY) or timed out (START_TIMEOUT). */
export class SupervisedStartError extends QvacError {
  readonly exit: SupervisedExit;
  constructor(exit: SupervisedExit) {
    const timedOut = exit.kind === 'start-timeout';
    super(
      timedOut ? 'START_TIMEOUT' : 'EXITED_BEFORE_READY',
      timedOut
        ? 'the process did not become ready within startTimeoutMs and was killed'
        : `the process exited before becoming ready (code=${exit.code}, signal=${exit.signal})` +
            (exit.outputTail ? `\n--- output ---\n${exit.outputTail.trimEnd()}` : '')
    );
    this.exit = exit;
  }
}

export interface SupervisedProcess {
  readonly pid: number;
  /** Resolves when readiness passes; rejects with `SupervisedStartError`. */
  readonly ready: Promise<void>;
  /** Resolves once, when the child and its whole process group are gone. */
  readonly exited: Promise<SupervisedExit>;
  /** SIGTERM the group, SIGKILL after the grace, resolve when the group is gone. Idempotent. */
  stop(options?: { graceMs?: number }): Promise<SupervisedExit>;
  outputTail(): string;
}

function exitOf(report: native.NativeExitReport): SupervisedExit {
  return {
    kind: report.kind as SupervisedExit['kind'],
    code: report.code ?? null,
    signal: report.signal ?? null,
    outputTail: report.outputTail
  };
}

/**
 * Spawns `command` in its own process group and supervises it: readiness (HTTP probe or an
 * output line), exit classified by intent, group stop with grace. Children still running when
 * this process exits are killed. Throws INVALID_OPTION for bad options and SPAWN_FAILED when
 * the command cannot be started.
 */
export function spawnSupervised(options: SpawnSupervisedOptions): SupervisedProcess {
  const readiness = options.readiness;
  const nativeOptions: native.SupervisedOptions = {
    command: options.command,
    args: options.args,
    env: options.env ? Object.entries(options.env) : undefined,
    cwd: options.cwd,
    readyUrl: readiness && 'http' in readiness ? readiness.http : undefined,
    readyBearer: readiness && 'http' in readiness ? readiness.bearer : undefined,
    readyLine: readiness && 'outputLine' in readiness ? readiness.outputLine : undefined,
    startTimeoutMs: options.startTimeoutMs,
    graceMs: options.graceMs,
    outputTailBytes: options.outputTailBytes,
    dieWithParent: options.dieWithParent
  };
  const invalid = native.checkSupervisedOptions(nativeOptions);
  if (invalid) throw fromNative(invalid);
  let child: native.NativeSupervised;
  try {
    child = native.NativeSupervised.spawn(nativeOptions);
  } catch (err) {
    throw new QvacError('SPAWN_FAILED', (err as Error).message);
  }
  const ready = child.ready().then((exit) => {
    if (exit) throw new SupervisedStartError(exitOf(exit));
  });
  // Handled here so an ignored `ready` never becomes an unhandled rejection; awaiting it still throws.
  ready.catch(() => {});
  const exited = child.exited().then(exitOf);
  return {
    pid: child.pid,
    ready,
    exited,
    stop: async (opts = {}) => exitOf(await child.stop(opts.graceMs)),
    outputTail: () => child.outputTail()
  };
}
