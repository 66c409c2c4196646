import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { retry, singleFlight, RetryExhaustedError } from '../dist/index.js';

describe('retry', () => {
  test('retries until fn resolves, passing 1-based attempt numbers', async () => {
    const seen = [];
    const value = await retry(
      (attempt) => {
        seen.push(attempt);
        if (attempt < 3) throw new Error(`fail ${attempt}`);
        return 'done';
      },
      { attempts: 5, baseDelayMs: 1 }
    );
    assert.equal(value, 'done');
    assert.deepEqual(seen, [1, 2, 3]);
  });

  test('stops at the attempt bound with RetryExhaustedError carrying the last error', async () => {
    let calls = 0;
    const err = await retry(
      async () => {
        calls += 1;
        throw new Error(`boom ${calls}`);
      },
      { attempts: 4, baseDelayMs: 1 }
    ).catch((e) => e);
    assert.ok(err instanceof RetryExhaustedError);
    assert.equal(err.code, 'RETRY_EXHAUSTED');
    assert.equal(err.attempts, 4);
    assert.equal(calls, 4);
    assert.equal(err.cause.message, 'boom 4');
  });

  test('the deadline bounds the total time, whatever the attempts', async () => {
    let calls = 0;
    const err = await retry(
      () => {
        calls += 1;
        throw new Error('no');
      },
      { attempts: 1_000_000, baseDelayMs: 10, maxDelayMs: 20, deadlineMs: 150 }
    ).catch((e) => e);
    assert.equal(err.code, 'RETRY_EXHAUSTED');
    assert.ok(calls < 1_000_000 && calls >= 2, `calls ${calls}`);
    assert.ok(err.elapsedMs >= 100, `elapsed ${err.elapsedMs}`);
  });

  test('retryIf false rethrows the error at once', async () => {
    let calls = 0;
    const fatal = new Error('fatal');
    const err = await retry(
      () => {
        calls += 1;
        throw fatal;
      },
      { attempts: 5, baseDelayMs: 1, retryIf: (e) => e !== fatal }
    ).catch((e) => e);
    assert.equal(err, fatal);
    assert.equal(calls, 1);
  });

  test('abort during a delay rejects with AbortError without another attempt', async () => {
    const controller = new AbortController();
    let calls = 0;
    const started = Date.now();
    setTimeout(() => controller.abort(), 30);
    const err = await retry(
      () => {
        calls += 1;
        throw new Error('busy');
      },
      { attempts: 10, baseDelayMs: 60_000, signal: controller.signal }
    ).catch((e) => e);
    assert.equal(err.name, 'AbortError');
    assert.equal(calls, 1);
    assert.ok(Date.now() - started < 10_000);
  });

  test('waiting never blocks the event loop', async () => {
    let ticks = 0;
    const timer = setInterval(() => (ticks += 1), 5);
    await retry(
      (attempt) => {
        if (attempt < 4) throw new Error('not yet');
      },
      { attempts: 4, baseDelayMs: 40, jitter: 0 }
    );
    clearInterval(timer);
    // 40 + 80 + 160 ms of delays: an interval of 5 ms must have fired many times meanwhile.
    assert.ok(ticks >= 10, `ticks ${ticks}`);
  });

  test('bad options are INVALID_OPTION naming the option, and fn is never called', async () => {
    for (const opts of [{ attempts: 0 }, { attempts: Number.NaN }, { deadlineMs: -1 }, { jitter: 1.5 }, { maxDelayMs: Number.POSITIVE_INFINITY }]) {
      let called = false;
      const err = await retry(() => {
        called = true;
      }, opts).catch((e) => e);
      assert.equal(err.code, 'INVALID_OPTION', JSON.stringify(opts));
      assert.match(err.message, new RegExp(`\`${Object.keys(opts)[0]}\``));
      assert.equal(called, false);
    }
  });
});

describe('singleFlight', () => {
  test('concurrent callers share one run; the next call after it settles starts a new one', async () => {
    let runs = 0;
    const load = singleFlight(async (x) => {
      runs += 1;
      await new Promise((r) => setTimeout(r, 20));
      return `${x}:${runs}`;
    });
    const results = await Promise.all(Array.from({ length: 10 }, () => load('a')));
    assert.equal(runs, 1);
    assert.ok(results.every((r) => r === 'a:1'));
    assert.equal(await load('b'), 'b:2');
    assert.equal(runs, 2);
  });

  test('a rejection reaches every waiter and does not stick', async () => {
    let runs = 0;
    const flaky = singleFlight(async () => {
      runs += 1;
      await new Promise((r) => setTimeout(r, 5));
      if (runs === 1) throw new Error('first fails');
      return 'ok';
    });
    const settled = await Promise.allSettled([flaky(), flaky(), flaky()]);
    assert.ok(settled.every((s) => s.status === 'rejected' && s.reason.message === 'first fails'));
    assert.equal(await flaky(), 'ok');
    assert.equal(runs, 2);
  });

  test('a synchronous throw becomes a shared rejection, not an exception at the call site', async () => {
    const f = singleFlight(() => {
      throw new Error('sync');
    });
    const p = f();
    assert.ok(p instanceof Promise);
    await assert.rejects(p, /sync/);
  });
});
