// What every clinicflow stack builds from its part of infra/topology.json: the platform's
// stack (lib/platform-stack.ts) and each flow's (lib/flow-stack.ts) are this class plus what
// only they hold. Each follows "The rules both templates follow" in infra/README.md, per
// stack: the template test (tests/tests/infra_templates.rs) identifies resources by the
// `clinicflow:function` and `clinicflow:table` tags, so every function and table carries
// its topology name.
//
// Placement is the topology's alone: a table, function, route, rule, stream mapping or
// schedule is built in the stack its entry names, and a grant in the stack its `stack` names.
// A flow's stack refers to the platform's resources only through the platform's named
// exports (lib/cross-stack.ts); no construct of one stack is handed to another, so CDK never
// makes cross-stack references of its own.
//
// No grant* helper, no addEventSource and no Lambda destination L2: they add IAM statements
// of their own, and a function's statements must be exactly its topology permissions (plus
// the two X-Ray actions tracing adds).
//
// Deletion, as in the SAM templates: tables and the user pool are retained with the stack;
// log groups (named after the stack) and queues go with it.
//
// Logical IDs are unique across the stacks (the template test merges them): per-function,
// per-table and per-route IDs carry those names, and the few per-stack ones (CodeDeploy's
// application and role, a flow's grants to a platform role, its schedules) the stack's.

import * as path from 'path';
import * as fs from 'fs';
import { Aws, CfnCondition, CfnDeletionPolicy, CfnOutput, CfnParameter, Duration, Fn, RemovalPolicy, Stack, StackProps, Tags } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as codedeploy from 'aws-cdk-lib/aws-codedeploy';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { Key } from './cross-stack';
import { FunctionSpec, Permission, PLATFORM_STACK, Topology, pascal } from './topology';

export interface ClinicflowStackProps extends StackProps {
  readonly topology: Topology;
  /** The topology stack this CloudFormation stack holds (`platform`, or a flow). */
  readonly stack: string;
  /** The default of the `Stage` parameter: the stage the app was synthesized for (`-c stage`). */
  readonly stage: string;
  /** Where `<bootstrap>/bootstrap.zip` are (`cargo lambda build --release --arm64 --output-format zip`). */
  readonly lambdaDir: string;
}

/** The tag that names a function's topology entry. */
export const FUNCTION_TAG = 'clinicflow:function';
/** The tag that names a table's topology entry. */
export const TABLE_TAG = 'clinicflow:table';
/** The tag that names a queue's use (`dlq/<consumer>`, `failure/<function>`), as in the SAM templates. */
export const QUEUE_TAG = 'clinicflow:queue';
/** The tag that names the stack whose documents a signing key seals, as in the SAM templates. */
export const SIGNING_KEY_TAG = 'clinicflow:signing-key';
/** The tag that names the topology stack a resource belongs to. */
export const STACK_TAG = 'clinicflow:stack';

/** The alias every trigger targets and CodeDeploy shifts. */
const LIVE = 'live';

// Stream mappings: bisect + ReportBatchItemFailures retry only from the first record the
// projector refuses (it waits for version gaps); 10 bounded retries then park the batch in
// the failure queue instead of blocking the shard for the stream's 24 hours.
const STREAM_BATCH_SIZE = 100;
const STREAM_BATCHING_WINDOW_S = 1;
const STREAM_MAX_RETRIES = 10;
const ITERATOR_AGE_ALARM_MS = 60_000;

// Rule targets: EventBridge retries a delivery it cannot make for up to 24 hours and 185
// attempts (both maxima), then dead-letters it to the consumer's queue. An error the
// function returns is retried by Lambda (asynchronous invocation), then sent to the
// function's failure queue.
const RULE_RETRY_ATTEMPTS = 185;
const RULE_MAX_EVENT_AGE = Duration.hours(24);
const ASYNC_RETRY_ATTEMPTS = 2;
const ASYNC_MAX_EVENT_AGE_S = 6 * 60 * 60;
// A missed sweep is covered by the next one a minute later.
const SCHEDULE_RETRY_ATTEMPTS = 2;
const SCHEDULE_MAX_EVENT_AGE_S = 60;
// 14 days, SQS's maximum: time to redrive.
const QUEUE_RETENTION = Duration.days(14);
// Consumers fail and retry by design while they wait for an earlier event: 5 errors a
// minute is more than that. Any other function failing at all is a defect.
const CONSUMER_ERRORS_ALARM = 5;
/** CodeDeploy's limit of alarms per deployment group. */
const MAX_DEPLOYMENT_ALARMS = 10;

const DEPLOYMENT_TYPES = [
  'Canary10Percent5Minutes',
  'Canary10Percent10Minutes',
  'Canary10Percent15Minutes',
  'Canary10Percent30Minutes',
  'Linear10PercentEvery1Minute',
  'Linear10PercentEvery2Minutes',
  'Linear10PercentEvery3Minutes',
  'Linear10PercentEvery10Minutes',
  'AllAtOnce',
];

const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

/** `detail-type` → `detailType`: the L2 EventPattern's spelling of a pattern key. */
function camel(key: string): string {
  return key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

export abstract class ClinicflowStack extends Stack {
  /** The topology stack this stack holds. */
  readonly topologyStack: string;
  protected readonly topology: Topology;
  private readonly lambdaDir: string;

  // Parameters every stack has, defined alike in all of them (and as in the SAM templates).
  protected readonly stage: CfnParameter;
  protected readonly deploymentType: CfnParameter;
  protected readonly logRetentionDays: CfnParameter;

  private isProdCondition?: CfnCondition;
  private readonly tables = new Map<string, dynamodb.Table>();
  private readonly dlqs = new Map<string, sqs.Queue>();
  private readonly failureQueues = new Map<string, sqs.Queue>();
  private readonly aliases = new Map<string, lambda.Alias>();
  private signingKey?: kms.CfnKey;
  /** A flow stack's policy on a platform function's role (its grants on the flow's tables). */
  private readonly foreignPolicies = new Map<string, iam.CfnPolicy>();
  private deployment?: {
    application: codedeploy.ILambdaApplication;
    role: iam.IRole;
    config: codedeploy.ILambdaDeploymentConfig;
  };
  /**
   * What this stack holds that another stack may import, by export key (lib/cross-stack.ts):
   * its tables' names and ARNs, its functions' alias ARNs, role names and failure queue ARNs,
   * plus what a subclass adds (the platform's bus and API).
   */
  protected readonly exportable = new Map<string, string>();
  /** The outputs this app declares, by logical ID (any other output in a template is CDK's own). */
  protected readonly outputs = new Map<string, CfnOutput>();

  constructor(scope: Construct, id: string, props: ClinicflowStackProps) {
    super(scope, id, props);
    this.topology = props.topology;
    this.topologyStack = props.stack;
    this.lambdaDir = props.lambdaDir;
    if (!props.topology.stacks.includes(props.stack)) throw new Error(`stack ${props.stack} is not in the topology`);
    Tags.of(this).add(STACK_TAG, props.stack);

    this.stage = new CfnParameter(this, 'Stage', {
      type: 'String',
      default: props.stage,
      allowedPattern: '^[a-z][a-z0-9-]{0,19}$',
      constraintDescription: 'lowercase letters, digits and hyphens, starting with a letter (at most 20)',
      description: 'Deployment stage (dev, staging, prod, ...); names the event bus and the user pool.',
    });
    this.deploymentType = new CfnParameter(this, 'DeploymentType', {
      type: 'String',
      default: 'Canary10Percent5Minutes',
      allowedValues: DEPLOYMENT_TYPES,
      description:
        "How CodeDeploy shifts each function's `live` alias to a new version (Canary10Percent5Minutes in production; AllAtOnce for a dev stack).",
    });
    this.logRetentionDays = new CfnParameter(this, 'LogRetentionDays', {
      type: 'Number',
      default: '30',
      allowedValues: LOG_RETENTION_DAYS.map(String),
      description: "Retention of the functions' log groups and the API access log group.",
    });
  }

  // ---- What a subclass provides ------------------------------------------------------------

  /**
   * A value the platform's stack holds, by export key: in the platform's stack its own
   * resource, in a flow's the named import of the platform's export.
   */
  protected abstract platformValue(key: string): string;

  /** The bus the stack's rules are on. */
  protected abstract eventBus(): events.IEventBus;

  /** Variables a function gets beyond its topology `environment`. */
  protected extraEnvironment(spec: FunctionSpec): Record<string, string> {
    if (spec.permissions.some((p) => p.resource === 'not:sns-topic')) {
      throw new Error(`function ${spec.name} sends SMS, whose settings are parameters of the platform's stack only`);
    }
    return {};
  }

  // ---- Shared helpers ----------------------------------------------------------------------

  /** `Stage = prod`: tables and the user pool are protected from deletion. */
  protected get isProd(): CfnCondition {
    this.isProdCondition ??= new CfnCondition(this, 'IsProd', {
      expression: Fn.conditionEquals(this.stage.valueAsString, 'prod'),
    });
    return this.isProdCondition;
  }

  /** An output whose logical ID is exactly `id` (no CDK hash). */
  protected output(id: string, value: string, description: string): CfnOutput {
    const output = new CfnOutput(this, id, { value, description });
    output.overrideLogicalId(id);
    this.outputs.set(id, output);
    return output;
  }

  /** The logical IDs of the outputs this app declares in the stack. */
  get declaredOutputs(): string[] {
    return [...this.outputs.keys()];
  }

  /** A log group named after the stack, kept LogRetentionDays (a token: set on the L1). */
  protected logGroup(id: string, name: string): logs.LogGroup {
    const group = new logs.LogGroup(this, id, { logGroupName: name, removalPolicy: RemovalPolicy.DESTROY });
    (group.node.defaultChild as logs.CfnLogGroup).retentionInDays = this.logRetentionDays.valueAsNumber;
    return group;
  }

  private queue(id: string, use: string): sqs.Queue {
    const q = new sqs.Queue(this, id, {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      retentionPeriod: QUEUE_RETENTION,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    Tags.of(q).add(QUEUE_TAG, use);
    return q;
  }

  private stackOfTable(name: string): string {
    const t = this.topology.tables.find((x) => x.name === name);
    if (!t) throw new Error(`no table ${name} in the topology`);
    return t.stack;
  }

  private stackOfFunction(name: string): string {
    const f = this.topology.functions.find((x) => x.name === name);
    if (!f) throw new Error(`no function ${name} in the topology`);
    return f.stack;
  }

  /** Something of stack `home` this stack refers to: its own, or the platform's through its export `key`. */
  private elsewhere(what: string, home: string, key: string): string {
    if (home === this.topologyStack || home !== PLATFORM_STACK) {
      throw new Error(`stack ${this.topologyStack} refers to ${what} of stack ${home}, which it cannot import`);
    }
    return this.platformValue(key);
  }

  protected tableName(name: string): string {
    return this.tables.get(name)?.tableName ?? this.elsewhere(`table ${name}`, this.stackOfTable(name), Key.tableName(name));
  }

  protected tableArn(name: string): string {
    return this.tables.get(name)?.tableArn ?? this.elsewhere(`table ${name}`, this.stackOfTable(name), Key.tableArn(name));
  }

  /** A stream is only read in its table's own stack (stream mappings and grants are placed there). */
  private tableStreamArn(name: string, why: string): string {
    const table = this.tables.get(name);
    if (!table) throw new Error(`${why}: the stream of table ${name}, which is not in stack ${this.topologyStack}`);
    if (!table.tableStreamArn) throw new Error(`${why}: table ${name} has no stream`);
    return table.tableStreamArn;
  }

  protected aliasArn(fn: string): string {
    return this.aliases.get(fn)?.functionArn ?? this.elsewhere(`function ${fn}`, this.stackOfFunction(fn), Key.aliasArn(fn));
  }

  private failureQueueArn(fn: string): string {
    const local = this.failureQueues.get(fn);
    if (local) return local.queueArn;
    if (this.stackOfFunction(fn) === this.topologyStack) throw new Error(`function ${fn} has no failure queue`);
    return this.elsewhere(`the failure queue of ${fn}`, this.stackOfFunction(fn), Key.failureQueueArn(fn));
  }

  private busArn(): string {
    return this.platformValue(Key.eventBusArn);
  }

  // ---- IAM: the topology's permissions, mapped to this stack's ARNs (or the platform's) ----
  private statementFor(fn: FunctionSpec, grant: Permission): iam.PolicyStatement {
    const r = grant.resource;
    const why = `function ${fn.name}, grant on ${r}`;
    const on = (resources: string[]) => new iam.PolicyStatement({ actions: grant.actions, resources });
    if (r === '*') return on(['*']);
    if (r === 'event-bus') return on([this.busArn()]);
    if (r === 'not:sns-topic') {
      // Direct SMS only: sns:Publish on anything but a topic.
      return new iam.PolicyStatement({
        actions: grant.actions,
        notResources: [Fn.sub('arn:${AWS::Partition}:sns:*:*:*')],
      });
    }
    let m = /^table\/([^/]+)$/.exec(r);
    if (m) return on([this.tableArn(m[1])]);
    m = /^table\/([^/]+)\/index\/([^/]+)$/.exec(r);
    if (m) return on([`${this.tableArn(m[1])}/index/${m[2]}`]);
    m = /^table\/([^/]+)\/stream$/.exec(r);
    if (m) return on([this.tableStreamArn(m[1], why)]);
    m = /^failure-queue\/([^/]+)$/.exec(r);
    if (m) return on([this.failureQueueArn(m[1])]);
    m = /^signing-key\/([^/]+)$/.exec(r);
    if (m) return on([this.signingKeyArn(m[1], why)]);
    throw new Error(`${why}: unknown resource kind (map it in statementFor, infra/cdk/lib/clinicflow-stack.ts)`);
  }

  private environmentFor(fn: FunctionSpec): Record<string, string> {
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(fn.environment)) {
      const m = /^table\/([^/]+)$/.exec(value);
      if (m) env[name] = this.tableName(m[1]);
      else if (value === 'event-bus') env[name] = this.platformValue(Key.eventBusName);
      else if (value.startsWith('signing-key/')) env[name] = this.signingKeyArn(value.slice('signing-key/'.length), `function ${fn.name}: ${name}`);
      else throw new Error(`function ${fn.name}: ${name}=${value} names no table, the bus or a signing key`);
    }
    return { ...env, ...this.extraEnvironment(fn) };
  }

  // ---- The stack's part of the topology ------------------------------------------------------

  /** Builds every topology entry of this stack; a subclass calls it once its own resources exist. */
  protected buildTopology(): void {
    const mine = <T extends { stack: string }>(entries: T[]) => entries.filter((e) => e.stack === this.topologyStack);
    for (const spec of mine(this.topology.tables)) this.buildTable(spec.name);
    for (const spec of mine(this.topology.signing_keys)) this.buildSigningKey(spec.stack);
    this.buildQueues();
    for (const spec of mine(this.topology.functions)) this.buildFunction(spec);
    this.buildForeignGrants();
    this.buildRules();
    this.buildStreams();
    this.buildSchedules();
    this.buildRoutes();
  }

  /**
   * The asymmetric KMS key that seals this stack's documents (P-256, ES256). Retained: what
   * it signed must stay verifiable once the stack is gone. Its policy delegates to IAM (the
   * account), where each function holds only its own grant on it (kms:Sign, or
   * kms:GetPublicKey). An L1 construct: the L2 key adds statements of its own.
   */
  private buildSigningKey(stack: string): void {
    const spec = this.topology.signing_keys.find((k) => k.stack === stack)!;
    const key = new kms.CfnKey(this, `${pascal(stack)}SigningKey`, {
      description: Fn.sub(`clinicflow \${Stage}: seals the ${stack} flow's documents (${spec.algorithm})`),
      keySpec: spec.key_spec,
      keyUsage: spec.key_usage,
      enabled: true,
      keyPolicy: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'AccountAdministersAndIamGrants',
            Effect: 'Allow',
            Principal: { AWS: Fn.sub('arn:${AWS::Partition}:iam::${AWS::AccountId}:root') },
            Action: 'kms:*',
            Resource: '*',
          },
        ],
      },
      tags: [{ key: SIGNING_KEY_TAG, value: stack }],
    });
    key.cfnOptions.deletionPolicy = CfnDeletionPolicy.RETAIN;
    key.cfnOptions.updateReplacePolicy = CfnDeletionPolicy.RETAIN;
    this.signingKey = key;
  }

  /** The ARN of this stack's signing key: only its own functions use it (no export). */
  private signingKeyArn(stack: string, why: string): string {
    if (stack !== this.topologyStack || !this.signingKey) {
      throw new Error(`${why}: the signing key of stack ${stack} is not one of stack ${this.topologyStack}'s own`);
    }
    return this.signingKey.attrArn;
  }

  private buildTable(name: string): void {
    const spec = this.topology.tables.find((t) => t.name === name)!;
    const id = `${pascal(spec.name)}Table`;
    const table = new dynamodb.Table(this, id, {
      partitionKey: { name: spec.key, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      timeToLiveAttribute: spec.ttl ?? undefined,
      stream: spec.stream ? (spec.stream as dynamodb.StreamViewType) : undefined,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    for (const index of spec.indexes) {
      table.addGlobalSecondaryIndex({
        indexName: index.name,
        partitionKey: { name: index.hash, type: dynamodb.AttributeType.STRING },
        sortKey: index.range ? { name: index.range, type: dynamodb.AttributeType.STRING } : undefined,
        projectionType: dynamodb.ProjectionType.ALL,
      });
    }
    (table.node.defaultChild as dynamodb.CfnTable).addPropertyOverride(
      'DeletionProtectionEnabled',
      Fn.conditionIf(this.isProd.logicalId, true, false),
    );
    Tags.of(table).add(TABLE_TAG, spec.name);
    this.tables.set(spec.name, table);
    this.exportable.set(Key.tableName(spec.name), table.tableName);
    this.exportable.set(Key.tableArn(spec.name), table.tableArn);
  }

  /** The rules' dead-letter queues and the functions' failure queues of this stack. */
  private buildQueues(): void {
    // One dead-letter queue per consumer, shared by its rules (each rule adds its own
    // statement to the queue's policy): one rollback alarm whatever the number of rules, so
    // a deployment group stays within CodeDeploy's 10 alarms. A rule is in its consumer's stack.
    for (const rule of this.topology.rules.filter((r) => r.stack === this.topologyStack)) {
      if (!this.dlqs.has(rule.target)) {
        this.dlqs.set(rule.target, this.queue(`${pascal(rule.target)}Dlq`, `dlq/${rule.target}`));
      }
    }
    // A function's failure queue takes what still fails after retries: its stream mappings'
    // batches (a stream consumer, whichever stack its mappings are in), or Lambda's
    // asynchronous invocations of it (an EventBridge consumer). It exists where the topology
    // grants sqs:SendMessage on it, in the function's stack.
    const streamFunctions = new Set(this.topology.streams.map((s) => s.function));
    for (const fn of this.topology.functions.filter((f) => f.stack === this.topologyStack)) {
      const named = fn.permissions.some((p) => p.resource === `failure-queue/${fn.name}`);
      if (!named && !streamFunctions.has(fn.name)) continue;
      if (!streamFunctions.has(fn.name) && fn.trigger !== 'events') {
        throw new Error(`function ${fn.name}: a failure queue, but no stream mapping or asynchronous trigger sends to it`);
      }
      const q = this.queue(`${pascal(fn.name)}FailureQueue`, `failure/${fn.name}`);
      this.failureQueues.set(fn.name, q);
      this.exportable.set(Key.failureQueueArn(fn.name), q.queueArn);
    }
  }

  // ---- Alarms --------------------------------------------------------------------------------
  private alarm(
    id: string,
    name: string,
    description: string,
    metric: cloudwatch.Metric,
    comparisonOperator: cloudwatch.ComparisonOperator,
    threshold: number,
    periods = 1,
  ): cloudwatch.Alarm {
    // A single-metric alarm named `<stack>-<suffix>`, as in the SAM templates; no data is not a breach.
    return new cloudwatch.Alarm(this, id, {
      alarmName: `${Aws.STACK_NAME}-${name}`,
      alarmDescription: description,
      metric,
      comparisonOperator,
      threshold,
      evaluationPeriods: periods,
      datapointsToAlarm: periods,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }

  private static queueDepth(q: sqs.Queue): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: 'AWS/SQS',
      metricName: 'ApproximateNumberOfMessagesVisible',
      dimensionsMap: { QueueName: q.queueName },
      period: Duration.minutes(1),
      statistic: cloudwatch.Stats.MAXIMUM,
    });
  }

  /** CodeDeploy: one application and one service role per stack for every live alias in it. */
  private deploymentSetup() {
    if (!this.deployment) {
      const prefix = pascal(this.topologyStack);
      this.deployment = {
        application: new codedeploy.LambdaApplication(this, `${prefix}DeploymentApplication`),
        role: new iam.Role(this, `${prefix}DeploymentRole`, {
          assumedBy: new iam.ServicePrincipal('codedeploy.amazonaws.com'),
          description: 'CodeDeploy shifts traffic between versions behind the live aliases',
        }),
        config: codedeploy.LambdaDeploymentConfig.fromLambdaDeploymentConfigName(
          this,
          'DeploymentConfig',
          Fn.sub('CodeDeployDefault.Lambda${DeploymentType}', { DeploymentType: this.deploymentType.valueAsString }),
        ),
      };
    }
    return this.deployment;
  }

  // ---- Functions: role, log group, function, alias `live`, alarms, rollout, async config ----
  private buildFunction(spec: FunctionSpec): void {
    const id = pascal(spec.name);
    // One zip per bootstrap (a slice's, or the platform's), shared by its functions as one
    // asset; the handler tells the binary which function it is (`_HANDLER`).
    const zip = path.join(this.lambdaDir, spec.bootstrap, 'bootstrap.zip');
    if (!fs.existsSync(zip)) {
      throw new Error(`${zip} is missing: build the functions first with ./scripts/lambda-build.sh`);
    }

    // The grants this stack writes on the role; a platform function's grants on a flow's
    // tables are written by that flow's stack (buildForeignGrants there).
    const statements = spec.permissions
      .filter((p) => p.stack === this.topologyStack)
      .map((p) => this.statementFor(spec, p));
    const role = new iam.Role(this, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Role of the ${spec.name} function: exactly its topology permissions`,
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSLambdaBasicExecutionRole')],
      inlinePolicies:
        statements.length > 0 ? { topology: new iam.PolicyDocument({ statements }) } : undefined,
    });

    const fn = new lambda.Function(this, `${id}Function`, {
      description: spec.description,
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.ARM_64,
      handler: spec.name,
      code: lambda.Code.fromAsset(zip),
      memorySize: spec.memory_mb,
      timeout: Duration.seconds(spec.timeout_s),
      tracing: lambda.Tracing.ACTIVE,
      logGroup: this.logGroup(`${id}LogGroup`, `/aws/lambda/${Aws.STACK_NAME}/${spec.name}`),
      role,
      environment: this.environmentFor(spec),
    });
    Tags.of(fn).add(FUNCTION_TAG, spec.name);
    // The L2 makes the function depend on the whole role construct; its GetAtt of the role
    // already orders the two, so DependsOn keeps only the X-Ray policy (cfn-lint W3005).
    const xrayPolicy = role.node.tryFindChild('DefaultPolicy') as iam.Policy | undefined;
    if (xrayPolicy) {
      (fn.node.defaultChild as lambda.CfnFunction).addOverride('DependsOn', [
        (xrayPolicy.node.defaultChild as iam.CfnPolicy).logicalId,
      ]);
    }

    const alias = new lambda.Alias(this, `${id}Live`, { aliasName: LIVE, version: fn.currentVersion });
    this.aliases.set(spec.name, alias);
    this.exportable.set(Key.aliasArn(spec.name), alias.functionArn);
    this.exportable.set(Key.roleName(spec.name), role.roleName);

    // Rollout alarms: a deployment that sets one off rolls back.
    const AT_LEAST = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD;
    const ABOVE = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD;
    const lambdaMetric = (metricName: string, statistic: string) =>
      new cloudwatch.Metric({
        namespace: 'AWS/Lambda',
        metricName,
        dimensionsMap: { FunctionName: fn.functionName, Resource: `${fn.functionName}:${LIVE}` },
        period: Duration.minutes(1),
        statistic,
      });
    const consumer = spec.trigger === 'events';
    const alarms: cloudwatch.Alarm[] = [
      this.alarm(
        `${id}ErrorsAlarm`,
        `${spec.name}-errors`,
        consumer
          ? `${spec.name} (alias live): deliveries failed (retryable errors included; ${CONSUMER_ERRORS_ALARM} a minute is more than waiting for an earlier event)`
          : `${spec.name} (alias live): invocations failed (a crash or a timeout)`,
        lambdaMetric('Errors', cloudwatch.Stats.SUM),
        AT_LEAST,
        consumer ? CONSUMER_ERRORS_ALARM : 1,
      ),
      this.alarm(
        `${id}ThrottlesAlarm`,
        `${spec.name}-throttles`,
        `${spec.name} (alias live): invocations were throttled`,
        lambdaMetric('Throttles', cloudwatch.Stats.SUM),
        AT_LEAST,
        1,
      ),
    ];
    const dlq = this.dlqs.get(spec.name);
    if (dlq) {
      alarms.push(
        this.alarm(
          `${id}DlqDepthAlarm`,
          `${spec.name}-dlq-depth`,
          `${spec.name}: events its rules dead-lettered after their retries`,
          ClinicflowStack.queueDepth(dlq),
          ABOVE,
          0,
        ),
      );
    }
    if (this.topology.streams.some((s) => s.function === spec.name)) {
      alarms.push(
        this.alarm(
          `${id}IteratorAgeAlarm`,
          `${spec.name}-iterator-age`,
          `${spec.name} (alias live): the oldest stream record waited more than a minute`,
          lambdaMetric('IteratorAge', cloudwatch.Stats.MAXIMUM),
          ABOVE,
          ITERATOR_AGE_ALARM_MS,
          2,
        ),
      );
    }
    const failures = this.failureQueues.get(spec.name);
    if (failures) {
      alarms.push(
        this.alarm(
          `${id}FailureQueueDepthAlarm`,
          `${spec.name}-failure-queue-depth`,
          consumer
            ? `${spec.name}: events that failed every attempt Lambda makes`
            : `${spec.name}: stream batches that exhausted their retries`,
          ClinicflowStack.queueDepth(failures),
          ABOVE,
          0,
        ),
      );
    }
    if (alarms.length > MAX_DEPLOYMENT_ALARMS) {
      throw new Error(`${spec.name}: ${alarms.length} alarms, CodeDeploy takes at most ${MAX_DEPLOYMENT_ALARMS}`);
    }

    const deployment = this.deploymentSetup();
    new codedeploy.LambdaDeploymentGroup(this, `${id}DeploymentGroup`, {
      application: deployment.application,
      alias,
      deploymentConfig: deployment.config,
      role: deployment.role,
      alarms,
      autoRollback: { failedDeployment: true, deploymentInAlarm: true },
    });

    // An EventBridge consumer: what Lambda's asynchronous retries do not get through goes
    // to its failure queue (L1: the destination L2 would add grants of its own).
    if (consumer && failures) {
      const invokeConfig = new lambda.CfnEventInvokeConfig(this, `${id}AsyncConfig`, {
        functionName: fn.functionName,
        qualifier: LIVE,
        maximumRetryAttempts: ASYNC_RETRY_ATTEMPTS,
        maximumEventAgeInSeconds: ASYNC_MAX_EVENT_AGE_S,
        destinationConfig: { onFailure: { destination: failures.queueArn } },
      });
      invokeConfig.node.addDependency(alias);
    }
  }

  /**
   * A flow's stack: the grants of the platform's functions on this flow's tables (the
   * projector's streams, the sweeper's outbox), one AWS::IAM::Policy per function, attached
   * to its role by the imported role name.
   */
  private buildForeignGrants(): void {
    for (const fn of this.topology.functions) {
      if (fn.stack === this.topologyStack) continue;
      const grants = fn.permissions.filter((p) => p.stack === this.topologyStack);
      if (grants.length === 0) continue;
      const policy = new iam.CfnPolicy(this, `${pascal(fn.name)}${pascal(this.topologyStack)}Grants`, {
        // Unique among the role's inline policies: one per flow stack.
        policyName: Aws.STACK_NAME,
        roles: [this.elsewhere(`the role of ${fn.name}`, fn.stack, Key.roleName(fn.name))],
        policyDocument: new iam.PolicyDocument({ statements: grants.map((g) => this.statementFor(fn, g)) }),
      });
      this.foreignPolicies.set(fn.name, policy);
    }
  }

  // ---- Rules on the bus ----------------------------------------------------------------------
  private buildRules(): void {
    for (const spec of this.topology.rules.filter((r) => r.stack === this.topologyStack)) {
      const alias = this.aliases.get(spec.target);
      if (!alias) throw new Error(`rule ${spec.name}: its target ${spec.target} is not in stack ${this.topologyStack}`);
      const pattern: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(spec.pattern)) pattern[camel(key)] = value;
      new events.Rule(this, `${pascal(spec.name)}Rule`, {
        ruleName: spec.name,
        description: `${spec.name}: delivers to ${spec.target}`,
        eventBus: this.eventBus(),
        eventPattern: pattern as events.EventPattern,
        targets: [
          new targets.LambdaFunction(alias, {
            deadLetterQueue: this.dlqs.get(spec.target),
            retryAttempts: RULE_RETRY_ATTEMPTS,
            maxEventAge: RULE_MAX_EVENT_AGE,
          }),
        ],
      });
    }
  }

  // ---- Stream mappings (L1: the L2 event source would add grants of its own) ---------------
  private buildStreams(): void {
    for (const spec of this.topology.streams.filter((s) => s.stack === this.topologyStack)) {
      const why = `streams of ${spec.function}`;
      for (const tableName of spec.tables) {
        const mapping = new lambda.CfnEventSourceMapping(this, `${pascal(spec.function)}${pascal(tableName)}StreamMapping`, {
          functionName: this.aliasArn(spec.function),
          eventSourceArn: this.tableStreamArn(tableName, why),
          startingPosition: 'TRIM_HORIZON',
          batchSize: STREAM_BATCH_SIZE,
          maximumBatchingWindowInSeconds: STREAM_BATCHING_WINDOW_S,
          bisectBatchOnFunctionError: true,
          maximumRetryAttempts: STREAM_MAX_RETRIES,
          functionResponseTypes: ['ReportBatchItemFailures'],
          destinationConfig: { onFailure: { destination: this.failureQueueArn(spec.function) } },
        });
        // Lambda checks, when it creates a mapping, that the function's role may read the
        // stream: for a platform function that grant is this stack's policy.
        const policy = this.foreignPolicies.get(spec.function);
        if (policy) mapping.addResourceDependency(policy);
      }
    }
  }

  // ---- Schedules (default bus): the sweeper, told which tables to sweep; a slice's jobs -------
  private buildSchedules(): void {
    for (const spec of this.topology.schedules.filter((s) => s.stack === this.topologyStack)) {
      const id = `${pascal(spec.function)}${pascal(this.topologyStack)}Schedule`;
      // A constant input naming the tables it sweeps by their physical names:
      // {"tables":{"checkup":"${CheckupTable}",...}} as an Fn::Sub.
      const variables: Record<string, string> = {};
      const tables: Record<string, string> = {};
      for (const t of spec.tables) {
        const variable = `${pascal(t)}Table`;
        variables[variable] = this.tableName(t);
        tables[t] = '${' + variable + '}';
      }
      const target = this.aliasArn(spec.function);
      const rule = new events.CfnRule(this, id, {
        description: spec.tables.length
          ? `${spec.function}, ${spec.expression}: sweeps ${spec.tables.join(', ')}`
          : `${spec.function}, ${spec.expression}`,
        scheduleExpression: spec.expression,
        state: 'ENABLED',
        targets: [
          {
            id: spec.function,
            arn: target,
            // A job on no table gets the constant as it is (an Fn::Sub without variables is
            // cfn-lint's W1020).
            input: spec.tables.length ? Fn.sub(JSON.stringify({ tables }), variables) : JSON.stringify({ tables }),
            retryPolicy: {
              maximumRetryAttempts: SCHEDULE_RETRY_ATTEMPTS,
              maximumEventAgeInSeconds: SCHEDULE_MAX_EVENT_AGE_S,
            },
          },
        ],
      });
      const permission = new lambda.CfnPermission(this, `${id}Permission`, {
        action: 'lambda:InvokeFunction',
        functionName: target,
        principal: 'events.amazonaws.com',
        sourceArn: rule.attrArn,
      });
      // No sweep before the sweeper may touch these tables.
      const policy = this.foreignPolicies.get(spec.function);
      if (policy) {
        rule.addResourceDependency(policy);
        permission.addResourceDependency(policy);
      }
    }
  }

  // ---- Routes on the HTTP API (raw: the API may be another stack's) --------------------------
  private buildRoutes(): void {
    const routes = this.topology.routes.filter((r) => r.stack === this.topologyStack);
    if (routes.length === 0) return;
    const apiId = this.platformValue(Key.httpApiId);
    const methods = new Set<string>(Object.values(apigwv2.HttpMethod));
    const integrations = new Map<string, apigwv2.CfnIntegration>();
    for (const route of routes) {
      const key = `${route.method} ${route.path}`;
      if (!methods.has(route.method)) throw new Error(`route ${key}: unknown method`);
      const fn = route.function;
      if (!this.aliases.has(fn)) throw new Error(`route ${key}: its function ${fn} is not in stack ${this.topologyStack}`);
      let integration = integrations.get(fn);
      if (!integration) {
        // One integration and one invoke permission per function, for all its routes.
        integration = new apigwv2.CfnIntegration(this, `${pascal(fn)}Integration`, {
          apiId,
          integrationType: 'AWS_PROXY',
          integrationUri: this.aliasArn(fn),
          payloadFormatVersion: '2.0',
        });
        integrations.set(fn, integration);
        new lambda.CfnPermission(this, `${pascal(fn)}ApiPermission`, {
          action: 'lambda:InvokeFunction',
          functionName: this.aliasArn(fn),
          principal: 'apigateway.amazonaws.com',
          sourceArn: Fn.sub('arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${ApiId}/*', {
            ApiId: apiId,
          }),
        });
      }
      new apigwv2.CfnRoute(this, `Route${pascal(route.method.toLowerCase())}${pascal(route.path)}`, {
        apiId,
        routeKey: key,
        target: `integrations/${integration.ref}`,
        ...(route.public
          ? { authorizationType: 'NONE' }
          : { authorizationType: 'JWT', authorizerId: this.platformValue(Key.httpApiAuthorizerId) }),
      });
    }
  }
}
