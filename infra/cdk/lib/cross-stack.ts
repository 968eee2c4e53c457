// The contract between the platform's stack and the flows' stacks: named exports
// `clinicflow-${Stage}-<Key>` of the platform's stack, imported by name in the flows'
// (never CDK's automatic cross-stack references, whose export names CDK makes up).
// The SAM templates use the same keys and the same `Fn::Sub` shape; the template test
// resolves an import by matching that string.

import { Fn } from 'aws-cdk-lib';
import { pascal } from './topology';

/** The keys of the platform's exports. */
export const Key = {
  eventBusName: 'EventBusName',
  eventBusArn: 'EventBusArn',
  httpApiId: 'HttpApiId',
  httpApiAuthorizerId: 'HttpApiAuthorizerId',
  tableName: (table: string) => `${pascal(table)}TableName`,
  tableArn: (table: string) => `${pascal(table)}TableArn`,
  aliasArn: (fn: string) => `${pascal(fn)}AliasArn`,
  roleName: (fn: string) => `${pascal(fn)}RoleName`,
  failureQueueArn: (fn: string) => `${pascal(fn)}FailureQueueArn`,
} as const;

/** `{"Fn::Sub": "clinicflow-${Stage}-<key>"}`: an export's name, in the stack's own Stage. */
export function exportName(key: string): string {
  if (!/^[A-Za-z0-9]+$/.test(key)) throw new Error(`export key ${key} is not alphanumeric`);
  return Fn.sub('clinicflow-${Stage}-' + key);
}

/** `{"Fn::ImportValue": {"Fn::Sub": "clinicflow-${Stage}-<key>"}}`. */
export function importValue(key: string): string {
  return Fn.importValue(exportName(key));
}
