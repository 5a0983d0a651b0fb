// Constants of the private DHT that modules without hyperdht (the CLI, the lab) need: importing
// bootstrap-nodes.ts would load hyperdht's native modules into every CLI command.
export const DEFAULT_BOOTSTRAP_PORT = 49737;
/** hyperdht needs at least three persistent nodes for peers to connect (README.md). */
export const MIN_NODES = 3;
