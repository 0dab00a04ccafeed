/**
 * A live snapshot of a supervision tree (what Erlang's Observer shows and the dashboard draws).
 */
import { getClock } from "./clock.ts";
import type { Pid } from "./pid.ts";
import type { ChildStatus, Strategy, SupervisorState } from "./supervisor.ts";

/** One node of the tree, as in DESIGN.md's API shapes. */
export interface TreeNode {
  id: string;
  path: string;
  kind: "supervisor" | "worker";
  strategy?: Strategy;
  pid: string | null;
  status: ChildStatus;
  restarts: number;
  lastExit?: { reason: string; ts: number };
  /** The supervisor's restart budget: `recent` restarts used within the last `periodMs`. */
  intensity?: { max: number; periodMs: number; recent: number };
  children?: TreeNode[];
}

function supervisorStateOf(pid: Pid | null): SupervisorState | undefined {
  const behaviour = pid?.proc?.behaviour as SupervisorState | undefined;
  return behaviour?.kind === "supervisor" ? behaviour : undefined;
}

function describeSupervisor(state: SupervisorState, node: TreeNode): TreeNode {
  const now = getClock().now();
  node.kind = "supervisor";
  node.strategy = state.strategy;
  node.intensity = {
    max: state.intensity,
    periodMs: state.periodMs,
    recent: state.restartLog.filter((t) => t > now - state.periodMs).length,
  };
  node.children = state.children.map((child) => {
    const path = `${state.path}/${child.spec.id}`;
    const childNode: TreeNode = {
      id: child.spec.id,
      path,
      kind: child.spec.type ?? "worker",
      pid: child.pid?.toString() ?? null,
      status: child.status,
      restarts: child.restarts,
    };
    if (child.lastExit !== undefined) childNode.lastExit = child.lastExit;
    const sub = supervisorStateOf(child.pid);
    return sub === undefined ? childNode : describeSupervisor(sub, childNode);
  });
  return node;
}

/** Snapshots the tree under a supervisor; undefined if `pid` is not a live supervisor. */
export function inspectTree(pid: Pid): TreeNode | undefined {
  const state = supervisorStateOf(pid);
  if (state === undefined) return undefined;
  const id = state.path.split("/").pop() ?? state.path;
  return describeSupervisor(state, {
    id,
    path: state.path,
    kind: "supervisor",
    pid: pid.toString(),
    status: "running",
    restarts: 0,
  });
}

/** Finds the node at `path` in a snapshot. */
export function findNode(root: TreeNode, path: string): TreeNode | undefined {
  if (root.path === path) return root;
  for (const child of root.children ?? []) {
    if (path === child.path || path.startsWith(`${child.path}/`)) return findNode(child, path);
  }
  return undefined;
}
