// The shape of infra/topology.json (the export of shared/platform/src/topology.rs), and its
// loader. The stacks are built from this file alone: a function, route, rule, stream,
// schedule, table or flow added to the Rust topology shows up in the next synth, in the
// stack its entry names (`stack`): the platform's, or a flow's.

import * as fs from 'fs';

/** The stack of the platform's own resources (the bus, the API, Cognito, shared tables and functions); deployed first. */
export const PLATFORM_STACK = 'platform';

export interface Permission {
  readonly actions: string[];
  /**
   * `table/T`, `table/T/index/I`, `table/T/stream`, `event-bus`, `failure-queue/F`,
   * `signing-key/S` (stack S's signing key), `*`, or `not:sns-topic` (every SNS target
   * except a topic, i.e. direct SMS).
   */
  readonly resource: string;
  /**
   * The stack whose template writes the statement: the function's own, except for a
   * platform function's grant on a flow's table (the projector reading a flow's stream, the
   * sweeper its outbox), which the flow's stack attaches to the platform function's role.
   */
  readonly stack: string;
}

export type Trigger = 'http' | 'events' | 'stream' | 'schedule';

export interface FunctionSpec {
  readonly name: string;
  readonly stack: string;
  /** The binary (`functions/<bootstrap>/`) that serves it, picked by its handler. */
  readonly bootstrap: string;
  readonly description: string;
  readonly trigger: Trigger;
  /** The expression of a `schedule` function; its rules are the topology's `schedules`. */
  readonly schedule: string | null;
  readonly memory_mb: number;
  readonly timeout_s: number;
  /**
   * Variable → `table/T`, `event-bus` or `signing-key/S`: exactly the tables it uses, the bus
   * if it publishes, its stack's signing key if it seals or verifies documents.
   */
  readonly environment: Record<string, string>;
  readonly permissions: Permission[];
}

export interface RouteSpec {
  readonly method: string;
  readonly path: string;
  readonly function: string;
  readonly stack: string;
  readonly public: boolean;
}

export interface RuleSpec {
  readonly name: string;
  readonly target: string;
  readonly stack: string;
  /** An EventBridge pattern in its JSON form (`source`, `detail-type`, ...). */
  readonly pattern: Record<string, unknown>;
}

/** The stream mappings one stack holds: `function` consumes the streams of `tables` (tables of `stack`). */
export interface StreamSpec {
  readonly function: string;
  readonly stack: string;
  readonly tables: string[];
}

/** A schedule rule in `stack` invoking `function` with a constant input naming `tables` (tables of `stack`). */
export interface ScheduleSpec {
  readonly function: string;
  readonly expression: string;
  readonly stack: string;
  readonly tables: string[];
}

export interface IndexSpec {
  readonly name: string;
  readonly hash: string;
  readonly range: string | null;
}

export interface TableSpec {
  readonly name: string;
  readonly stack: string;
  readonly key: string;
  readonly stream: string | null;
  readonly ttl: string | null;
  readonly indexes: IndexSpec[];
}

/** The signing key of a stack whose functions seal documents: an asymmetric KMS key. */
export interface SigningKeySpec {
  readonly stack: string;
  /** `signing-key/<stack>`, as grants and environments name it. */
  readonly resource: string;
  readonly key_spec: string;
  readonly key_usage: string;
  readonly algorithm: string;
}

export interface Topology {
  /** Every stack, each once: the flows', then the platform's (last). */
  readonly stacks: string[];
  readonly roles: string[];
  readonly functions: FunctionSpec[];
  readonly routes: RouteSpec[];
  readonly rules: RuleSpec[];
  readonly streams: StreamSpec[];
  readonly schedules: ScheduleSpec[];
  readonly tables: TableSpec[];
  /** One per stack whose functions seal documents (`signing_stacks`). */
  readonly signing_keys: SigningKeySpec[];
}

/** `checkup-book` → `CheckupBook`, for readable logical IDs and stack construct IDs. */
export function pascal(name: string): string {
  return name
    .split(/[^A-Za-z0-9]+/)
    .filter((part) => part.length > 0)
    .map((part) => part[0].toUpperCase() + part.slice(1))
    .join('');
}

/** The table a grant's resource is on (`table/T`, `table/T/index/I`, `table/T/stream`), if any. */
export function tableOfResource(resource: string): string | undefined {
  return /^table\/([^/]+)(\/.*)?$/.exec(resource)?.[1];
}

const TRIGGERS: readonly Trigger[] = ['http', 'events', 'stream', 'schedule'];
const STREAM_VIEWS: readonly string[] = ['NEW_IMAGE', 'OLD_IMAGE', 'NEW_AND_OLD_IMAGES', 'KEYS_ONLY'];
const KEBAB = /^[a-z][a-z0-9-]*$/;

/** Reads and checks the topology; every inconsistency fails the synth with its reason. */
export function loadTopology(file: string): Topology {
  if (!fs.existsSync(file)) {
    throw new Error(`topology not found at ${file}`);
  }
  const topology = JSON.parse(fs.readFileSync(file, 'utf8')) as Topology;
  const problems: string[] = [];
  for (const list of ['stacks', 'roles', 'functions', 'routes', 'rules', 'streams', 'schedules', 'tables', 'signing_keys'] as const) {
    if (!Array.isArray(topology[list])) problems.push(`no "${list}" list (regenerate infra/topology.json)`);
  }
  if (problems.length > 0) throw new Error(`${file} is inconsistent:\n  ${problems.join('\n  ')}`);

  // ---- Stacks: the flows', then the platform's -----------------------------------------------
  const stacks = new Set<string>();
  for (const s of topology.stacks) {
    if (stacks.has(s)) problems.push(`stack ${s} is listed twice`);
    if (!KEBAB.test(s)) problems.push(`stack name ${s} is not kebab-case`);
    stacks.add(s);
  }
  if (topology.stacks[topology.stacks.length - 1] !== PLATFORM_STACK) {
    problems.push(`stacks ${JSON.stringify(topology.stacks)}: the platform's (${PLATFORM_STACK}) is not last`);
  }
  const inStack = (what: string, stack: string | undefined) => {
    if (stack === undefined || !stacks.has(stack)) problems.push(`${what}: stack ${stack} is not in "stacks"`);
  };

  // ---- Tables and functions --------------------------------------------------------------
  const tables = new Map<string, TableSpec>();
  for (const t of topology.tables) {
    if (tables.has(t.name)) problems.push(`table ${t.name} is declared twice`);
    tables.set(t.name, t);
    inStack(`table ${t.name}`, t.stack);
    if (t.stream && !STREAM_VIEWS.includes(t.stream)) problems.push(`table ${t.name}: unknown stream view ${t.stream}`);
  }
  const stackOfTable = (name: string) => tables.get(name)?.stack;
  const signingKeys = new Set<string>();
  for (const k of topology.signing_keys) {
    inStack(`signing key ${k.resource}`, k.stack);
    if (signingKeys.has(k.stack)) problems.push(`the signing key of stack ${k.stack} is declared twice`);
    signingKeys.add(k.stack);
    if (k.resource !== `signing-key/${k.stack}`) problems.push(`signing key ${k.resource}: expected signing-key/${k.stack}`);
    if (k.key_spec !== 'ECC_NIST_P256' || k.key_usage !== 'SIGN_VERIFY') {
      problems.push(`signing key of stack ${k.stack}: ${k.key_spec}/${k.key_usage} is not a P-256 signing key`);
    }
  }
  /** A signing key a function of stack `from` uses: its own stack's, declared. */
  const ownKey = (what: string, from: string, resource: string) => {
    const key = /^signing-key\/(.+)$/.exec(resource);
    if (key && (key[1] !== from || !signingKeys.has(key[1]))) problems.push(`${what}: not a signing key of its own stack (${from})`);
    return key !== null;
  };

  const functions = new Map<string, FunctionSpec>();
  for (const f of topology.functions) {
    if (functions.has(f.name)) problems.push(`function ${f.name} is declared twice`);
    functions.set(f.name, f);
  }
  const stackOfFunction = (name: string) => functions.get(name)?.stack;

  /** A stack can use its own resources and the platform's (imported); no other stack's. */
  const reachable = (what: string, from: string, home: string | undefined) => {
    if (home !== undefined && home !== from && home !== PLATFORM_STACK) {
      problems.push(`${what}: in stack ${home}, which stack ${from} cannot refer to (only to its own and the platform's)`);
    }
  };

  for (const f of topology.functions) {
    inStack(`function ${f.name}`, f.stack);
    if (!KEBAB.test(f.name)) problems.push(`function name ${f.name} is not kebab-case`);
    if (!KEBAB.test(f.bootstrap ?? '')) problems.push(`function ${f.name}: no bootstrap`);
    if (!TRIGGERS.includes(f.trigger)) problems.push(`function ${f.name}: unknown trigger ${f.trigger}`);
    if (f.trigger === 'schedule' && !f.schedule) problems.push(`function ${f.name}: schedule trigger without a schedule`);
    if (f.trigger !== 'schedule' && f.schedule) problems.push(`function ${f.name}: a schedule on a ${f.trigger} function`);
    for (const [name, value] of Object.entries(f.environment)) {
      const table = /^table\/([^/]+)$/.exec(value);
      if (ownKey(`function ${f.name}: ${name}=${value}`, f.stack, value)) continue;
      if (table ? !tables.has(table[1]) : value !== 'event-bus') {
        problems.push(`function ${f.name}: ${name}=${value} names no table, the bus or a signing key`);
      } else if (table) {
        reachable(`function ${f.name}: ${name}=${value}`, f.stack, stackOfTable(table[1]));
      }
    }
    for (const p of f.permissions) {
      const what = `function ${f.name}, grant on ${p.resource}`;
      inStack(what, p.stack);
      const table = tableOfResource(p.resource);
      if (table !== undefined && !tables.has(table)) problems.push(`${what}: no table ${table}`);
      ownKey(what, f.stack, p.resource);
      const queue = /^failure-queue\/(.+)$/.exec(p.resource);
      if (queue && queue[1] !== f.name) problems.push(`${what}: a grant on another function's failure queue`);
      if (p.stack !== f.stack) {
        // Only the platform's functions have grants written elsewhere: a flow's stack, deployed
        // after the platform's, attaches its tables to the platform function's role.
        if (f.stack !== PLATFORM_STACK) {
          problems.push(`${what}: written in stack ${p.stack}, but a flow function's grants are in its own stack (${f.stack})`);
        } else if (table === undefined || stackOfTable(table) !== p.stack) {
          problems.push(`${what}: written in stack ${p.stack}, which holds no table of it`);
        }
      } else if (table !== undefined) {
        reachable(what, p.stack, stackOfTable(table));
      }
    }
  }

  // ---- Routes, rules, streams, schedules -------------------------------------------------------
  const routeKeys = new Set<string>();
  for (const r of topology.routes) {
    const what = `route ${r.method} ${r.path}`;
    inStack(what, r.stack);
    if (routeKeys.has(`${r.method} ${r.path}`)) problems.push(`${what} is declared twice`);
    routeKeys.add(`${r.method} ${r.path}`);
    if (!functions.has(r.function)) problems.push(`${what}: no function ${r.function}`);
    else if (stackOfFunction(r.function) !== r.stack) problems.push(`${what}: in stack ${r.stack}, its function ${r.function} in ${stackOfFunction(r.function)}`);
  }
  const ruleNames = new Set<string>();
  for (const r of topology.rules) {
    inStack(`rule ${r.name}`, r.stack);
    if (ruleNames.has(r.name)) problems.push(`rule ${r.name} is declared twice`);
    ruleNames.add(r.name);
    if (!functions.has(r.target)) problems.push(`rule ${r.name}: no function ${r.target}`);
    // Its dead-letter queue and rollback alarms are the consumer's: in the consumer's stack.
    else if (stackOfFunction(r.target) !== r.stack) problems.push(`rule ${r.name}: in stack ${r.stack}, its target ${r.target} in ${stackOfFunction(r.target)}`);
  }
  const streamKeys = new Set<string>();
  for (const s of topology.streams) {
    const what = `streams of ${s.function} in stack ${s.stack}`;
    inStack(what, s.stack);
    if (streamKeys.has(`${s.function} ${s.stack}`)) problems.push(`${what} are declared twice`);
    streamKeys.add(`${s.function} ${s.stack}`);
    if (!functions.has(s.function)) problems.push(`${what}: no function ${s.function}`);
    else reachable(what, s.stack, stackOfFunction(s.function));
    for (const t of s.tables) {
      const table = tables.get(t);
      if (!table) problems.push(`${what}: no table ${t}`);
      else if (!table.stream) problems.push(`${what}: table ${t} has no stream`);
      else if (table.stack !== s.stack) problems.push(`${what}: table ${t} is in stack ${table.stack}`);
    }
  }
  const scheduleKeys = new Set<string>();
  for (const s of topology.schedules) {
    const what = `schedule of ${s.function} in stack ${s.stack}`;
    inStack(what, s.stack);
    if (scheduleKeys.has(`${s.function} ${s.stack}`)) problems.push(`${what} is declared twice`);
    scheduleKeys.add(`${s.function} ${s.stack}`);
    const f = functions.get(s.function);
    if (!f) problems.push(`${what}: no function ${s.function}`);
    else {
      reachable(what, s.stack, f.stack);
      if (f.trigger !== 'schedule') problems.push(`${what}: ${s.function} is a ${f.trigger} function`);
      else if (f.schedule !== s.expression) problems.push(`${what}: ${s.expression}, the function says ${f.schedule}`);
    }
    if (!s.expression) problems.push(`${what}: no expression`);
    for (const t of s.tables) {
      if (!tables.has(t)) problems.push(`${what}: no table ${t}`);
      else if (stackOfTable(t) !== s.stack) problems.push(`${what}: table ${t} is in stack ${stackOfTable(t)}`);
    }
  }
  if (problems.length > 0) {
    throw new Error(`${file} is inconsistent:\n  ${problems.join('\n  ')}`);
  }
  return topology;
}
