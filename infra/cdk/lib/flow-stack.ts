// A flow's stack (`clinicflow-<stage>-<flow>`), one per flow of the topology, deployed after
// the platform's: the flow's tables, functions, rules, stream mappings, schedules and routes
// (lib/clinicflow-stack.ts). What it uses of the platform (the bus, the API and its
// authorizer, shared tables, the projector's and the sweeper's aliases, roles and failure
// queue) it imports by name from the platform's exports (lib/cross-stack.ts); it exports
// nothing. Its parameters are the three it uses: Stage, DeploymentType, LogRetentionDays.

import * as events from 'aws-cdk-lib/aws-events';
import { Construct } from 'constructs';
import { ClinicflowStack, ClinicflowStackProps } from './clinicflow-stack';
import { Key, importValue } from './cross-stack';
import { PLATFORM_STACK } from './topology';

export class FlowStack extends ClinicflowStack {
  private readonly imported = new Set<string>();
  private bus?: events.IEventBus;

  constructor(scope: Construct, id: string, props: ClinicflowStackProps) {
    super(scope, id, props);
    if (props.stack === PLATFORM_STACK) throw new Error('the platform is not a flow');
    this.buildTopology();
  }

  /** The keys of the platform's exports this stack imports. */
  get importedKeys(): string[] {
    return [...this.imported].sort();
  }

  protected override platformValue(key: string): string {
    this.imported.add(key);
    return importValue(key);
  }

  protected override eventBus(): events.IEventBus {
    // The platform's bus by its imported name (no resource of its own).
    this.bus ??= events.EventBus.fromEventBusName(this, 'PlatformEventBus', this.platformValue(Key.eventBusName));
    return this.bus;
  }
}
