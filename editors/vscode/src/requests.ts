// The one place that sends the sidecar's custom requests: one method per request, over any
// JSON-RPC endpoint (vscode-languageclient's LanguageClient in VS Code, a vscode-jsonrpc
// connection in the contract test, a transcript replayer in the unit tests).

import { randomUUID } from 'node:crypto';
import {
  ErrorCodes,
  Methods,
  type EndSessionResult,
  type ListTargetsParams,
  type ListTargetsResult,
  type PatchLaunchConfigParams,
  type PatchLaunchConfigResult,
} from './protocol';

/** A debug launch configuration: opaque JSON to the extension. */
export type LaunchConfig = Record<string, unknown>;

/** `$/progress` values (LSP work done progress, not a mirrord type). */
export interface ProgressValue {
  kind: 'begin' | 'report' | 'end';
  title?: string;
  message?: string;
  percentage?: number;
  cancellable?: boolean;
}

export interface Disposable {
  dispose(): unknown;
}

/** A cancellation token (VS Code's and vscode-jsonrpc's both fit). */
export interface CancellationToken {
  readonly isCancellationRequested: boolean;
  onCancellationRequested(listener: () => unknown): Disposable;
}

/** What the extension needs of a JSON-RPC connection to the sidecar. */
export interface RpcEndpoint {
  /** Sends a request; rejects with an error carrying `code`, `message` and `data` on failure. */
  request(method: string, params: unknown, token?: CancellationToken): Promise<unknown>;
  /** Calls `handler` with the values of `$/progress` notifications for `token`. */
  onProgress(token: string, handler: (value: ProgressValue) => void): Disposable;
}

/** A failed request, as the sidecar answered it. */
export class SidecarError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data: unknown,
  ) {
    super(message);
    this.name = 'SidecarError';
  }

  /** Turns anything a request rejected with into a SidecarError. */
  static from(error: unknown): SidecarError {
    if (error instanceof SidecarError) return error;
    if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'number') {
      const message = 'message' in error && typeof error.message === 'string' ? error.message : 'unknown error';
      return new SidecarError(error.code, message, 'data' in error ? error.data : undefined);
    }
    return new SidecarError(0, error instanceof Error ? error.message : String(error), undefined);
  }

  get cancelled(): boolean {
    return this.code === ErrorCodes.requestCancelled;
  }
}

/** The custom requests, typed. */
export class SidecarRequests {
  constructor(private readonly endpoint: RpcEndpoint) {}

  private async send<T>(method: string, params: unknown, token?: CancellationToken): Promise<T> {
    try {
      return (await this.endpoint.request(method, params, token)) as T;
    } catch (error) {
      throw SidecarError.from(error);
    }
  }

  schema(): Promise<unknown> {
    return this.send(Methods.schema, undefined);
  }

  listTargets(params: ListTargetsParams): Promise<ListTargetsResult> {
    return this.send(Methods.listTargets, params);
  }

  /**
   * Starts a session for `params.launchConfig`, reporting the sidecar's `$/progress` to
   * `onProgress`. Cancelling `token` cancels the request (the sidecar ends the session it was
   * starting).
   */
  async patchLaunchConfig(
    params: Omit<PatchLaunchConfigParams, 'workDoneToken'>,
    onProgress: (value: ProgressValue) => void,
    token?: CancellationToken,
  ): Promise<PatchLaunchConfigResult> {
    const workDoneToken = `mirrord-${randomUUID()}`;
    const subscription = this.endpoint.onProgress(workDoneToken, onProgress);
    try {
      return await this.send(Methods.patchLaunchConfig, { ...params, workDoneToken }, token);
    } finally {
      subscription.dispose();
    }
  }

  endSession(sessionId: string): Promise<EndSessionResult> {
    return this.send(Methods.endSession, { sessionId });
  }
}
