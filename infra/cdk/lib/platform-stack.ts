// The platform's stack (`clinicflow-<stage>-platform`), deployed first: the bus, the HTTP
// API with its JWT authorizer and stage, the Cognito user pool, plus the platform's own part
// of the topology (its tables, functions and rules; see lib/clinicflow-stack.ts). It imports
// nothing, and exports (lib/cross-stack.ts) exactly what the flows' stacks import.

import { Aws, CfnCondition, CfnParameter, CfnResource, CfnRule, Fn, RemovalPolicy, Tags } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as events from 'aws-cdk-lib/aws-events';
import { Construct } from 'constructs';
import { ClinicflowStack, ClinicflowStackProps } from './clinicflow-stack';
import { Key, exportName } from './cross-stack';
import { FunctionSpec, PLATFORM_STACK, pascal } from './topology';

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

export type PlatformStackProps = Omit<ClinicflowStackProps, 'stack'>;

export class PlatformStack extends ClinicflowStack {
  private readonly bus: events.EventBus;
  private readonly smsSenderId: CfnParameter;
  private readonly smsOriginationNumber: CfnParameter;

  constructor(scope: Construct, id: string, props: PlatformStackProps) {
    super(scope, id, { ...props, stack: PLATFORM_STACK });
    const stage = this.stage.valueAsString;

    // ---- Parameters beyond the ones every stack has (the SAM template's) -------------------
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
    this.smsSenderId = new CfnParameter(this, 'SmsSenderId', {
      type: 'String',
      default: '',
      description: 'SNS SMS sender ID (AWS.SNS.SMS.SenderID) for sms-notifier; empty for none.',
    });
    this.smsOriginationNumber = new CfnParameter(this, 'SmsOriginationNumber', {
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

    // ---- The bus -------------------------------------------------------------------------
    const busName = `clinicflow-${stage}`;
    this.bus = new events.EventBus(this, 'EventBus', { eventBusName: busName });
    Tags.of(this.bus).add('clinicflow:bus', busName);
    this.exportable.set(Key.eventBusName, this.bus.eventBusName);
    this.exportable.set(Key.eventBusArn, this.bus.eventBusArn);

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
        userPoolName: `clinicflow-${stage}`,
        usernameAttributes: ['email'],
        usernameConfiguration: { caseSensitive: false },
        autoVerifiedAttributes: ['email'],
        // A staff member's site (test site, isolation centre, store): the `custom:site`
        // claim of the ID token; set by an administrator only.
        schema: [
          {
            name: 'site',
            attributeDataType: 'String',
            mutable: true,
            stringAttributeConstraints: { minLength: '1', maxLength: '64' },
          },
        ],
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
        deletionProtection: Fn.conditionIf(this.isProd.logicalId, 'ACTIVE', 'INACTIVE').toString(),
        userPoolTags: { 'clinicflow:stage': stage },
      }),
    );
    userPool.applyRemovalPolicy(RemovalPolicy.RETAIN);
    // A public client (no secret): SRP sign-in and refresh only, no password over the wire.
    const userPoolClient = conditional(
      new cognito.CfnUserPoolClient(this, 'UserPoolClient', {
        userPoolId: userPool.ref,
        clientName: `clinicflow-${stage}-app`,
        generateSecret: false,
        explicitAuthFlows: ['ALLOW_USER_SRP_AUTH', 'ALLOW_REFRESH_TOKEN_AUTH'],
        preventUserExistenceErrors: 'ENABLED',
        // Users may change their email, never their site (without this list every
        // attribute, custom:site included, is writable by its user).
        readAttributes: ['email', 'email_verified', 'custom:site'],
        writeAttributes: ['email'],
        enableTokenRevocation: true,
        accessTokenValidity: 60,
        idTokenValidity: 60,
        refreshTokenValidity: 30,
        tokenValidityUnits: { accessToken: 'minutes', idToken: 'minutes', refreshToken: 'days' },
      }),
    );
    // One group per topology role; the group name is the role (the `cognito:groups` claim).
    for (const role of this.topology.roles) {
      conditional(
        new cognito.CfnUserPoolGroup(this, `${pascal(role)}Group`, {
          userPoolId: userPool.ref,
          groupName: role,
          description: `clinicflow role ${role} (the cognito:groups claim)`,
        }),
      );
    }

    // ---- HTTP API: the API, its JWT authorizer and its $default stage ----------------------
    // Every stack adds its own routes, integrations and invoke permissions to it (raw
    // resources, lib/clinicflow-stack.ts); the auto-deployed stage serves them as they come.
    const api = new apigwv2.HttpApi(this, 'HttpApi', {
      apiName: `clinicflow-${stage}`,
      description: `clinicflow ${stage} API`,
      createDefaultStage: false,
    });
    Tags.of(api).add('clinicflow:api', `clinicflow-${stage}`);
    const issuer = Fn.conditionIf(
      createCognito.logicalId,
      Fn.sub('https://cognito-idp.${AWS::Region}.${AWS::URLSuffix}/${Pool}', { Pool: userPool.ref }),
      jwtIssuer.valueAsString,
    ).toString();
    const audience = Fn.conditionIf(createCognito.logicalId, userPoolClient.ref, jwtAudience.valueAsString).toString();
    const authorizer = new apigwv2.HttpAuthorizer(this, 'JwtAuthorizer', {
      httpApi: api,
      authorizerName: 'JwtAuthorizer',
      type: apigwv2.HttpAuthorizerType.JWT,
      identitySource: ['$request.header.Authorization'],
      jwtIssuer: issuer,
      jwtAudience: [audience],
    });
    const accessLogs = this.logGroup('HttpApiAccessLogGroup', `/aws/apigateway/${Aws.STACK_NAME}/access`);
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
    this.exportable.set(Key.httpApiId, api.apiId);
    this.exportable.set(Key.httpApiAuthorizerId, authorizer.authorizerId);

    // ---- The platform's tables, functions, rules, routes -----------------------------------
    this.buildTopology();

    // ---- Outputs ---------------------------------------------------------------------------
    this.output('ApiUrl', defaultStage.url, 'Base URL of the HTTP API ($default stage)');
    this.output('UserPoolId', userPool.ref, 'The Cognito user pool (only when the stack creates it)').condition =
      createCognito;
    this.output(
      'UserPoolClientId',
      userPoolClient.ref,
      "The Cognito app client, the API's JWT audience (only when the stack creates it)",
    ).condition = createCognito;
    this.output(Key.eventBusName, this.bus.eventBusName, 'The EventBridge bus the functions publish to');
  }

  protected override platformValue(key: string): string {
    const value = this.exportable.get(key);
    if (value === undefined) throw new Error(`the platform's stack has nothing to export as ${key}`);
    return value;
  }

  protected override eventBus(): events.IEventBus {
    return this.bus;
  }

  /** The notifier's SMS origination settings are deployment parameters, not topology. */
  protected override extraEnvironment(spec: FunctionSpec): Record<string, string> {
    if (!spec.permissions.some((p) => p.resource === 'not:sns-topic')) return {};
    return {
      SMS_SENDER_ID: this.smsSenderId.valueAsString,
      SMS_ORIGINATION_NUMBER: this.smsOriginationNumber.valueAsString,
    };
  }

  /**
   * Exports exactly `keys` (what the flows' stacks import), each as the output `<Key>` named
   * `clinicflow-${Stage}-<Key>`; an existing output of that name (EventBusName) gets the export.
   */
  exportForFlows(keys: Iterable<string>): void {
    for (const key of [...new Set(keys)].sort()) {
      const value = this.platformValue(key);
      const output =
        this.outputs.get(key) ?? this.output(key, value, `Imported by the flows' stacks as clinicflow-<Stage>-${key}`);
      output.exportName = exportName(key);
    }
  }
}
