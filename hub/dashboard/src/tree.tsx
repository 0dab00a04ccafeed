/**
 * The live supervision tree as a WAI-ARIA tree: one tab stop (roving tabindex), arrow keys move and open/close,
 * Enter/Space toggles, Home/End jump. Every node shows its status as colour and as text, its restarts, its
 * supervisor's restart budget and its last exit; a restart seen live flashes the row.
 */
import type { TargetedKeyboardEvent, TargetedMouseEvent } from "preact";
import { useMemo, useRef, useState } from "preact/hooks";
import { ago, duration } from "./format.ts";
import { FLASH_MS, type Flash, findNode, parentPath } from "./state.ts";
import type { TreeNode } from "./types.ts";

interface Props {
  tree: TreeNode | null;
  flashes: Record<string, Flash>;
  now: number;
}

/** The nodes a user can reach with the keyboard, in screen order, skipping collapsed subtrees. */
function visible(node: TreeNode, collapsed: ReadonlySet<string>, out: TreeNode[] = []): TreeNode[] {
  out.push(node);
  if (node.children && !collapsed.has(node.path)) for (const c of node.children) visible(c, collapsed, out);
  return out;
}

/** Sensors under a device start collapsed once the fleet is large, so the first screen stays readable. */
function initiallyCollapsed(tree: TreeNode | null): Set<string> {
  const set = new Set<string>();
  const fleet = tree?.children?.find((c) => c.id === "fleet");
  if (fleet?.children && fleet.children.length > 20) for (const d of fleet.children) set.add(d.path);
  return set;
}

export function SupervisionTree({ tree, flashes, now }: Props) {
  const [collapsed, setCollapsed] = useState<Set<string>>(() => initiallyCollapsed(tree));
  const [focused, setFocused] = useState<string>("hub");
  const root = useRef<HTMLDivElement>(null);
  const items = useMemo(() => (tree === null ? [] : visible(tree, collapsed)), [tree, collapsed]);

  if (tree === null) return <p class="muted">Waiting for the hub's tree…</p>;
  const focusPath = items.some((n) => n.path === focused) ? focused : tree.path;

  const toggle = (path: string, open?: boolean) => {
    setCollapsed((prev) => {
      const next = new Set(prev);
      const isOpen = !next.has(path);
      if (open ?? !isOpen) next.delete(path);
      else next.add(path);
      return next;
    });
  };
  const moveTo = (path: string) => {
    setFocused(path);
    root.current?.querySelector<HTMLElement>(`[data-path="${CSS.escape(path)}"]`)?.focus();
  };

  // One click handler for the whole tree: a row click focuses its item and opens or closes it.
  const onClick = (e: TargetedMouseEvent<HTMLDivElement>) => {
    const item = (e.target as Element).closest<HTMLElement>("[role=treeitem]");
    const path = item?.dataset.path;
    if (path === undefined) return;
    setFocused(path);
    if (findNode(tree, path)?.children?.length) toggle(path);
  };

  const onKeyDown = (e: TargetedKeyboardEvent<HTMLDivElement>) => {
    const index = items.findIndex((n) => n.path === focusPath);
    const node = items[index];
    if (node === undefined) return;
    const hasChildren = (node.children?.length ?? 0) > 0;
    const open = hasChildren && !collapsed.has(node.path);
    let handled = true;
    switch (e.key) {
      case "ArrowDown":
        if (index + 1 < items.length) moveTo(items[index + 1]!.path);
        break;
      case "ArrowUp":
        if (index > 0) moveTo(items[index - 1]!.path);
        break;
      case "ArrowRight":
        if (hasChildren && !open) toggle(node.path, true);
        else if (open) moveTo(node.children![0]!.path);
        break;
      case "ArrowLeft":
        if (open) toggle(node.path, false);
        else if (parentPath(node.path) !== "") moveTo(parentPath(node.path));
        break;
      case "Enter":
      case " ":
        if (hasChildren) toggle(node.path);
        break;
      case "Home":
        moveTo(items[0]!.path);
        break;
      case "End":
        moveTo(items[items.length - 1]!.path);
        break;
      default:
        handled = false;
    }
    if (handled) e.preventDefault();
  };

  return (
    <div
      class="tree"
      role="tree"
      aria-label="Supervision tree"
      ref={root}
      onKeyDown={onKeyDown}
      onClick={onClick}
    >
      <Node
        node={tree}
        level={1}
        collapsed={collapsed}
        focused={focusPath}
        flashes={flashes}
        now={now}
        onFocus={setFocused}
      />
    </div>
  );
}

interface NodeProps {
  node: TreeNode;
  level: number;
  collapsed: ReadonlySet<string>;
  focused: string;
  flashes: Record<string, Flash>;
  now: number;
  onFocus(path: string): void;
}

function Node({ node, level, collapsed, focused, flashes, now, onFocus }: NodeProps) {
  const hasChildren = (node.children?.length ?? 0) > 0;
  const open = hasChildren && !collapsed.has(node.path);
  // Only while it is fresh: a row mounted again later (a subtree re-opened) must not replay an old flash. Two
  // identical animations alternate so that a second restart in a row restarts the animation.
  const flash = flashes[node.path];
  const flashClass =
    flash === undefined || Date.now() - flash.at > FLASH_MS ? "" : flash.count % 2 ? " flash-a" : " flash-b";
  const budget = node.intensity;
  return (
    <div
      role="treeitem"
      aria-level={level}
      aria-expanded={hasChildren ? open : undefined}
      aria-selected={focused === node.path}
      tabIndex={focused === node.path ? 0 : -1}
      data-path={node.path}
      data-status={node.status}
      data-restarts={node.restarts}
      onFocus={(e) => {
        if (e.target === e.currentTarget) onFocus(node.path);
      }}
    >
      <div class={`row status-${node.status}${flashClass}`}>
        <span class="twisty" aria-hidden="true">
          {hasChildren ? (open ? "▾" : "▸") : ""}
        </span>
        <span class={`badge ${node.status}`}>{node.status}</span>
        <span class="node-id">{node.id}</span>
        <span class="node-kind">
          {node.kind === "supervisor" ? (node.strategy ?? "supervisor") : "worker"}
        </span>
        <span class={`restarts${node.restarts > 0 ? " some" : ""}`} title="restarts">
          ↻ {node.restarts} {node.restarts === 1 ? "restart" : "restarts"}
        </span>
        {budget && (
          <span class={`budget${budget.recent >= budget.max ? " spent" : ""}`} title="restart budget used">
            budget {budget.recent} of {budget.max} in {duration(budget.periodMs)}
          </span>
        )}
        {node.lastExit && (
          <span class="last-exit" title={new Date(node.lastExit.ts).toISOString()}>
            last exit: {node.lastExit.reason} ({ago(node.lastExit.ts, now)})
          </span>
        )}
      </div>
      {open && (
        // biome-ignore lint/a11y/useSemanticElements: a tree's group of items, not a fieldset
        <div role="group">
          {node.children!.map((c) => (
            <Node
              key={c.path}
              node={c}
              level={level + 1}
              collapsed={collapsed}
              focused={focused}
              flashes={flashes}
              now={now}
              onFocus={onFocus}
            />
          ))}
        </div>
      )}
    </div>
  );
}
