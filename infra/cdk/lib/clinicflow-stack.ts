// The clinicflow stack, built in loops from infra/topology.json. It is the same stack as
// infra/sam/template.yaml and follows "The rules both templates follow" in infra/README.md:
// the template test (tests/tests/infra_templates.rs) identifies resources by the
// `clinicflow:function` and `clinicflow:table` tags, so every function and table carries
// its topology name.
//
// No grant* helper, no addEventSource and no Lambda destination L2: they add IAM statements
// of their own, and a function's statements must be exactly its topology permissions (plus
// the two X-Ray actions tracing adds).
//
// Deletion, as in the SAM template: tables and the user pool are retained with the stack;
// log groups (named after the stack) and queues go with it.

import * as path from 'path';
import * as fs from 'fs';
import {
  Aws,
  CfnCondition,
  CfnOutput,
  CfnParameter,
  CfnResource,
  CfnRule,
  Duration,
  Fn,
  RemovalPolicy,
  Stack,
  StackProps,
  Tags,
} from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpJwtAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as codedeploy from 'aws-cdk-lib/aws-codedeploy';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { FunctionSpec, Permission, Topology } from './topology';

export interface ClinicflowStackProps extends StackProps {
  readonly topology: Topology;
  /** Where `<bootstrap>/bootstrap.zip` are (`cargo lambda build --release --arm64 --output-format zip`). */
  readonly lambdaDir: string;
}

/** The tag that names a function's topology entry. */
export const FUNCTION_TAG = 'clinicflow:function';
/** The tag that names a table's topology entry. */
export const TABLE_TAG = 'clinicflow:table';
/** The tag that names a queue's use (`dlq/<consumer>`, `failure/<function>`), as in the SAM template. */
export const QUEUE_TAG = 'clinicflow:queue';

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
// attempts (both maxima), then dead-letters it to the rule's own queue. An error the
// function returns is retried by Lambda (asynchronous invocation), then sent to the
// function's failure queue.
const RULE_RETRY_ATTEMPTS = 185;
const RULE_MAX_EVENT_AGE = Duration.hours(24);
const ASYNC_RETRY_ATTEMPTS = 2;
const ASYNC_MAX_EVENT_AGE_S = 6 * 60 * 60;
// A missed sweep is covered by the next one a minute later.
const SCHEDULE_RETRY_ATTEMPTS = 2;
const SCHEDULE_MAX_EVENT_AGE = Duration.seconds(60);
// 14 days, SQS's maximum: time to redrive.
const QUEUE_RETENTION = Duration.days(14);
// Consumers fail and retry by design while they wait for an earlier event: 5 errors a
// minute is more than that. Any other function failing at all is a defect.
const CONSUMER_ERRORS_ALARM = 5;

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

/** One JSON line per request: no Authorization header, no body, no query string. */
const ACCESS_LOG_FORMAT = JSON.stringify({
  requestId: '$context.requestId',
  ip: '$context.identity.sourceIp',
  requestTime: '$context.requestTime',
  routeKey: '$context.routeKey',
  status: '$context.status',
  protocol: '$context.protocol',
  responseLength: '$context.responseLength',
  latency: '$context.responseLatency',
  integrationLatency: '$context.integrationLatency',
  integrationError: '$context.integrationErrorMessage',
  authorizerError: '$context.authorizer.error',
});

/** `checkup-book` → `CheckupBook`, for readable logical IDs. */
function pascal(name: string): string {
  return name
    .split(/[^A-Za-z0-9]+/)
    .filter((part) => part.length > 0)
    .map((part) => part[0].toUpperCase() + part.slice(1))
    .join('');
}

/** `detail-type` → `detailType`: the L2 EventPattern's spelling of a pattern key. */
function camel(key: string): string {
  return key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

export class ClinicflowStack extends Stack {
  constructor(scope: Construct, id: string, props: ClinicflowStackProps) {
    super(scope, id, props);
    const { topology, lambdaDir } = props;

    // ---- Parameters (the SAM template's) ---------------------------------------------------
    const stage = new CfnParameter(this, 'Stage', {
      type: 'String',
      default: 'dev',
      allowedPattern: '^[a-z][a-z0-9-]{0,19}$',
      constraintDescription: 'lowercase letters, digits and hyphens, starting with a letter (at most 20)',
      description: 'Deployment stage (dev, staging, prod, ...); names the event bus and the user pool.',
    });
    const jwtIssuer = new CfnParameter(this, 'JwtIssuer', {
      type: 'String',
      default: '',
      allowedPattern: '^(|https://\\S+)$',
      constraintDescription: 'empty, or an https:// issuer URL',
      description:
        'Issuer (iss) of the JWTs the HTTP API accepts. Empty: the stack creates a Cognito user pool and client and trusts those.',
    });
    const jwtAudience = new CfnParameter(this, 'JwtAudience', {
      type: 'String',
      default: '',
      description:
        "Audience (aud / client_id) the HTTP API accepts. Required with JwtIssuer; ignored without it (the stack's own app client is then the audience).",
    });
    const deploymentType = new CfnParameter(this, 'DeploymentType', {
      type: 'String',
      default: 'Canary10Percent5Minutes',
      allowedValues: DEPLOYMENT_TYPES,
      description:
        "How CodeDeploy shifts each function's `live` alias to a new version (Canary10Percent5Minutes in production; AllAtOnce for a dev stack).",
    });
    const logRetentionDays = new CfnParameter(this, 'LogRetentionDays', {
      type: 'Number',
      default: '30',
      allowedValues: LOG_RETENTION_DAYS.map(String),
      description: "Retention of the functions' log groups and the API access log group.",
    });
    const apiRateLimit = new CfnParameter(this, 'ApiThrottlingRateLimit', {
      type: 'Number',
      default: 50,
      minValue: 1,
      description: "Steady-state requests per second per route on the HTTP API's $default stage.",
    });
    const apiBurstLimit = new CfnParameter(this, 'ApiThrottlingBurstLimit', {
      type: 'Number',
      default: 100,
      minValue: 1,
      description: "Burst of requests per route on the HTTP API's $default stage.",
    });
    const smsSenderId = new CfnParameter(this, 'SmsSenderId', {
      type: 'String',
      default: '',
      description: 'SNS SMS sender ID (AWS.SNS.SMS.SenderID) for sms-notifier; empty for none.',
    });
    const smsOriginationNumber = new CfnParameter(this, 'SmsOriginationNumber', {
      type: 'String',
      default: '',
      description: 'SNS SMS origination number (E.164) for sms-notifier; empty for none.',
    });

    // An external issuer without an audience would accept any token that issuer signs.
    new CfnRule(this, 'ExternalIssuerNeedsAudience', {
      ruleCondition: Fn.conditionNot(Fn.conditionEquals(jwtIssuer.valueAsString, '')),
      assertions: [
        {
          assert: Fn.conditionNot(Fn.conditionEquals(jwtAudience.valueAsString, '')),
          assertDescription: 'JwtAudience is required when JwtIssuer is set.',
        },
      ],
    });
    const createCognito = new CfnCondition(this, 'CreateCognito', {
      expression: Fn.conditionEquals(jwtIssuer.valueAsString, ''),
    });
    const isProd = new CfnCondition(this, 'IsProd', {
      expression: Fn.conditionEquals(stage.valueAsString, 'prod'),
    });

    /** `<stack>-<suffix>`: the names of alarms, as in the SAM template. */
    const stackScoped = (suffix: string) => `${Aws.STACK_NAME}-${suffix}`;

    /** A log group named after the stack, kept LogRetentionDays (a token: set on the L1). */
    const logGroup = (id: string, name: string): logs.LogGroup => {
      const group = new logs.LogGroup(this, id, { logGroupName: name, removalPolicy: RemovalPolicy.DESTROY });
      (group.node.defaultChild as logs.CfnLogGroup).retentionInDays = logRetentionDays.valueAsNumber;
      return group;
    };

    // ---- Tables ---------------------------------------------------------------------------
    const tables = new Map<string, dynamodb.Table>();
    for (const spec of topology.tables) {
      const table = new dynamodb.Table(this, `${pascal(spec.name)}Table`, {
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
        Fn.conditionIf(isProd.logicalId, true, false),
      );
      Tags.of(table).add(TABLE_TAG, spec.name);
      tables.set(spec.name, table);
    }
    const tableNamed = (name: string, why: string): dynamodb.Table => {
      const table = tables.get(name);
      if (!table) throw new Error(`${why}: no table ${name} in the topology`);
      return table;
    };

    // ---- Bus, rule dead-letter queues, function failure queues -----------------------------
    const busName = `clinicflow-${stage.valueAsString}`;
    const bus = new events.EventBus(this, 'EventBus', { eventBusName: busName });
    Tags.of(bus).add('clinicflow:bus', busName);

    const queue = (id: string, use: string): sqs.Queue => {
      const q = new sqs.Queue(this, id, {
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        retentionPeriod: QUEUE_RETENTION,
        removalPolicy: RemovalPolicy.DESTROY,
      });
      Tags.of(q).add(QUEUE_TAG, use);
      return q;
    };

    // One dead-letter queue per consumer, shared by its rules (each rule adds its own
    // statement to the queue's policy): one rollback alarm whatever the number of rules, so
    // a deployment group stays within CodeDeploy's 10 alarms.
    const dlqs = new Map<string, sqs.Queue>();
    for (const rule of topology.rules) {
      if (!dlqs.has(rule.target)) dlqs.set(rule.target, queue(`${pascal(rule.target)}Dlq`, `dlq/${rule.target}`));
    }

    // A function's failure queue takes what still fails after retries: its stream mappings'
    // batches (a stream consumer), or Lambda's asynchronous invocations of it (an EventBridge
    // consumer). It exists where the topology grants sqs:SendMessage on it.
    const streamFunctions = new Set(topology.streams.map((s) => s.function));
    const failureQueues = new Map<string, sqs.Queue>();
    for (const fn of topology.functions) {
      const named = fn.permissions.some((p) => p.resource === `failure-queue/${fn.name}`);
      if (!named && !streamFunctions.has(fn.name)) continue;
      if (!streamFunctions.has(fn.name) && fn.trigger !== 'events') {
        throw new Error(`function ${fn.name}: a failure queue, but no stream mapping or asynchronous trigger sends to it`);
      }
      failureQueues.set(fn.name, queue(`${pascal(fn.name)}FailureQueue`, `failure/${fn.name}`));
    }
    for (const fn of topology.functions) {
      for (const p of fn.permissions) {
        const m = /^failure-queue\/(.+)$/.exec(p.resource);
        if (m && m[1] !== fn.name) throw new Error(`function ${fn.name}: a grant on another function's failure queue (${p.resource})`);
      }
    }

    // ---- IAM: the topology's permissions, mapped to this stack's ARNs ----------------------
    const statementFor = (fn: FunctionSpec, grant: Permission): iam.PolicyStatement => {
      const why = `function ${fn.name}, grant on ${grant.resource}`;
      const r = grant.resource;
      const on = (resources: string[]) => new iam.PolicyStatement({ actions: grant.actions, resources });
      if (r === '*') return on(['*']);
      if (r === 'event-bus') return on([bus.eventBusArn]);
      if (r === 'not:sns-topic') {
        // Direct SMS only: sns:Publish on anything but a topic.
        return new iam.PolicyStatement({
          actions: grant.actions,
          notResources: [Fn.sub('arn:${AWS::Partition}:sns:*:*:*')],
        });
      }
      let m = /^table\/([^/]+)$/.exec(r);
      if (m) return on([tableNamed(m[1], why).tableArn]);
      m = /^table\/([^/]+)\/index\/([^/]+)$/.exec(r);
      if (m) return on([`${tableNamed(m[1], why).tableArn}/index/${m[2]}`]);
      m = /^table\/([^/]+)\/stream$/.exec(r);
      if (m) {
        const streamArn = tableNamed(m[1], why).tableStreamArn;
        if (!streamArn) throw new Error(`${why}: table ${m[1]} has no stream`);
        return on([streamArn]);
      }
      m = /^failure-queue\/([^/]+)$/.exec(r);
      if (m) {
        const failures = failureQueues.get(m[1]);
        if (!failures) throw new Error(`${why}: ${m[1]} has no failure queue`);
        return on([failures.queueArn]);
      }
      throw new Error(`${why}: unknown resource kind (map it in statementFor, infra/cdk/lib/clinicflow-stack.ts)`);
    };

    const environmentFor = (fn: FunctionSpec): Record<string, string> => {
      const env: Record<string, string> = {};
      for (const [name, value] of Object.entries(fn.environment)) {
        const m = /^table\/([^/]+)$/.exec(value);
        if (m) env[name] = tableNamed(m[1], `function ${fn.name}, ${name}`).tableName;
        else if (value === 'event-bus') env[name] = bus.eventBusName;
        else throw new Error(`function ${fn.name}: ${name}=${value} names no table or the bus`);
      }
      return env;
    };

    // Not in the topology: the SMS origination settings are deployment parameters.
    const extraEnvironment: Record<string, Record<string, string>> = {
      'sms-notifier': {
        SMS_SENDER_ID: smsSenderId.valueAsString,
        SMS_ORIGINATION_NUMBER: smsOriginationNumber.valueAsString,
      },
    };
    for (const name of Object.keys(extraEnvironment)) {
      if (!topology.functions.some((f) => f.name === name)) {
        throw new Error(`extra environment for ${name}, which the topology does not have`);
      }
    }

    // ---- Alarms ----------------------------------------------------------------------------
    const AT_LEAST = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD;
    const ABOVE = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD;
    /** A single-metric alarm; no data is not a breach. */
    const alarm = (
      id: string,
      name: string,
      description: string,
      metric: cloudwatch.Metric,
      comparisonOperator: cloudwatch.ComparisonOperator,
      threshold: number,
      periods = 1,
    ) =>
      new cloudwatch.Alarm(this, id, {
        alarmName: stackScoped(name),
        alarmDescription: description,
        metric,
        comparisonOperator,
        threshold,
        evaluationPeriods: periods,
        datapointsToAlarm: periods,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    const queueDepth = (q: sqs.Queue) =>
      new cloudwatch.Metric({
        namespace: 'AWS/SQS',
        metricName: 'ApproximateNumberOfMessagesVisible',
        dimensionsMap: { QueueName: q.queueName },
        period: Duration.minutes(1),
        statistic: cloudwatch.Stats.MAXIMUM,
      });

    // ---- CodeDeploy: one application and one service role for every live alias ------------
    const deployApplication = new codedeploy.LambdaApplication(this, 'DeploymentApplication');
    const deployRole = new iam.Role(this, 'DeploymentRole', {
      assumedBy: new iam.ServicePrincipal('codedeploy.amazonaws.com'),
      description: 'CodeDeploy shifts traffic between versions behind the live aliases',
    });
    const deploymentConfig = codedeploy.LambdaDeploymentConfig.fromLambdaDeploymentConfigName(
      this,
      'DeploymentConfig',
      Fn.sub('CodeDeployDefault.Lambda${DeploymentType}', { DeploymentType: deploymentType.valueAsString }),
    );

    // ---- Functions ------------------------------------------------------------------------
    const aliases = new Map<string, lambda.Alias>();
    for (const spec of topology.functions) {
      const id = pascal(spec.name);
      // One zip per bootstrap (a slice's, or the platform's), shared by its functions as one
      // asset; the handler tells the binary which function it is (`_HANDLER`).
      const zip = path.join(lambdaDir, spec.bootstrap, 'bootstrap.zip');
      if (!fs.existsSync(zip)) {
        throw new Error(`${zip} is missing: build the functions first with ./scripts/lambda-build.sh`);
      }

      const role = new iam.Role(this, `${id}Role`, {
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        description: `Role of the ${spec.name} function: exactly its topology permissions`,
        managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSLambdaBasicExecutionRole')],
        inlinePolicies: {
          topology: new iam.PolicyDocument({ statements: spec.permissions.map((p) => statementFor(spec, p)) }),
        },
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
        logGroup: logGroup(`${id}LogGroup`, `/aws/lambda/${Aws.STACK_NAME}/${spec.name}`),
        role,
        environment: { ...environmentFor(spec), ...(extraEnvironment[spec.name] ?? {}) },
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
      aliases.set(spec.name, alias);

      // Rollout alarms: a deployment that sets one off rolls back.
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
        alarm(
          `${id}ErrorsAlarm`,
          `${spec.name}-errors`,
          consumer
            ? `${spec.name} (alias live): deliveries failed (retryable errors included; ${CONSUMER_ERRORS_ALARM} a minute is more than waiting for an earlier event)`
            : `${spec.name} (alias live): invocations failed (a crash or a timeout)`,
          lambdaMetric('Errors', cloudwatch.Stats.SUM),
          AT_LEAST,
          consumer ? CONSUMER_ERRORS_ALARM : 1,
        ),
        alarm(
          `${id}ThrottlesAlarm`,
          `${spec.name}-throttles`,
          `${spec.name} (alias live): invocations were throttled`,
          lambdaMetric('Throttles', cloudwatch.Stats.SUM),
          AT_LEAST,
          1,
        ),
      ];
      const dlq = dlqs.get(spec.name);
      if (dlq) {
        alarms.push(
          alarm(
            `${id}DlqDepthAlarm`,
            `${spec.name}-dlq-depth`,
            `${spec.name}: events its rules dead-lettered after their retries`,
            queueDepth(dlq),
            ABOVE,
            0,
          ),
        );
      }
      const failures = failureQueues.get(spec.name);
      if (streamFunctions.has(spec.name)) {
        alarms.push(
          alarm(
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
      if (failures) {
        alarms.push(
          alarm(
            `${id}FailureQueueDepthAlarm`,
            `${spec.name}-failure-queue-depth`,
            consumer
              ? `${spec.name}: events that failed every attempt Lambda makes`
              : `${spec.name}: stream batches that exhausted their retries`,
            queueDepth(failures),
            ABOVE,
            0,
          ),
        );
      }
      if (alarms.length > 10) throw new Error(`${spec.name}: ${alarms.length} alarms, CodeDeploy takes at most 10`);

      new codedeploy.LambdaDeploymentGroup(this, `${id}DeploymentGroup`, {
        application: deployApplication,
        alias,
        deploymentConfig,
        role: deployRole,
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

      if (spec.trigger === 'schedule') {
        new events.Rule(this, `${id}Schedule`, {
          description: `${spec.name}, ${spec.schedule}`,
          schedule: events.Schedule.expression(spec.schedule!),
          targets: [
            new targets.LambdaFunction(alias, {
              retryAttempts: SCHEDULE_RETRY_ATTEMPTS,
              maxEventAge: SCHEDULE_MAX_EVENT_AGE,
            }),
          ],
        });
      }
    }
    const aliasOf = (name: string, why: string): lambda.Alias => {
      const alias = aliases.get(name);
      if (!alias) throw new Error(`${why}: no function ${name} in the topology`);
      return alias;
    };

    // ---- Rules on the bus -----------------------------------------------------------------
    for (const spec of topology.rules) {
      const pattern: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(spec.pattern)) pattern[camel(key)] = value;
      new events.Rule(this, `${pascal(spec.name)}Rule`, {
        ruleName: spec.name,
        description: `${spec.name}: delivers to ${spec.target}`,
        eventBus: bus,
        eventPattern: pattern as events.EventPattern,
        targets: [
          new targets.LambdaFunction(aliasOf(spec.target, `rule ${spec.name}`), {
            deadLetterQueue: dlqs.get(spec.target),
            retryAttempts: RULE_RETRY_ATTEMPTS,
            maxEventAge: RULE_MAX_EVENT_AGE,
          }),
        ],
      });
    }

    // ---- Stream mappings (L1: the L2 event source would add grants of its own) -------------
    for (const spec of topology.streams) {
      const alias = aliasOf(spec.function, `streams of ${spec.function}`);
      for (const tableName of spec.tables) {
        const table = tableNamed(tableName, `streams of ${spec.function}`);
        new lambda.CfnEventSourceMapping(this, `${pascal(spec.function)}${pascal(tableName)}StreamMapping`, {
          functionName: alias.functionArn,
          eventSourceArn: table.tableStreamArn!,
          startingPosition: 'TRIM_HORIZON',
          batchSize: STREAM_BATCH_SIZE,
          maximumBatchingWindowInSeconds: STREAM_BATCHING_WINDOW_S,
          bisectBatchOnFunctionError: true,
          maximumRetryAttempts: STREAM_MAX_RETRIES,
          functionResponseTypes: ['ReportBatchItemFailures'],
          destinationConfig: { onFailure: { destination: failureQueues.get(spec.function)!.queueArn } },
        });
      }
    }

    // ---- Cognito, only when no external issuer is given ------------------------------------
    // Staff and patients alike are created by an administrator (AdminCreateUser +
    // AdminAddUserToGroup): every route needs a group, and putting a self-registered user in
    // one would take a post-confirmation trigger, a function the topology does not have.
    const conditional = <T extends CfnResource>(resource: T): T => {
      resource.cfnOptions.condition = createCognito;
      return resource;
    };
    const userPool = conditional(
      new cognito.CfnUserPool(this, 'UserPool', {
        userPoolName: `clinicflow-${stage.valueAsString}`,
        usernameAttributes: ['email'],
        usernameConfiguration: { caseSensitive: false },
        autoVerifiedAttributes: ['email'],
        adminCreateUserConfig: { allowAdminCreateUserOnly: true },
        policies: {
          passwordPolicy: {
            minimumLength: 12,
            requireLowercase: true,
            requireUppercase: true,
            requireNumbers: true,
            requireSymbols: true,
            temporaryPasswordValidityDays: 3,
          },
        },
        mfaConfiguration: 'OPTIONAL',
        enabledMfas: ['SOFTWARE_TOKEN_MFA'],
        accountRecoverySetting: { recoveryMechanisms: [{ name: 'verified_email', priority: 1 }] },
        deletionProtection: Fn.conditionIf(isProd.logicalId, 'ACTIVE', 'INACTIVE').toString(),
        userPoolTags: { 'clinicflow:stage': stage.valueAsString },
      }),
    );
    userPool.applyRemovalPolicy(RemovalPolicy.RETAIN);
    // A public client (no secret): SRP sign-in and refresh only, no password over the wire.
    const userPoolClient = conditional(
      new cognito.CfnUserPoolClient(this, 'UserPoolClient', {
        userPoolId: userPool.ref,
        clientName: `clinicflow-${stage.valueAsString}-app`,
        generateSecret: false,
        explicitAuthFlows: ['ALLOW_USER_SRP_AUTH', 'ALLOW_REFRESH_TOKEN_AUTH'],
        preventUserExistenceErrors: 'ENABLED',
        enableTokenRevocation: true,
        accessTokenValidity: 60,
        idTokenValidity: 60,
        refreshTokenValidity: 30,
        tokenValidityUnits: { accessToken: 'minutes', idToken: 'minutes', refreshToken: 'days' },
      }),
    );
    // One group per topology role; the group name is the role (the `cognito:groups` claim).
    for (const role of topology.roles) {
      conditional(
        new cognito.CfnUserPoolGroup(this, `${pascal(role)}Group`, {
          userPoolId: userPool.ref,
          groupName: role,
          description: `clinicflow role ${role} (the cognito:groups claim)`,
        }),
      );
    }

    // ---- HTTP API -------------------------------------------------------------------------
    const issuer = Fn.conditionIf(
      createCognito.logicalId,
      Fn.sub('https://cognito-idp.${AWS::Region}.${AWS::URLSuffix}/${Pool}', { Pool: userPool.ref }),
      jwtIssuer.valueAsString,
    ).toString();
    const audience = Fn.conditionIf(createCognito.logicalId, userPoolClient.ref, jwtAudience.valueAsString).toString();
    const jwt = new HttpJwtAuthorizer('JwtAuthorizer', issuer, {
      authorizerName: 'JwtAuthorizer',
      identitySource: ['$request.header.Authorization'],
      jwtAudience: [audience],
    });
    const open = new apigwv2.HttpNoneAuthorizer();

    const api = new apigwv2.HttpApi(this, 'HttpApi', {
      apiName: `clinicflow-${stage.valueAsString}`,
      description: `clinicflow ${stage.valueAsString} API`,
      createDefaultStage: false,
    });
    Tags.of(api).add('clinicflow:api', `clinicflow-${stage.valueAsString}`);
    const accessLogs = logGroup('HttpApiAccessLogGroup', `/aws/apigateway/${Aws.STACK_NAME}/access`);
    const defaultStage = new apigwv2.HttpStage(this, 'HttpApiDefaultStage', {
      httpApi: api,
      stageName: '$default',
      autoDeploy: true,
      detailedMetricsEnabled: true,
      throttle: { rateLimit: apiRateLimit.valueAsNumber, burstLimit: apiBurstLimit.valueAsNumber },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(accessLogs),
        format: apigw.AccessLogFormat.custom(ACCESS_LOG_FORMAT),
      },
    });

    const methods = new Set<string>(Object.values(apigwv2.HttpMethod));
    const integrations = new Map<string, HttpLambdaIntegration>();
    for (const route of topology.routes) {
      if (!methods.has(route.method)) throw new Error(`route ${route.method} ${route.path}: unknown method`);
      let integration = integrations.get(route.function);
      if (!integration) {
        integration = new HttpLambdaIntegration(
          `${pascal(route.function)}Integration`,
          aliasOf(route.function, `route ${route.method} ${route.path}`),
        );
        integrations.set(route.function, integration);
      }
      api.addRoutes({
        path: route.path,
        methods: [route.method as apigwv2.HttpMethod],
        integration,
        authorizer: route.public ? open : jwt,
      });
    }

    // ---- Outputs ---------------------------------------------------------------------------
    new CfnOutput(this, 'ApiUrl', { value: defaultStage.url, description: 'Base URL of the HTTP API ($default stage)' });
    new CfnOutput(this, 'UserPoolId', {
      value: userPool.ref,
      condition: createCognito,
      description: 'The Cognito user pool (only when the stack creates it)',
    });
    new CfnOutput(this, 'UserPoolClientId', {
      value: userPoolClient.ref,
      condition: createCognito,
      description: "The Cognito app client, the API's JWT audience (only when the stack creates it)",
    });
    new CfnOutput(this, 'EventBusName', {
      value: bus.eventBusName,
      description: 'The EventBridge bus the functions publish to',
    });
  }
}
