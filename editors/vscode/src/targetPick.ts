// The items of the target quick-pick, rendered from a `mirrord/listTargets` answer: the sidecar's
// groups in its order under its titles (recently used first, "Local processes…" when a cluster is
// reachable, "No target" last), plus the two entries that are the editor's own: "use the config's
// target" and "switch namespace". Rendering only: the sidecar lists, orders and remembers.

import type { ListTargetsResult, TargetInfo } from './protocol';

/** What picking an item means. */
export type TargetChoice =
  | { kind: 'target'; path: string }
  | { kind: 'more'; kinds: string[] }
  | { kind: 'switchNamespace' }
  | { kind: 'fromConfig' };

/** A quick-pick item, independent of VS Code (`separator` items become separators). */
export interface PickItem {
  label: string;
  description?: string;
  detail?: string;
  separator?: true;
  choice?: TargetChoice;
}

function targetItem(target: TargetInfo): PickItem {
  const item: PickItem = { label: target.path, detail: target.detail, choice: { kind: 'target', path: target.path } };
  const notes = [target.namespace ?? undefined, target.available ? undefined : 'not available'].filter((n) => n !== undefined);
  if (notes.length > 0) item.description = notes.join(', ');
  return item;
}

/** `offerConfigTarget`: add "use the config's target" (the Select Target command clears its choice with it). */
export function targetPickItems(listed: ListTargetsResult, offerConfigTarget = false): PickItem[] {
  const items: PickItem[] = [];
  for (const group of listed.groups) {
    items.push({ label: group.title, separator: true });
    if (group.more !== undefined && group.more !== null) {
      items.push({ label: `$(list-unordered) ${group.more.label}`, detail: group.more.detail, choice: { kind: 'more', kinds: group.more.kinds } });
    }
    items.push(...group.targets.map(targetItem));
  }
  if (offerConfigTarget || listed.namespaces.length > 0) items.push({ label: '', separator: true });
  if (offerConfigTarget) {
    items.push({ label: "$(settings-gear) Use the config's target", choice: { kind: 'fromConfig' } });
  }
  if (listed.namespaces.length > 0) {
    const current = listed.currentNamespace === undefined || listed.currentNamespace === null ? '' : ` (now ${listed.currentNamespace})`;
    items.push({ label: `$(arrow-swap) Switch namespace…${current}`, choice: { kind: 'switchNamespace' } });
  }
  return items;
}
