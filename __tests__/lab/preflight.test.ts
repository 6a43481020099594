// Pre-flight checks on the real path (issue 4): a stack with an error is refused before anything
// reaches the host; `command: check` runs the checks alone.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runAction } from '../helpers/action';
import { LabEnv, copyExample, docker, requireLab, uniqueName } from '../helpers/lab';
import { baseInputs, exampleStacks, onHost } from './common';

const ex = exampleStacks('pf');
let lab: LabEnv;
let inputs: Record<string, string>;
const remoteDir = `.deploy-action-test-${uniqueName('pf')}`;

before(async () => {
  lab = await requireLab();
  inputs = baseInputs(lab, remoteDir, uniqueName('e2e-pf'), 'pf');
});

after(async () => {
  await onHost(lab, `rm -rf ${remoteDir}`);
});

/** Sets the MTU of the example's `edge` overlay network to 1500 (no room for VXLAN's 50 bytes); returns the line of the MTU. */
function raiseEdgeMtu(dir: string): number {
  const infra = path.join(dir, 'stacks', 'infra.yml');
  const text = fs.readFileSync(infra, 'utf8');
  const broken = text.replace(/(  edge:\n(?:    .*\n)*?    driver_opts:\n      com\.docker\.network\.driver\.mtu: )"1450"\n/, '$1"1500"\n');
  assert.notEqual(broken, text, 'fixture edit did not apply');
  fs.writeFileSync(infra, broken);
  return broken.split('\n').findIndex((l) => l.includes('mtu: "1500"')) + 1;
}

test('an overlay network with an MTU above 1450: the deploy is refused with file, line and rule; nothing reaches the host', { timeout: 120_000 }, async () => {
  const dir = copyExample();
  try {
    const line = raiseEdgeMtu(dir);

    const r = await runAction({ inputs: { ...inputs, command: 'deploy', release: 'pf-1' }, cwd: dir });
    assert.notEqual(r.code, 0);
    assert.equal(r.outputs.result, 'failed');
    assert.match(r.errors.join('\n'), new RegExp(`stacks/infra\\.yml:${line}:\\d+ \\[overlay-mtu\\]`));
    const annotation = r.commands.find((c) => c.command === 'error' && /overlay-mtu/.test(JSON.stringify(c)));
    assert.ok(annotation, 'no error annotation for overlay-mtu');
    assert.equal(annotation.properties?.file, 'stacks/infra.yml');
    assert.equal(annotation.properties?.line, String(line));
    assert.match(r.summary, /overlay-mtu/);
    // Refused before connecting: no stack, no release folder on the host.
    assert.equal((await docker(['service', 'ls', '-q', '--filter', `label=com.docker.stack.namespace=${ex.infra}`])).stdout.trim(), '');
    assert.equal((await onHost(lab, `test -e ${remoteDir} && echo exists || echo absent`)).stdout.trim(), 'absent');
    assert.doesNotMatch(r.log, /Connect to/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('command: check passes the example and reports in the job summary, without a host', { timeout: 120_000 }, async () => {
  const dir = copyExample();
  try {
    const r = await runAction({ inputs: { command: 'check', stacks: inputs.stacks, env: inputs.env, registry: inputs.registry, 'image-prefix': inputs['image-prefix'] }, cwd: dir });
    assert.equal(r.code, 0, r.log.slice(-2000));
    assert.equal(r.outputs.result, 'checked');
    assert.match(r.log, /Pre-flight: 0 error\(s\)/);
    assert.match(r.summary, /## 🔎 Pre-flight checks: checked/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('command: check fails on a Traefik service on two networks without traefik.docker.network', { timeout: 120_000 }, async () => {
  const dir = copyExample();
  try {
    const app = path.join(dir, 'stacks', 'app.yml');
    const text = fs.readFileSync(app, 'utf8');
    const withTraefik = text.replace(/(  web:\n(?:    .*\n|      .*\n|        .*\n)*?    deploy:\n)/, '$1      labels:\n        - traefik.enable=true\n');
    assert.notEqual(withTraefik, text, 'fixture edit did not apply');
    fs.writeFileSync(app, withTraefik);
    const r = await runAction({ inputs: { command: 'check', stacks: inputs.stacks, env: inputs.env, registry: inputs.registry, 'image-prefix': inputs['image-prefix'] }, cwd: dir });
    assert.notEqual(r.code, 0);
    assert.match(r.errors.join('\n'), /stacks\/app\.yml:\d+:\d+ \[traefik-network\]/);
    // Switched off for the run: the same stack passes.
    const skipped = await runAction({ inputs: { command: 'check', stacks: inputs.stacks, env: inputs.env, registry: inputs.registry, 'image-prefix': inputs['image-prefix'], 'skip-checks': 'traefik-network' }, cwd: dir });
    assert.equal(skipped.code, 0, skipped.log.slice(-2000));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('invalid YAML in one layer and a rule error in another: both reported with file and line, as annotations and in the summary', { timeout: 120_000 }, async () => {
  const dir = copyExample();
  try {
    raiseEdgeMtu(dir);
    fs.writeFileSync(path.join(dir, 'stacks', 'app.yml'), 'services:\n  web:\n    image: [unclosed\n');
    const r = await runAction({ inputs: { command: 'check', stacks: inputs.stacks, env: inputs.env, registry: inputs.registry, 'image-prefix': inputs['image-prefix'] }, cwd: dir });
    assert.notEqual(r.code, 0);
    assert.equal(r.outputs.result, 'failed');
    const yamlNote = r.commands.find((c) => c.command === 'error' && c.properties?.title === 'invalid-yaml');
    assert.ok(yamlNote, `no invalid-yaml annotation: ${r.errors.join('\n')}`);
    assert.equal(yamlNote.properties?.file, 'stacks/app.yml');
    assert.match(yamlNote.message, /invalid YAML/);
    assert.ok(Number(yamlNote.properties?.line) >= 3, `line ${yamlNote.properties?.line}`);
    assert.ok(r.commands.some((c) => c.command === 'error' && c.properties?.title === 'overlay-mtu' && c.properties?.file === 'stacks/infra.yml'), 'the other layer was not checked');
    assert.match(r.summary, /`invalid-yaml`/);
    assert.match(r.summary, /`overlay-mtu`/);
    assert.match(r.errors.join('\n'), /Pre-flight checks found 2 error\(s\); nothing was deployed/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
