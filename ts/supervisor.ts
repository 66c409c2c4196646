// spawnSupervised(): a child in its own process group with readiness, intent-classified exit and group stop.
import { booleanArg, millisArg, numberArg, optionsArg, stringArg, stringArrayArg } from './args.js';
import { InvalidOptionError, QvacError, fromNative } from './errors.js';
import './exit.js';
import * as native from './native.js';

export interface SpawnSupervisedOptions {
  command: string;
  args?: string[];
  /** Added to (or overriding) the inherited environment. */
  env?: Record<string, string>;
  cwd?: string;
  /**
   * Default: ready once spawned, i.e. as soon as `spawnSupervised` returns (the command was
   * executed), so any exit it was not asked for is `crashed`, however soon it comes.
   */
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
  /**
   * Decided by what the child did, never by timing:
   * - `stopped`: we asked it to stop (`stop()`, or this process exiting), ready or not;
   * - `start-timeout`: readiness did not pass within `startTimeoutMs`, so it was killed;
   * - `crashed`: it exited on its own, with any code or signal, after its readiness passed —
   *   with the default readiness that is any exit after spawning (`sh -c 'exit 5'` is always
   *   `crashed`, code 5);
   * - `failed-to-start`: it exited on its own before the `readiness.outputLine` appeared in its
   *   output or a `readiness.http` probe got a 2xx (a probe in flight at the exit may finish).
   *
   * A command that cannot be executed at all (not found, not executable, bad `cwd`) never gets
   * here: `spawnSupervised` throws SPAWN_FAILED.
   */
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
 * the command cannot be executed (then nothing runs and no exit is reported); how an exit is
 * classified is on {@link SupervisedExit.kind}.
 */
export function spawnSupervised(optionsIn: SpawnSupervisedOptions): SupervisedProcess {
  const options = optionsArg<SpawnSupervisedOptions>('options', optionsIn, false);
  stringArg('command', options.command);
  stringArrayArg('args', options.args);
  stringArg('cwd', options.cwd, true);
  if (options.env !== undefined) {
    const env = optionsArg<Record<string, unknown>>('env', options.env);
    const bad = Object.entries(env).find(([, v]) => typeof v !== 'string' || v.includes('\0'));
    if (bad) throw InvalidOptionError.because(`env.${bad[0]}`, typeof bad[1], 'a string without NUL bytes');
  }
  const readiness = options.readiness as { http?: unknown; bearer?: unknown; outputLine?: unknown } | undefined;
  if (readiness !== undefined) {
    optionsArg('readiness', readiness, false);
    if (readiness.http !== undefined) {
      stringArg('readiness.http', readiness.http);
      stringArg('readiness.bearer', readiness.bearer, true);
    } else {
      stringArg('readiness.outputLine', readiness.outputLine);
    }
  }
  // Ranges are checked natively (checkSupervisedOptions); the types here, so the addon never
  // sees a value it cannot convert.
  numberArg('startTimeoutMs', options.startTimeoutMs);
  numberArg('graceMs', options.graceMs);
  numberArg('outputTailBytes', options.outputTailBytes);
  booleanArg('dieWithParent', options.dieWithParent);
  const nativeOptions: native.SupervisedOptions = {
    command: options.command,
    args: options.args,
    env: options.env ? Object.entries(options.env) : undefined,
    cwd: options.cwd,
    readyUrl: readiness?.http as string | undefined,
    readyBearer: readiness?.bearer as string | undefined,
    readyLine: readiness?.http === undefined ? (readiness?.outputLine as string | undefined) : undefined,
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
    stop: async (opts = {}) => {
      optionsArg('options', opts);
      const graceMs = opts.graceMs === undefined ? undefined : millisArg('graceMs', opts.graceMs, 0);
      return exitOf(await child.stop(graceMs));
    },
    outputTail: () => child.outputTail()
  };
}
