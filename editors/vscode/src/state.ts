// Per-workspace state of the extension: whether mirrord is enabled, the selected target and the
// active configuration, kept in VS Code's workspace state (a Memento); and the sessions running
// now, for the status bar. Plain logic, no `vscode` import. The recently used targets are the
// sidecar's (`mirrord/listTargets`).

/** The subset of `vscode.Memento` used here. */
export interface StateStore {
  get(key: string): unknown;
  update(key: string, value: unknown): PromiseLike<void>;
}

const KEYS = {
  enabled: 'mirrord.enabled',
  selectedTarget: 'mirrord.selectedTarget',
  activeConfiguration: 'mirrord.activeConfiguration',
} as const;

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
  }

  /** The config file chosen with "Select Active Configuration", relative to the workspace folder. */
  get activeConfiguration(): string | undefined {
    return stringOrUndefined(this.store.get(KEYS.activeConfiguration));
  }

  async setActiveConfiguration(configPath: string | undefined): Promise<void> {
    await this.set(KEYS.activeConfiguration, configPath);
  }
}

/** The mirrord sessions running now (started by a launch, not yet ended), by session id. */
export class ActiveSessions {
  private readonly targets = new Map<string, string>();
  private readonly listeners = new Set<() => void>();

  onDidChange(listener: () => void): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  private changed(): void {
    for (const listener of [...this.listeners]) listener();
  }

  started(sessionId: string, target: string): void {
    this.targets.set(sessionId, target);
    this.changed();
  }

  ended(sessionId: string): void {
    if (this.targets.delete(sessionId)) this.changed();
  }

  /** The ids of the running sessions. */
  get ids(): string[] {
    return [...this.targets.keys()];
  }

  /** The targets of the running sessions, oldest first. */
  get running(): string[] {
    return [...this.targets.values()];
  }
}
