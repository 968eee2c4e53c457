#!/usr/bin/env node
// The CDK app: env-agnostic stacks built from infra/topology.json and the prebuilt arm64
// zips, one per bootstrap (target/lambda/<bootstrap>/bootstrap.zip, or -c lambdaDir=<dir>):
// `ClinicflowPlatform` (deployed first) and one `Clinicflow<Flow>` per flow of the topology,
// each depending on the platform's. CloudFormation stack names are
// `clinicflow-<stage>-<stack>` (-c stage=<stage>, default dev).
// Synth needs no AWS credentials and makes no lookups.

import * as fs from 'fs';
import * as path from 'path';
import { App, DefaultStackSynthesizer } from 'aws-cdk-lib';
import { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { ClinicflowStack } from '../lib/clinicflow-stack';
import { FlowStack } from '../lib/flow-stack';
import { PlatformStack } from '../lib/platform-stack';
import { PLATFORM_STACK, loadTopology, pascal } from '../lib/topology';

/** infra/cdk, found from here whether this runs compiled (dist/bin) or not (bin). */
function cdkRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'cdk.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no cdk.json above ${__dirname}`);
    dir = parent;
  }
  return dir;
}

function fail(message: string): never {
  console.error(`error: ${message}`);
  process.exit(1);
}

const root = cdkRoot();
const repo = path.resolve(root, '..', '..');
const app = new App({ analyticsReporting: false });

const context = (key: string): string | undefined => {
  const value: unknown = app.node.tryGetContext(key);
  return typeof value === 'string' && value !== '' ? value : undefined;
};

const lambdaDirContext = context('lambdaDir');
const lambdaDir = lambdaDirContext ? path.resolve(lambdaDirContext) : path.join(repo, 'target', 'lambda');

const topology = loadTopology(path.join(repo, 'infra', 'topology.json'));

const missing = [...new Set(topology.functions.map((f) => f.bootstrap))]
  .map((bootstrap) => path.join(lambdaDir, bootstrap, 'bootstrap.zip'))
  .filter((zip) => !fs.existsSync(zip));
if (missing.length > 0) {
  fail(
    `missing Lambda packages:\n  ${missing.join('\n  ')}\n` +
      'Build them first with ./scripts/lambda-build.sh (from the repository root; ' +
      'cargo lambda build --release --arm64 --output-format zip), or point -c lambdaDir=<dir> at the zips.',
  );
}

// The construct IDs (and so cdk.out/Clinicflow<Stack>.template.json) are fixed; the
// CloudFormation stack names follow the stage: -c stage=prod → clinicflow-prod-platform, ...
if (context('stackName')) fail('-c stackName is gone: the stacks are named clinicflow-<stage>-<stack>, set -c stage=<stage>');
const stage = context('stage') ?? 'dev';
if (!/^[a-z][a-z0-9-]{0,19}$/.test(stage)) {
  fail(`-c stage=${stage}: lowercase letters, digits and hyphens, starting with a letter (at most 20)`);
}

const common = {
  topology,
  lambdaDir,
  // The Stage parameter defaults to the stage the stacks are named for, so that a deploy
  // without --parameters Stage=... names the bus, the pool and the exports after it.
  stage,
};
// The templates carry exactly the contract's parameters: no BootstrapVersion parameter and
// no CheckBootstrapVersion rule (deploy with an environment bootstrapped by `cdk bootstrap`).
const synthesizer = () => new DefaultStackSynthesizer({ generateBootstrapVersionRule: false });

const platform = new PlatformStack(app, `Clinicflow${pascal(PLATFORM_STACK)}`, {
  ...common,
  synthesizer: synthesizer(),
  stackName: `clinicflow-${stage}-${PLATFORM_STACK}`,
  description:
    'clinicflow platform: event bus, HTTP API, Cognito, shared tables and functions (CDK app, built from infra/topology.json)',
});
const flows = topology.stacks
  .filter((s) => s !== PLATFORM_STACK)
  .map((flow) => {
    const stack = new FlowStack(app, `Clinicflow${pascal(flow)}`, {
      ...common,
      synthesizer: synthesizer(),
      stack: flow,
      stackName: `clinicflow-${stage}-${flow}`,
      description: `clinicflow flow ${flow}: its tables, functions, routes, rules, streams and schedules (CDK app, built from infra/topology.json)`,
    });
    stack.addStackDependency(platform);
    return stack;
  });
platform.exportForFlows(flows.flatMap((f) => f.importedKeys));

checkAssembly(app.synth(), [platform, ...flows]);

/**
 * What the template test holds the stacks to beyond CloudFormation's own checks, checked
 * here so that a synth that breaks it fails: logical IDs unique across the stacks (the test
 * merges them), every export the platform's and named `clinicflow-${Stage}-<Key>`, every
 * import such a name the platform exports and every export imported, no output but those
 * the stacks declare and no Fn::GetStackOutput (no cross-stack reference CDK made up, as
 * an export or, with weak references, as a published output), and every stack well under
 * CloudFormation's 500 resources.
 */
function checkAssembly(assembly: CloudAssembly, stacks: ClinicflowStack[]): void {
  const MAX_RESOURCES = 400;
  const NAMED = /^clinicflow-\$\{Stage\}-[A-Za-z0-9]+$/;
  const problems: string[] = [];
  const seen = new Map<string, string>();
  const exported = new Set<string>();
  const imports: Array<[string, unknown]> = [];
  const platformId = platform.artifactId;

  const visit = (stack: string, v: unknown): void => {
    if (Array.isArray(v)) v.forEach((x) => visit(stack, x));
    else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (k === 'Fn::ImportValue') imports.push([stack, x]);
        else if (k === 'Fn::GetStackOutput') problems.push(`${stack} reads another stack's output ${JSON.stringify(x)} (a CDK cross-stack reference)`);
        else visit(stack, x);
      }
    }
  };
  const subName = (v: unknown): string | undefined => {
    const sub = (v as Record<string, unknown> | null)?.['Fn::Sub'];
    return typeof sub === 'string' && NAMED.test(sub) ? sub : undefined;
  };

  for (const artifact of assembly.stacks) {
    const template = artifact.template as Record<string, Record<string, Record<string, unknown>>>;
    const id = artifact.id;
    const resources = Object.keys(template.Resources ?? {});
    if (resources.length >= MAX_RESOURCES) problems.push(`${id}: ${resources.length} resources (at most ${MAX_RESOURCES - 1})`);
    for (const section of ['Resources', 'Outputs'] as const) {
      for (const logicalId of Object.keys(template[section] ?? {})) {
        const other = seen.get(`${section}/${logicalId}`);
        if (other) problems.push(`${section} ${logicalId} is in ${other} and in ${id}: logical IDs must be unique across the stacks`);
        seen.set(`${section}/${logicalId}`, id);
      }
    }
    const declared = new Set(stacks.find((s) => s.artifactId === id)?.declaredOutputs ?? []);
    for (const [key, output] of Object.entries(template.Outputs ?? {})) {
      if (!declared.has(key)) problems.push(`${id}: output ${key} is not one the app declares (a CDK cross-stack reference?)`);
      const exportDef = output.Export as Record<string, unknown> | undefined;
      if (!exportDef) continue;
      const name = subName(exportDef.Name);
      if (id !== platformId) problems.push(`${id} exports ${key}: only the platform's stack exports`);
      if (!name || name !== `clinicflow-\${Stage}-${key}`) {
        problems.push(`${id}: output ${key} exports ${JSON.stringify(exportDef.Name)}, not {"Fn::Sub": "clinicflow-\${Stage}-${key}"}`);
      } else exported.add(name);
    }
    visit(id, template);
  }
  for (const [stack, name] of imports) {
    const sub = subName(name);
    if (stack === platformId) problems.push(`${stack} imports ${JSON.stringify(name)}: the platform's stack imports nothing`);
    else if (!sub) problems.push(`${stack} imports ${JSON.stringify(name)}, not a named export clinicflow-\${Stage}-<Key>`);
    else if (!exported.has(sub)) problems.push(`${stack} imports ${sub}, which the platform's stack does not export`);
  }
  const imported = new Set(imports.map(([, name]) => subName(name)));
  for (const name of exported) {
    if (!imported.has(name)) problems.push(`the platform's stack exports ${name}, which no flow's stack imports`);
  }
  if (problems.length > 0) fail(`the synthesized stacks break the cross-stack contract:\n  ${problems.join('\n  ')}`);
}
