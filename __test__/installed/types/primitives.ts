// A TypeScript user of the primitives alone (an SDK worker, an Electron main process), in a
// project without the optional AI SDK peers (`ai`, `@ai-sdk/openai-compatible`): the package's
// types must check with `skipLibCheck` off, so nothing in them may need a peer.
import { ensureServe, FileLock, ManagedRegistry, PidLock, retry, type SweepReport } from 'qvac-managed';

export async function main(): Promise<SweepReport> {
  const lock = await PidLock.acquire('/tmp/qvac-managed-types-check.lock');
  lock.release();
  const file = await FileLock.acquire('/tmp/qvac-managed-types-check.flock', { shared: true });
  file.release();
  const value: number = await retry(async () => 42, { attempts: 2 });
  const serve = await ensureServe({ mode: 'managed', models: ['qwen3.5-9b'] });
  serve.release();
  void value;
  return new ManagedRegistry().sweep();
}
