// Runs the built Mastra server (.mastra/output/index.mjs) in WORKERS Node processes sharing
// one port (node:cluster): one Node process uses one core, so this is the two-core figure.
import cluster from 'node:cluster';

const workers = Number(process.env.WORKERS ?? 2);
if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('exit', (worker, code) => console.error(`mastra worker ${worker.process.pid} exited ${code}`));
} else {
  await import(new URL('./.mastra/output/index.mjs', import.meta.url).href);
}
