// Where the sidecar binary comes from, and when a dead sidecar is started again. Plain logic.

import path from 'node:path';

/**
 * The `mirrord` binary to run: the `mirrord.binaryPath` setting, else the one bundled in the
 * extension's `bin/`, else the first `mirrord` on `PATH`. Undefined when there is none.
 */
export function findSidecarBinary(
  setting: string | null | undefined,
  extensionPath: string,
  pathVariable: string | undefined,
  isExecutable: (file: string) => boolean,
): string | undefined {
  if (setting !== undefined && setting !== null && setting.trim() !== '') return setting;
  const bundled = path.join(extensionPath, 'bin', 'mirrord');
  if (isExecutable(bundled)) return bundled;
  for (const dir of (pathVariable ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, 'mirrord');
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Back-off for restarting a sidecar that died: 1 s, 2 s, 4 s … up to 60 s. A sidecar that stayed
 * up for `healthyMs` resets the count. The first restart is the one to tell the user about.
 */
export class RestartBackoff {
  private failures = 0;
  private lastStart = 0;

  constructor(
    private readonly baseMs = 1000,
    private readonly maxMs = 60000,
    private readonly healthyMs = 60000,
  ) {}

  /** Call when the sidecar starts. */
  started(now: number): void {
    this.lastStart = now;
  }

  /** Call when it died: the delay before the next start, and whether to notify the user. */
  died(now: number): { delayMs: number; notify: boolean } {
    if (now - this.lastStart >= this.healthyMs) this.failures = 0;
    const delayMs = Math.min(this.maxMs, this.baseMs * 2 ** this.failures);
    const notify = this.failures === 0 && !this.notified;
    this.notified = true;
    this.failures += 1;
    return { delayMs, notify };
  }

  private notified = false;
}
