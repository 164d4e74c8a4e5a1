// The items of the target quick-pick, built from a `mirrord/listTargets` answer: grouped by kind
// in the sidecar's order, recently picked targets first, "switch namespace" when the sidecar
// offers namespaces, and "no target" last. Rendering only: the sidecar lists the targets.

import type { ListTargetsResult, TargetInfo } from './protocol';

/** What picking an item means. */
export type TargetChoice = { kind: 'target'; path: string } | { kind: 'switchNamespace' } | { kind: 'fromConfig' };

/** A quick-pick item, independent of VS Code (`separator` items become separators). */
export interface PickItem {
  label: string;
  description?: string;
  detail?: string;
  separator?: true;
  choice?: TargetChoice;
}

/** The path of the "no target" entry. */
export const TARGETLESS = 'targetless';

const KIND_TITLES: Record<string, string> = {
  sandbox: 'sandbox pods',
  pid: 'local processes',
  pod: 'pods',
  deployment: 'deployments',
  rollout: 'rollouts',
  statefulset: 'stateful sets',
};

function targetItem(target: TargetInfo): PickItem {
  const item: PickItem = { label: target.path, detail: target.detail, choice: { kind: 'target', path: target.path } };
  const notes = [target.namespace, target.available ? undefined : 'not available'].filter((n) => n !== undefined);
  if (notes.length > 0) item.description = notes.join(', ');
  return item;
}

/** `offerConfigTarget`: add "use the config's target" (the Select Target command clears its choice with it). */
export function targetPickItems(listed: ListTargetsResult, recentTargets: readonly string[], offerConfigTarget = false): PickItem[] {
  const items: PickItem[] = [];
  const byPath = new Map(listed.targets.map((target) => [target.path, target]));
  const recent = recentTargets.filter((path) => path !== TARGETLESS && byPath.has(path));
  if (recent.length > 0) {
    items.push({ label: 'recently used', separator: true });
    for (const path of recent) {
      const target = byPath.get(path);
      if (target !== undefined) items.push(targetItem(target));
    }
  }
  const kinds = [...new Set(listed.targets.map((target) => target.kind))].filter((kind) => kind !== TARGETLESS);
  for (const kind of kinds) {
    const targets = listed.targets.filter((target) => target.kind === kind && !recent.includes(target.path));
    if (targets.length === 0) continue;
    items.push({ label: KIND_TITLES[kind] ?? kind, separator: true });
    items.push(...targets.map(targetItem));
  }
  items.push({ label: '', separator: true });
  if (offerConfigTarget) {
    items.push({ label: "$(settings-gear) Use the config's target", choice: { kind: 'fromConfig' } });
  }
  if (listed.namespaces.length > 0) {
    const current = listed.currentNamespace === undefined ? '' : ` (now ${listed.currentNamespace})`;
    items.push({ label: `$(arrow-swap) Switch namespace…${current}`, choice: { kind: 'switchNamespace' } });
  }
  const targetless = byPath.get(TARGETLESS);
  items.push({
    label: '$(circle-slash) No target',
    detail: targetless?.detail ?? 'outgoing traffic and DNS only',
    choice: { kind: 'target', path: TARGETLESS },
  });
  return items;
}
