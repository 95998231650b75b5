// What-if for the benchmarks, never loaded by the product: makes
// @kubernetes/client-node 2.0 reuse one undici dispatcher (one TLS
// connection pool) per KubeConfig instead of building a new one, and so a new
// TLS connection, for every request. This is the change proposed for
// src/controller/runtime/kube-client.ts, applied from outside so that the
// benchmarks can measure it without editing src/.
//
//   node bench/run.ts --size full --only throughput \
//     --controller-node-args=--import=./bench/experiments/reuse-connections.mjs
//
// Plain JavaScript on purpose: loading a .ts preload would pull Node's type
// stripper into the controller process and change what is being measured.
import { KubeConfig } from '@kubernetes/client-node';

const original = KubeConfig.prototype.createDispatcher;
const dispatchers = new WeakMap();

KubeConfig.prototype.createDispatcher = function createDispatcher(cluster, agentOptions) {
  // One KubeConfig has one current cluster and user: one pool is enough.
  let dispatcher = dispatchers.get(this);
  if (dispatcher === undefined) {
    dispatcher = original.call(this, cluster, agentOptions);
    dispatchers.set(this, dispatcher);
  }
  return dispatcher;
};
