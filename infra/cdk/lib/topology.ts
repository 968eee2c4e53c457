// The shape of infra/topology.json (the export of shared/src/topology.rs), and its loader.
// The stack is built from this file alone: a function, route, rule, stream or table added to
// the Rust topology shows up in the next synth.

import * as fs from 'fs';

export interface Permission {
  readonly actions: string[];
  /**
   * `table/T`, `table/T/index/I`, `table/T/stream`, `event-bus`, `failure-queue/F`, `*`, or
   * `not:sns-topic` (every SNS target except a topic, i.e. direct SMS).
   */
  readonly resource: string;
}

export type Trigger = 'http' | 'events' | 'stream' | 'schedule';

export interface FunctionSpec {
  readonly name: string;
  /** The binary (`functions/<bootstrap>/`) that serves it, picked by its handler. */
  readonly bootstrap: string;
  readonly description: string;
  readonly trigger: Trigger;
  readonly schedule: string | null;
  readonly memory_mb: number;
  readonly timeout_s: number;
  /** Variable → `table/T` or `event-bus`. */
  readonly environment: Record<string, string>;
  readonly permissions: Permission[];
}

export interface RouteSpec {
  readonly method: string;
  readonly path: string;
  readonly function: string;
  readonly public: boolean;
}

export interface RuleSpec {
  readonly name: string;
  readonly target: string;
  /** An EventBridge pattern in its JSON form (`source`, `detail-type`, ...). */
  readonly pattern: Record<string, unknown>;
}

export interface StreamSpec {
  readonly function: string;
  readonly tables: string[];
}

export interface IndexSpec {
  readonly name: string;
  readonly hash: string;
  readonly range: string | null;
}

export interface TableSpec {
  readonly name: string;
  readonly key: string;
  readonly stream: string | null;
  readonly ttl: string | null;
  readonly indexes: IndexSpec[];
}

export interface Topology {
  readonly roles: string[];
  readonly functions: FunctionSpec[];
  readonly routes: RouteSpec[];
  readonly rules: RuleSpec[];
  readonly streams: StreamSpec[];
  readonly tables: TableSpec[];
}

const TRIGGERS: readonly Trigger[] = ['http', 'events', 'stream', 'schedule'];
const STREAM_VIEWS: readonly string[] = ['NEW_IMAGE', 'OLD_IMAGE', 'NEW_AND_OLD_IMAGES', 'KEYS_ONLY'];

/** Reads and checks the topology; every inconsistency fails the synth with its reason. */
export function loadTopology(file: string): Topology {
  if (!fs.existsSync(file)) {
    throw new Error(`topology not found at ${file}`);
  }
  const topology = JSON.parse(fs.readFileSync(file, 'utf8')) as Topology;
  const problems: string[] = [];
  const fnNames = new Set<string>();
  const tableNames = new Set(topology.tables.map((t) => t.name));

  for (const f of topology.functions) {
    if (fnNames.has(f.name)) problems.push(`function ${f.name} is declared twice`);
    fnNames.add(f.name);
    if (!/^[a-z][a-z0-9-]*$/.test(f.name)) problems.push(`function name ${f.name} is not kebab-case`);
    if (!/^[a-z][a-z0-9-]*$/.test(f.bootstrap ?? '')) problems.push(`function ${f.name}: no bootstrap`);
    if (!TRIGGERS.includes(f.trigger)) problems.push(`function ${f.name}: unknown trigger ${f.trigger}`);
    if (f.trigger === 'schedule' && !f.schedule) problems.push(`function ${f.name}: schedule trigger without a schedule`);
    if (f.trigger !== 'schedule' && f.schedule) problems.push(`function ${f.name}: a schedule on a ${f.trigger} function`);
    for (const [name, value] of Object.entries(f.environment)) {
      const table = /^table\/([^/]+)$/.exec(value);
      if (table ? !tableNames.has(table[1]) : value !== 'event-bus') {
        problems.push(`function ${f.name}: ${name}=${value} names no table or the bus`);
      }
    }
  }
  for (const r of topology.routes) {
    if (!fnNames.has(r.function)) problems.push(`route ${r.method} ${r.path}: no function ${r.function}`);
  }
  for (const r of topology.rules) {
    if (!fnNames.has(r.target)) problems.push(`rule ${r.name}: no function ${r.target}`);
  }
  for (const s of topology.streams) {
    if (!fnNames.has(s.function)) problems.push(`streams: no function ${s.function}`);
    for (const t of s.tables) {
      const table = topology.tables.find((x) => x.name === t);
      if (!table) problems.push(`streams of ${s.function}: no table ${t}`);
      else if (!table.stream) problems.push(`streams of ${s.function}: table ${t} has no stream`);
    }
  }
  for (const t of topology.tables) {
    if (t.stream && !STREAM_VIEWS.includes(t.stream)) problems.push(`table ${t.name}: unknown stream view ${t.stream}`);
  }
  if (problems.length > 0) {
    throw new Error(`${file} is inconsistent:\n  ${problems.join('\n  ')}`);
  }
  return topology;
}
