/**
 * The action's interpolation against Docker's own: each case goes through `docker stack config -c`
 * (client-side, no daemon: it runs with DOCKER_HOST pointing nowhere) and through interpolateString.
 * `expect` is what Docker 28 printed when the table was written, so the comparison still runs when
 * the docker binary is absent; when it is present Docker itself is asked too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { interpolateString } from '../../src/interpolate';

type Env = Record<string, string>;
/** `expect`: the value Docker gives, or ERROR when docker stack deploy refuses the value. */
const ERROR = Symbol('error');
const CASES: { t: string; env?: Env; expect: string | typeof ERROR }[] = [
  // plain references
  { t: 'app:$TAG', env: { TAG: '1.2' }, expect: 'app:1.2' },
  { t: 'app:${TAG}', env: { TAG: '1.2' }, expect: 'app:1.2' },
  { t: '${FOO}${TAG}', env: { FOO: 'a', TAG: 'b' }, expect: 'ab' },
  { t: 'x${UNSET}y', expect: 'xy' },
  { t: '$_A', expect: '' },
  { t: '$a.b', expect: '.b' },
  { t: 'no variables', expect: 'no variables' },
  // $VAR without braces takes an operator and an argument up to } or the end
  { t: '$FOO-bar', env: { FOO: 'first' }, expect: 'first' },
  { t: '$FOO-bar and more}x', env: { FOO: 'first' }, expect: 'first}x' },
  { t: '$FOO:-def', env: { FOO: 'first' }, expect: 'first' },
  { t: '$MISSING-def', expect: 'def' },
  // defaults
  { t: '${MISSING:-def}', expect: 'def' },
  { t: '${MISSING-def}', expect: 'def' },
  { t: '${E:-d}', env: { E: '' }, expect: 'd' },
  { t: '${E-d}', env: { E: '' }, expect: '' },
  { t: '${FOO:-def}', env: { FOO: 'first' }, expect: 'first' },
  { t: '${MISSING-}', expect: '' },
  { t: '${E:-/non:-alphanumeric}', env: { E: '' }, expect: '/non:-alphanumeric' },
  // a $ inside a default is literal
  { t: '${P:-$2y$05$abc}', expect: '$2y$05$abc' },
  { t: 'admin:${HASH:-$$2y$$05$$abc}', expect: 'admin:$$2y$$05$$abc' },
  { t: '${Q:-a$$b}', expect: 'a$$b' },
  { t: '${X:-$$}', expect: '$$' },
  { t: '${X:-$FOO}', env: { FOO: 'first' }, expect: '$FOO' },
  { t: 'user:${P:-$apr1$x}', env: { P: 'set' }, expect: 'user:set' },
  // braces: the argument ends at the first }
  { t: '${A:-{x}}', env: { A: 'a' }, expect: 'a}' },
  { t: '${A:-{x}}', expect: '{x}' },
  { t: '${X:-a}}', expect: 'a}' },
  { t: '${X-${FOO}}', env: { FOO: 'first' }, expect: '${FOO}' },
  { t: '${A:-${B:-x}}', expect: '${B:-x}' },
  { t: '${A:-${B:-x}}', env: { A: 'a' }, expect: 'a}' },
  // required
  { t: '${X:?need it}', expect: ERROR },
  { t: '${X?}', expect: ERROR },
  { t: '${X:?}', expect: ERROR },
  { t: '${E:?x}', env: { E: '' }, expect: ERROR },
  { t: '${E?x}', env: { E: '' }, expect: '' },
  { t: '${A?}', env: { A: 'a' }, expect: 'a' },
  { t: '${A:?}', env: { A: 'a' }, expect: 'a' },
  { t: '${X:?must-be-set}', expect: 'be-set' },
  { t: '${MISSING-myerror?msg}', expect: 'myerror?msg' },
  // :+ and + are not Docker's
  { t: '${FOO:+alt}', env: { FOO: 'first' }, expect: ERROR },
  { t: '${FOO+alt}', expect: ERROR },
  // unterminated and invalid
  { t: '${FOO', expect: ERROR },
  { t: 'x ${FOO:-unclosed', expect: ERROR },
  { t: '${}', expect: ERROR },
  { t: '${ X}', expect: ERROR },
  { t: '${NOT VALID}', expect: ERROR },
  { t: '${1X}', expect: ERROR },
  { t: '$}', expect: ERROR },
  { t: '$1', expect: ERROR },
  { t: '^re$', expect: ERROR },
  { t: 'a $ b', expect: ERROR },
  { t: 'costs 5$', expect: ERROR },
  // Docker keeps only the last reference's error
  { t: '$ ${B}', env: { B: 'b' }, expect: ' b' },
  { t: '${B} $', env: { B: 'b' }, expect: ERROR },
  { t: '${A:?x} ${B}', env: { B: 'b' }, expect: ' b' },
  // $$ escapes
  { t: '$$', expect: '$' },
  { t: '$$HOME and $$$$', expect: '$HOME and $$' },
  { t: '$${foo}', expect: '${foo}' },
  { t: '$$$FOO', env: { FOO: 'first' }, expect: '$first' },
  { t: 'echo $$1 $$0', expect: 'echo $1 $0' },
];

const docker = spawnSync('docker', ['--version'], { encoding: 'utf8' });
const hasDocker = docker.status === 0;

/** What `docker stack config` makes of one value; ERROR when it refuses the file. */
function viaDocker(dir: string, t: string, env: Env = {}): string | typeof ERROR {
  const file = path.join(dir, 'stack.yml');
  fs.writeFileSync(file, `services:\n  s:\n    image: x\n    environment:\n      V: ${JSON.stringify(t)}\n`);
  const res = spawnSync('docker', ['stack', 'config', '-c', file], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, DOCKER_HOST: 'unix:///nonexistent/docker.sock', DOCKER_CONFIG: dir, ...env },
  });
  if (res.status !== 0) {
    assert.match(
      res.stderr,
      /invalid interpolation format/,
      `docker stack config failed otherwise for ${JSON.stringify(t)}: ${res.stderr}`,
    );
    return ERROR;
  }
  const m = /^ {6}V: (.*)$/m.exec(res.stdout);
  assert.ok(m, `no V in docker's output for ${JSON.stringify(t)}:\n${res.stdout}`);
  // docker prints YAML: a JSON-quoted, single-quoted or plain scalar.
  const s = m[1];
  if (s.startsWith('"')) return JSON.parse(s);
  if (s.startsWith("'")) return s.slice(1, -1).replace(/''/g, "'");
  return s;
}

function viaAction(t: string, env: Env = {}): string | typeof ERROR {
  const r = interpolateString(t, env);
  return r.errors.length ? ERROR : r.value;
}

const show = (v: string | typeof ERROR): string => (v === ERROR ? 'ERROR' : JSON.stringify(v));

test(
  'the table is what docker stack config gives',
  { skip: hasDocker ? false : 'the docker binary is not on PATH: comparing with the recorded values only' },
  () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'interp-oracle-'));
    const wrong: string[] = [];
    for (const c of CASES) {
      const got = viaDocker(dir, c.t, c.env);
      if (got !== c.expect)
        wrong.push(
          `${JSON.stringify(c.t)} ${JSON.stringify(c.env ?? {})}: docker ${show(got)}, table ${show(c.expect)}`,
        );
    }
    assert.deepEqual(wrong, []);
  },
);

test('the action interpolates every case as Docker does', () => {
  const wrong: string[] = [];
  for (const c of CASES) {
    const got = viaAction(c.t, c.env);
    if (got !== c.expect)
      wrong.push(
        `${JSON.stringify(c.t)} ${JSON.stringify(c.env ?? {})}: action ${show(got)}, docker ${show(c.expect)}`,
      );
  }
  assert.deepEqual(wrong, []);
});
