#!/usr/bin/env node
// The CDK app: one env-agnostic stack, `Clinicflow`, built from infra/topology.json and the
// prebuilt arm64 zips, one per bootstrap (target/lambda/<bootstrap>/bootstrap.zip, or
// -c lambdaDir=<dir>).
// Synth needs no AWS credentials and makes no lookups.

import * as fs from 'fs';
import * as path from 'path';
import { App, DefaultStackSynthesizer } from 'aws-cdk-lib';
import { ClinicflowStack } from '../lib/clinicflow-stack';
import { loadTopology } from '../lib/topology';

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

const root = cdkRoot();
const repo = path.resolve(root, '..', '..');
const app = new App({ analyticsReporting: false });

const lambdaDirContext: unknown = app.node.tryGetContext('lambdaDir');
const lambdaDir =
  typeof lambdaDirContext === 'string' && lambdaDirContext !== ''
    ? path.resolve(lambdaDirContext)
    : path.join(repo, 'target', 'lambda');

const topology = loadTopology(path.join(repo, 'infra', 'topology.json'));

const missing = [...new Set(topology.functions.map((f) => f.bootstrap))]
  .map((bootstrap) => path.join(lambdaDir, bootstrap, 'bootstrap.zip'))
  .filter((zip) => !fs.existsSync(zip));
if (missing.length > 0) {
  console.error(
    `error: missing Lambda packages:\n  ${missing.join('\n  ')}\n` +
      'Build them first with ./scripts/lambda-build.sh (from the repository root; ' +
      'cargo lambda build --release --arm64 --output-format zip), or point -c lambdaDir=<dir> at the zips.',
  );
  process.exit(1);
}

// The construct id (and so cdk.out/Clinicflow.template.json) is fixed; the CloudFormation
// stack name can differ per stage: -c stackName=clinicflow-prod.
const stackNameContext: unknown = app.node.tryGetContext('stackName');
const stackName = typeof stackNameContext === 'string' && stackNameContext !== '' ? stackNameContext : 'Clinicflow';

new ClinicflowStack(app, 'Clinicflow', {
  stackName,
  description: 'clinicflow: Rust on Lambda clinic check-up platform (CDK app, built from infra/topology.json)',
  topology,
  lambdaDir,
  // The template carries exactly the contract's parameters: no BootstrapVersion parameter
  // and no CheckBootstrapVersion rule (deploy with an environment bootstrapped by `cdk bootstrap`).
  synthesizer: new DefaultStackSynthesizer({ generateBootstrapVersionRule: false }),
});
