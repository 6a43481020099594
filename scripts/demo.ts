// Ships example/ to the lab through dist/index.js, the way a release workflow would:
// `command: build` (VERSION files → images pushed), then `command: deploy` (infra layer, then app
// layer, each behind the health gate), over SSH with the pinned host key.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ActionRun, runAction } from '../__tests__/helpers/action';
import { EXAMPLE_DIR, docker, labEnv } from '../__tests__/helpers/lab';

const lab = labEnv();
const inputs: Record<string, string> = {
  registry: lab.registry,
  'image-prefix': 'demo',
  host: lab.host,
  port: String(lab.port),
  user: lab.user,
  'ssh-key': lab.sshKey,
  'known-hosts': lab.knownHosts,
  stacks: 'example-infra=stacks/infra.yml\nexample-app=stacks/app.yml',
  'remote-dir': '.deploy-action-demo',
};
// One commit for both steps, as in one workflow run.
const env = { GITHUB_SHA: 'de0de0de0de0de0de0de0de0de0de0de0de0de0' };
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'deploy-action-demo-'));

function show(step: string, r: ActionRun): void {
  const log = path.join(out, `${step}.log`);
  const summary = path.join(out, `${step}-summary.md`);
  fs.writeFileSync(log, r.maskedLog);
  fs.writeFileSync(summary, r.summary);
  console.log(`\n--- ${step}: exit ${r.code}, result ${r.outputs.result ?? '?'} in ${r.outputs.duration ?? '?'} s`);
  for (const [k, v] of Object.entries(r.outputs))
    if (k !== 'result' && k !== 'duration') console.log(`    ${k} = ${v}`);
  console.log(`    job log: ${log}\n    job summary: ${summary}`);
  if (r.code !== 0) {
    console.log(r.maskedLog.split('\n').slice(-30).join('\n'));
    process.exit(1);
  }
}

(async () => {
  console.log(
    `Example app: ${EXAMPLE_DIR} (service/web, service/api with VERSION files; stacks/infra.yml, stacks/app.yml)`,
  );
  console.log(
    `"VPS": ${lab.user}@${lab.host}:${lab.port} (host key pinned from ${lab.knownHostsFile}); registry ${lab.registry}`,
  );
  const build = await runAction({ inputs: { ...inputs, command: 'build' }, cwd: EXAMPLE_DIR, env });
  show('build', build);
  // The swarm must pull from the registry, as a real VPS would: drop the runner's local copies.
  for (const ref of Object.values(JSON.parse(build.outputs.images) as Record<string, string>))
    await docker(['rmi', '--force', ref.split('@')[0]]);
  const deploy = await runAction({ inputs: { ...inputs, command: 'deploy' }, cwd: EXAMPLE_DIR, env });
  show('deploy', deploy);
  console.log('\n' + deploy.summary.trim());
  const ids = (await docker(['ps', '-q', '--filter', 'label=com.docker.swarm.service.name=example-app_web'])).stdout
    .trim()
    .split('\n')
    .filter(Boolean);
  const page = ids[0]
    ? (await docker(['exec', ids[0], 'wget', '-q', '-O', '-', 'http://127.0.0.1:8080/version'])).stdout.trim()
    : '(no task)';
  console.log(`\nexample-app_web answers /version with: ${page}`);
  console.log(
    'Look around: docker service ls; docker stack ps example-app; the host keeps releases in ~/.deploy-action-demo/stacks/.',
  );
  console.log(
    'Broken releases (crash, failing healthcheck, crash after monitor) and rollbacks are exercised by npm test: see __tests__/lab/.',
  );
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
