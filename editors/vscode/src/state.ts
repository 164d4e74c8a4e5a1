// Per-workspace state of the extension: whether mirrord is enabled, the selected target, the
// active configuration and the recently picked targets. Kept in VS Code's workspace state (a
// Memento); plain logic, no `vscode` import.

/** The subset of `vscode.Memento` used here. */
export interface StateStore {
  get(key: string): unknown;
  update(key: string, value: unknown): PromiseLike<void>;
}

const KEYS = {
  enabled: 'mirrord.enabled',
  selectedTarget: 'mirrord.selectedTarget',
  activeConfiguration: 'mirrord.activeConfiguration',
  recentTargets: 'mirrord.recentTargets',
} as const;

/** How many picked targets are remembered. */
const RECENT_TARGETS = 5;

function stringOrUndefined(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

export class WorkspaceState {
  private readonly listeners = new Set<() => void>();

  /** `enabledByDefault` is read on every call: the setting may change while running. */
  constructor(
    private readonly store: StateStore,
    private readonly enabledByDefault: () => boolean,
  ) {}

  /** Runs `listener` whenever anything here changes. */
  onDidChange(listener: () => void): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  private async set(key: string, value: unknown): Promise<void> {
    await this.store.update(key, value);
    for (const listener of [...this.listeners]) listener();
  }

  get enabled(): boolean {
    const enabled = this.store.get(KEYS.enabled);
    return typeof enabled === 'boolean' ? enabled : this.enabledByDefault();
  }

  /** Flips the toggle; resolves with the new value. */
  async toggle(): Promise<boolean> {
    const enabled = !this.enabled;
    await this.set(KEYS.enabled, enabled);
    return enabled;
  }

  /** The target chosen with "Select Target", sent with every launch (overrides the config's). */
  get selectedTarget(): string | undefined {
    return stringOrUndefined(this.store.get(KEYS.selectedTarget));
  }

  async setSelectedTarget(target: string | undefined): Promise<void> {
    await this.set(KEYS.selectedTarget, target);
    if (target !== undefined) await this.rememberTarget(target);
  }

  /** The config file chosen with "Select Active Configuration", relative to the workspace folder. */
  get activeConfiguration(): string | undefined {
    return stringOrUndefined(this.store.get(KEYS.activeConfiguration));
  }

  async setActiveConfiguration(configPath: string | undefined): Promise<void> {
    await this.set(KEYS.activeConfiguration, configPath);
  }

  /** Targets picked before, most recent first. */
  get recentTargets(): string[] {
    const recent = this.store.get(KEYS.recentTargets);
    return Array.isArray(recent) ? recent.filter((t): t is string => typeof t === 'string') : [];
  }

  async rememberTarget(target: string): Promise<void> {
    const recent = [target, ...this.recentTargets.filter((t) => t !== target)].slice(0, RECENT_TARGETS);
    await this.set(KEYS.recentTargets, recent);
  }
}
