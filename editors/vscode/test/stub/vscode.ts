// A stand-in for the `vscode` module with the parts the extension uses. It records what the
// extension shows and answers from a script the test sets in `stub`.

export interface Call {
  api: string;
  args: unknown[];
}

type Listener<T> = (value: T) => unknown;

export class EventEmitter<T> {
  private readonly listeners = new Set<Listener<T>>();
  readonly event = (listener: Listener<T>): { dispose(): void } => {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  };
  /** Calls every listener; resolves when the promises they return settle. */
  async fire(value: T): Promise<void> {
    await Promise.all([...this.listeners].map((listener) => listener(value)));
  }
  dispose(): void {
    this.listeners.clear();
  }
}

export class CancellationTokenSource {
  private readonly emitter = new EventEmitter<undefined>();
  readonly token = {
    isCancellationRequested: false,
    onCancellationRequested: this.emitter.event,
  };
  cancel(): void {
    this.token.isCancellationRequested = true;
    void this.emitter.fire(undefined);
  }
  dispose(): void {
    this.emitter.dispose();
  }
}

export class Uri {
  private constructor(readonly fsPath: string) {}
  static file(fsPath: string): Uri {
    return new Uri(fsPath);
  }
  toString(): string {
    return `file://${this.fsPath}`;
  }
}

export class Range {
  constructor(
    readonly startLine: number,
    readonly startCharacter: number,
    readonly endLine: number,
    readonly endCharacter: number,
  ) {}
}

export const QuickPickItemKind = { Separator: -1, Default: 0 } as const;
export const ProgressLocation = { SourceControl: 1, Window: 10, Notification: 15 } as const;
export const StatusBarAlignment = { Left: 1, Right: 2 } as const;

export interface StubStatusBarItem {
  name?: string;
  text: string;
  tooltip?: string;
  command?: string;
  visible: boolean;
}

export interface StubQuickPickItem {
  label: string;
  description?: string;
  detail?: string;
  kind?: number;
}

/** The script and the record of a test. */
export const stub = {
  calls: [] as Call[],
  settings: new Map<string, unknown>(),
  commands: new Map<string, (...args: unknown[]) => unknown>(),
  providers: [] as { type: string; provider: unknown }[],
  statusBarItems: [] as StubStatusBarItem[],
  output: [] as string[],
  outputShown: 0,
  terminated: new EventEmitter<unknown>(),
  workspaceFolders: undefined as { uri: Uri; name: string; index: number }[] | undefined,
  /** Answers showQuickPick: gets the items, returns the one picked (or undefined). */
  quickPick: (_items: readonly StubQuickPickItem[] | readonly string[]): unknown => {
    return undefined;
  },
  /** The button the user clicks on error/warning messages. */
  messageButton: undefined as string | undefined,
  /** Cancel the progress notification while the task runs. */
  cancelProgress: false,
  reset(): void {
    this.calls = [];
    this.settings.clear();
    this.commands.clear();
    this.providers = [];
    this.statusBarItems = [];
    this.output = [];
    this.outputShown = 0;
    this.terminated = new EventEmitter<unknown>();
    this.workspaceFolders = undefined;
    this.quickPick = () => undefined;
    this.messageButton = undefined;
    this.cancelProgress = false;
  },
  /** The calls to `api`, in order. */
  callsTo(api: string): unknown[][] {
    return this.calls.filter((call) => call.api === api).map((call) => call.args);
  },
};

function record(api: string, ...args: unknown[]): void {
  stub.calls.push({ api, args });
}

export const window = {
  showErrorMessage: (message: string, ...buttons: string[]): Promise<string | undefined> => {
    record('showErrorMessage', message, ...buttons);
    return Promise.resolve(stub.messageButton);
  },
  showWarningMessage: (message: string, ...buttons: string[]): Promise<string | undefined> => {
    record('showWarningMessage', message, ...buttons);
    return Promise.resolve(stub.messageButton);
  },
  showQuickPick: (items: readonly StubQuickPickItem[] | readonly string[], options?: unknown): Promise<unknown> => {
    record('showQuickPick', items, options);
    return Promise.resolve(stub.quickPick(items));
  },
  showWorkspaceFolderPick: (): Promise<unknown> => Promise.resolve(stub.workspaceFolders?.[0]),
  withProgress: async <T>(options: unknown, task: (progress: { report(value: { message?: string }): void }, token: CancellationTokenSource['token']) => Promise<T>): Promise<T> => {
    record('withProgress', options);
    const source = new CancellationTokenSource();
    const running = task({ report: (value) => { record('progress.report', value); } }, source.token);
    if (stub.cancelProgress) source.cancel();
    return running;
  },
  createStatusBarItem: (): StubStatusBarItem & { show(): void; hide(): void; dispose(): void } => {
    const item = {
      text: '',
      visible: false,
      show(): void {
        item.visible = true;
      },
      hide(): void {
        item.visible = false;
      },
      dispose(): void {
        item.visible = false;
      },
    };
    stub.statusBarItems.push(item);
    return item;
  },
  createOutputChannel: (name: string) => ({
    name,
    appendLine: (line: string): void => {
      stub.output.push(line);
    },
    append: (text: string): void => {
      stub.output.push(text);
    },
    show: (): void => {
      stub.outputShown += 1;
    },
    dispose: (): void => undefined,
  }),
  showTextDocument: (document: unknown, options?: unknown): Promise<unknown> => {
    record('showTextDocument', document, options);
    return Promise.resolve(undefined);
  },
};

export const workspace = {
  get workspaceFolders(): unknown {
    return stub.workspaceFolders;
  },
  getConfiguration: (section: string) => ({
    get: <T>(key: string, fallback?: T): T | undefined => {
      const full = `${section}.${key}`;
      return stub.settings.has(full) ? (stub.settings.get(full) as T) : fallback;
    },
  }),
  openTextDocument: (uri: Uri): Promise<unknown> => {
    record('openTextDocument', uri.fsPath);
    return Promise.resolve({ uri });
  },
  findFiles: (): Promise<Uri[]> => Promise.resolve([]),
  asRelativePath: (uri: Uri): string => uri.fsPath,
};

export const commands = {
  registerCommand: (command: string, callback: (...args: unknown[]) => unknown): { dispose(): void } => {
    stub.commands.set(command, callback);
    return { dispose: () => stub.commands.delete(command) };
  },
  executeCommand: (command: string, ...args: unknown[]): Promise<unknown> => {
    const callback = stub.commands.get(command);
    if (callback === undefined) return Promise.reject(new Error(`command ${command} is not registered`));
    return Promise.resolve(callback(...args));
  },
};

export const debug = {
  registerDebugConfigurationProvider: (type: string, provider: unknown): { dispose(): void } => {
    stub.providers.push({ type, provider });
    return { dispose: () => undefined };
  },
  onDidTerminateDebugSession: (listener: Listener<unknown>): { dispose(): void } => stub.terminated.event(listener),
};
