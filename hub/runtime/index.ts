/**
 * Ganglion's actor runtime: OTP-style processes, links, monitors, GenServer, Supervisor, DynamicSupervisor,
 * Registry, Agent, Task, Table and isolated (worker-thread) processes, with introspection and an injectable clock.
 * It depends on nothing else in the hub. See each module's doc comment for where Node's semantics differ from OTP.
 */
export { castAgent, getAgent, startAgent, updateAgent } from "./agent.ts";
export { type BackoffOptions, backoffDelay } from "./backoff.ts";
export { type Clock, getClock, ManualClock, RealClock, settle, type TimerHandle, useClock } from "./clock.ts";
export { watchedDeadlines } from "./deadlines.ts";
export { onRuntimeEvent, type RuntimeEvent, type RuntimeEventType } from "./events.ts";
export * as GenServer from "./gen-server.ts";
export {
  call,
  cast,
  DEFAULT_CALL_TIMEOUT_MS,
  From,
  type GenServerSpec,
  NoReply,
  noreply,
  Reply,
  reply,
  replyWith,
  type StartOptions,
  Stop,
  start as startServer,
  stop,
  stopServer,
} from "./gen-server.ts";
export { findNode, inspectTree, type TreeNode } from "./introspection.ts";
export {
  type IsolatedSelf,
  type IsolatedSpec,
  type IsolatedStartOptions,
  startIsolated,
} from "./isolated.ts";
export { Pid } from "./pid.ts";
export {
  Down,
  describeProcess,
  Exit,
  exit,
  isDown,
  isExit,
  type Match,
  makeRef,
  Process,
  processCount,
  type SpawnOptions,
  send,
  spawn,
  TIMEOUT,
} from "./process.ts";
export {
  AlreadyRegisteredError,
  CallError,
  CallTimeoutError,
  type ExitReason,
  formatReason,
  isCleanExit,
  NoProcError,
  ServerExitError,
  StartError,
} from "./reasons.ts";
export { describeRef, names, Registry, type ServerRef, type Via, via, whereis } from "./registry.ts";
export { runQueueLength } from "./scheduler.ts";
export {
  type ChildInfo,
  type ChildSpec,
  type ChildStartContext,
  type ChildStatus,
  countChildren,
  deleteChild,
  dynamicSupervisorChild,
  type RestartType,
  restartChild,
  type Shutdown,
  type Strategy,
  SupervisorError,
  type SupervisorSpec,
  type SupervisorStartOptions,
  startChild,
  startDynamicSupervisor,
  startSupervisor,
  stopSupervisor,
  supervisorChild,
  terminateChild,
  whichChildren,
} from "./supervisor.ts";
export { compareKeys, newTable, Table, TableDeletedError, type TableKey, type TableType } from "./table.ts";
export {
  awaitTask,
  startTask,
  startTaskSupervisor,
  supervisedTask,
  type Task,
  TaskExitError,
  TaskTimeoutError,
} from "./task.ts";
