// The gRPC service definitions of shoal's own contracts, loaded from the .proto files: the one
// place clients (the CLI, the agent, the join client) and servers take them from, so no client
// imports a server's implementation to learn a contract.
import type * as grpc from '@grpc/grpc-js';
import { loadProto } from './load.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
let defs: Record<string, grpc.ServiceDefinition> | undefined;

function load(): Record<string, grpc.ServiceDefinition> {
  if (!defs) {
    const c = (loadProto('control/control.proto') as any).shoal.control.v1;
    const ca = (loadProto('ca/ca.proto') as any).shoal.ca.v1;
    const d = (loadProto('dispatcher/dispatcher.proto') as any).shoal.dispatcher.v1;
    const l = (loadProto('control/local.proto') as any).shoal.local.v1;
    defs = { control: c.Control.service, raft: c.RaftMembership.service, logBroker: c.LogBroker.service, ca: ca.CA.service, dispatcher: d.Dispatcher.service, local: l.Local.service };
  }
  return defs;
}

export const controlDef = () => load().control!;
export const raftMembershipDef = () => load().raft!;
export const logBrokerDef = () => load().logBroker!;
export const caDef = () => load().ca!;
export const dispatcherDef = () => load().dispatcher!;
export const localDef = () => load().local!;
