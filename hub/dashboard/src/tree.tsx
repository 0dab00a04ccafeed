/**
 * The live supervision tree as a WAI-ARIA tree: one tab stop (roving tabindex), arrow keys move and open/close,
 * Enter/Space toggles, Home/End jump. Every node shows its status as colour and as text, its restarts, its
 * supervisor's restart budget and its last exit; a restart seen live flashes the row.
 */
import type { TargetedKeyboardEvent, TargetedMouseEvent } from "preact";
import { useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { ago, duration } from "./format.ts";
import { memo } from "./memo.ts";
import { FLASH_MS, type Flash, findNode, parentPath } from "./state.ts";
import type { TreeNode } from "./types.ts";
import { Windowed } from "./windowed.tsx";

interface Props {
  tree: TreeNode | null;
  flashes: Record<string, Flash>;
  now: number;
}

/** A visible row: the node and where it sits (aria-level, aria-posinset of aria-setsize). */
interface Item {
  node: TreeNode;
  level: number;
  pos: number;
  size: number;
}

const NONE: ReadonlySet<string> = new Set();

/** Past this many visible rows only the rows in view are rendered. */
export const TREE_WINDOW_FROM = 300;
const ROW_PX = 24;

/** The rows a user can see and reach with the keyboard, in screen order, skipping collapsed subtrees. */
function visible(
  node: TreeNode,
  collapsed: ReadonlySet<string>,
  level = 1,
  pos = 1,
  size = 1,
  out: Item[] = [],
): Item[] {
  out.push({ node, level, pos, size });
  const children = node.children;
  if (children && !collapsed.has(node.path)) {
    for (let i = 0; i < children.length; i++)
      visible(children[i]!, collapsed, level + 1, i + 1, children.length, out);
  }
  return out;
}

/** Sensors under a device start collapsed once the fleet is large, so the first screen stays readable. */
function initiallyCollapsed(tree: TreeNode | null): Set<string> {
  const set = new Set<string>();
  const fleet = tree?.children?.find((c) => c.id === "fleet");
  if (fleet?.children && fleet.children.length > 20) for (const d of fleet.children) set.add(d.path);
  return set;
}

/**
 * The tree renders as a flat list of treeitems carrying aria-level/posinset/setsize (the WAI-ARIA pattern for
 * trees that are not nested in the DOM), which is what lets a 1,000-device tree render only the rows in view.
 * Rows are memoised: a node update re-renders the rows whose node changed, not the tree.
 */
export const SupervisionTree = memo(function SupervisionTree({ tree, flashes, now }: Props) {
  // The first tree decides what starts collapsed (the page mounts before the snapshot arrives); then the user does.
  const initial = useRef<Set<string> | null>(null);
  if (initial.current === null && tree !== null) initial.current = initiallyCollapsed(tree);
  const [chosen, setCollapsed] = useState<Set<string> | null>(null);
  const collapsed = chosen ?? initial.current ?? NONE;
  const [focused, setFocused] = useState<string>("hub");
  const [reveal, setReveal] = useState<{ index: number; seq: number } | undefined>(undefined);
  const focusNext = useRef(false);
  const root = useRef<HTMLDivElement>(null);
  const items = useMemo(() => (tree === null ? [] : visible(tree, collapsed)), [tree, collapsed]);
  const focusIndex = Math.max(
    0,
    items.findIndex((n) => n.node.path === focused),
  );
  const focusPath = items[focusIndex]?.node.path ?? "hub";

  // A keyboard move focuses its row once rendered (it may have been out of the window until now).
  useLayoutEffect(() => {
    if (!focusNext.current) return;
    focusNext.current = false;
    root.current?.querySelector<HTMLElement>(`[data-path="${CSS.escape(focusPath)}"]`)?.focus();
  });

  if (tree === null) return <p class="muted">Waiting for the hub's tree…</p>;

  const toggle = (path: string, open?: boolean) => {
    setCollapsed((prev) => {
      const next = new Set(prev ?? initial.current ?? NONE);
      const isOpen = !next.has(path);
      if (open ?? !isOpen) next.delete(path);
      else next.add(path);
      return next;
    });
  };
  const moveTo = (index: number) => {
    const item = items[index];
    if (item === undefined) return;
    focusNext.current = true;
    setFocused(item.node.path);
    setReveal((r) => ({ index, seq: (r?.seq ?? 0) + 1 }));
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
    const index = focusIndex;
    const item = items[index];
    if (item === undefined) return;
    const node = item.node;
    const hasChildren = (node.children?.length ?? 0) > 0;
    const open = hasChildren && !collapsed.has(node.path);
    let handled = true;
    switch (e.key) {
      case "ArrowDown":
        moveTo(index + 1);
        break;
      case "ArrowUp":
        moveTo(index - 1);
        break;
      case "ArrowRight":
        if (hasChildren && !open) toggle(node.path, true);
        else if (open) moveTo(index + 1);
        break;
      case "ArrowLeft":
        if (open) toggle(node.path, false);
        else if (parentPath(node.path) !== "") {
          const parent = parentPath(node.path);
          moveTo(items.findIndex((n) => n.node.path === parent));
        }
        break;
      case "Enter":
      case " ":
        if (hasChildren) toggle(node.path);
        break;
      case "Home":
        moveTo(0);
        break;
      case "End":
        moveTo(items.length - 1);
        break;
      case "PageDown":
        moveTo(Math.min(items.length - 1, index + 20));
        break;
      case "PageUp":
        moveTo(Math.max(0, index - 20));
        break;
      default:
        handled = false;
    }
    if (handled) e.preventDefault();
  };

  return (
    <Windowed
      items={items}
      windowed={items.length > TREE_WINDOW_FROM}
      keyOf={(i) => i.node.path}
      estimate={() => ROW_PX}
      pin={focusIndex}
      reveal={reveal}
      containerRef={root}
      container={{
        class: "tree",
        role: "tree",
        "aria-label": "Supervision tree",
        onKeyDown,
        onClick,
      }}
      renderRow={(item) => (
        <Row
          node={item.node}
          level={item.level}
          pos={item.pos}
          size={item.size}
          open={(item.node.children?.length ?? 0) > 0 ? !collapsed.has(item.node.path) : undefined}
          focused={focusPath === item.node.path}
          flash={flashes[item.node.path]}
          // Only a row that shows "(3 s ago)" needs the clock: the others do not render again every second.
          now={item.node.lastExit ? now : 0}
          onFocus={setFocused}
        />
      )}
    />
  );
});

interface RowProps {
  node: TreeNode;
  level: number;
  pos: number;
  size: number;
  /** Expanded or not; undefined for a leaf. */
  open: boolean | undefined;
  focused: boolean;
  flash: Flash | undefined;
  now: number;
  onFocus(path: string): void;
}

const Row = memo(function Row({ node, level, pos, size, open, focused, flash, now, onFocus }: RowProps) {
  // Only while it is fresh: a row mounted again later (a subtree re-opened) must not replay an old flash. Two
  // identical animations alternate so that a second restart in a row restarts the animation.
  const flashClass =
    flash === undefined || Date.now() - flash.at > FLASH_MS ? "" : flash.count % 2 ? " flash-a" : " flash-b";
  const budget = node.intensity;
  return (
    <div
      role="treeitem"
      aria-level={level}
      aria-posinset={pos}
      aria-setsize={size}
      aria-expanded={open}
      aria-selected={focused}
      tabIndex={focused ? 0 : -1}
      data-path={node.path}
      data-status={node.status}
      data-restarts={node.restarts}
      onFocus={(e) => {
        if (e.target === e.currentTarget) onFocus(node.path);
      }}
    >
      <div
        class={`row status-${node.status}${flashClass}`}
        style={{ paddingLeft: `${(level - 1) * 18 + 4}px` }}
      >
        <span class="twisty" aria-hidden="true">
          {open === undefined ? "" : open ? "▾" : "▸"}
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
          <span
            class="last-exit"
            title={`${node.lastExit.reason} (${new Date(node.lastExit.ts).toISOString()})`}
          >
            last exit: {node.lastExit.reason} ({ago(node.lastExit.ts, now)})
          </span>
        )}
      </div>
    </div>
  );
});
