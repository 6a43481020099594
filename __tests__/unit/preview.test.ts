// Pull request previews: the cap (max-previews), command remove against a fake Docker on a fake
// host (the very scripts the action sends run in sh), command comment against a fake API, and the
// inputs of the three.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import { runAction } from '../helpers/action';
import { InputError } from '../../src/errors';
import { LocalShell } from '../helpers/host';
import { capVerdict, checkPreviewCap, livePreviews, previewNumber } from '../../src/preview';
import { describeRemoval, isEmpty, planRemoval, removeStack } from '../../src/remove';
import { CommentApi, MARKER, upsertComment } from '../../src/comment';
import { readInputs } from '../../src/inputs';
import { captureStdout } from '../helpers/stdout';

// ------------------------------------------------------------------ the cap

test('previewNumber: `<name>-pr-<N>` is the preview of pull request N; other names are not previews', () => {
  assert.equal(previewNumber('app-pr-12'), 12);
  assert.equal(previewNumber('my-app-pr-3'), 3);
  for (const n of ['app', 'app-pr-', 'app-pr-0', 'pr-4', 'app-pr-4x', 'app_pr_4'])
    assert.equal(previewNumber(n), undefined, n);
});

test('livePreviews: the stacks of one pull request count once', () => {
  const live = livePreviews(['infra', 'app-pr-1', 'api-pr-1', 'app-pr-7', 'app']);
  assert.deepEqual([...live.keys()], [1, 7]);
  assert.deepEqual(live.get(1), ['app-pr-1', 'api-pr-1']);
});

test('capVerdict: one more preview past the cap is an InputError naming max-previews and listing the live ones; a live one is updated; 0 is no cap', () => {
  const live = livePreviews(['app-pr-1', 'api-pr-1', 'app-pr-7']);
  assert.throws(
    () => capVerdict(['app-pr-9', 'api-pr-9'], live, 2, 'deploy@host'),
    (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, /`max-previews` is 2/);
      assert.match(e.message, /#9 would be one more/);
      assert.match(e.message, /Nothing was deployed/);
      assert.match(e.message, /pull request #1: api-pr-1, app-pr-1\n {2}pull request #7: app-pr-7/);
      return true;
    },
  );
  capVerdict(['app-pr-7'], live, 2, 'h'); // live already: an update
  capVerdict(['app-pr-9'], live, 3, 'h'); // room for one
  capVerdict(['app-pr-9'], live, 0, 'h'); // no cap
  capVerdict(['app'], live, 1, 'h'); // not a preview
});

test("checkPreviewCap: counts from the host's stacks, and asks nothing when no preview is deployed", async () => {
  const host = new FakeDocker();
  host.add('service', 'app-pr-1_web', { 'com.docker.stack.namespace': 'app-pr-1' });
  host.add('service', 'app-pr-2_web', { 'com.docker.stack.namespace': 'app-pr-2' });
  await assert.rejects(checkPreviewCap(host, ['app-pr-3'], 2), /max-previews/);
  await checkPreviewCap(host, ['app-pr-2'], 2);
  const before = host.scripts.length;
  await checkPreviewCap(host, ['app'], 2);
  await checkPreviewCap(host, ['app-pr-3'], 0);
  assert.equal(host.scripts.length, before, 'no remote command');
});

// ------------------------------------------------------------------ remove

/**
 * A host whose `docker` is a shell script over a folder of objects (`<kind>/<name>` holding its
 * labels), enough of the CLI for the scripts remove.ts sends. `stack rm` removes the services at
 * once; the stack's networks stay busy for `busyPolls` more `network rm` calls, as on Swarm.
 */
class FakeDocker extends LocalShell {
  constructor(busyPolls = 0) {
    super('fake@host');
    const bin = this.bin;
    fs.mkdirSync(path.join(this.home, '.docker', 'service'), { recursive: true });
    for (const k of ['network', 'config', 'secret']) fs.mkdirSync(path.join(this.home, '.docker', k));
    fs.writeFileSync(path.join(this.home, '.docker', 'busy'), String(busyPolls));
    fs.mkdirSync(bin);
    fs.writeFileSync(
      path.join(bin, 'docker'),
      `#!/bin/bash
S="$HOME/.docker"
echo "$*" >> "$S/calls"
kind=$1; verb=$2; shift 2
case "$kind $verb" in
  "stack ls") for f in "$S"/service/*; do [ -e "$f" ] && sed -n 's/^com.docker.stack.namespace=//p' "$f"; done | sort -u ;;
  "stack rm") grep -lx "com.docker.stack.namespace=$1" "$S"/service/* 2>/dev/null | xargs -r rm -f; echo "Removing stack $1" ;;
  *" ls")
    filters=(); fmt='{{.Name}}'; q=
    while [ $# -gt 0 ]; do case "$1" in --filter) filters+=("\${2#label=}"); shift 2;; --format) fmt=$2; shift 2;; -q) q=1; shift;; *) shift;; esac; done
    for f in "$S/$kind"/*; do
      [ -e "$f" ] || continue
      ok=1; for l in "\${filters[@]}"; do grep -qx -- "$l" "$f" || ok=; done
      [ -n "$ok" ] || continue
      n=$(basename "$f"); if [ -n "$q" ]; then echo "id-$n"; else printf '%s\\n' "\${fmt//\\{\\{.Name\\}\\}/$n}"; fi
    done ;;
  *" inspect") [ -e "$S/$kind/\${@: -1}" ] ;;
  "network rm")
    b=$(cat "$S/busy"); if [ "$b" -gt 0 ]; then echo $((b - 1)) > "$S/busy"; echo "network $1 has active endpoints" >&2; exit 1; fi
    rm "$S/network/$1" ;;
  *" rm") [ -e "$S/$kind/$1" ] && rm "$S/$kind/$1" ;;
  *) echo "fake docker: $kind $verb not modelled" >&2; exit 2 ;;
esac
`,
      { mode: 0o755 },
    );
  }
  add(kind: string, name: string, labels: Record<string, string> = {}): void {
    fs.writeFileSync(
      path.join(this.home, '.docker', kind, name),
      Object.entries(labels)
        .map(([k, v]) => `${k}=${v}\n`)
        .join(''),
    );
  }
  has(kind: string, name: string): boolean {
    return fs.existsSync(path.join(this.home, '.docker', kind, name));
  }
  calls(): string[] {
    const f = path.join(this.home, '.docker', 'calls');
    return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n') : [];
  }
  file(rel: string, content: string): void {
    fs.mkdirSync(path.dirname(path.join(this.home, rel)), { recursive: true });
    fs.writeFileSync(path.join(this.home, rel), content);
  }
  exists(rel: string): boolean {
    return fs.existsSync(path.join(this.home, rel));
  }
}

const NS = (s: string) => ({ 'com.docker.stack.namespace': s });
const ledger = (stack: string, secrets: string[]) =>
  JSON.stringify({ version: 1, stack, releases: [{ id: 'r1', release: '1', secrets }] });

/** A host with the preview app-pr-4 (services, network, config, its secrets, a shared one) and the stack app beside it. */
function previewHost(busyPolls = 0): FakeDocker {
  const h = new FakeDocker(busyPolls);
  h.add('service', 'app-pr-4_web', NS('app-pr-4'));
  h.add('service', 'app-pr-4_api', NS('app-pr-4'));
  h.add('network', 'app-pr-4_default', NS('app-pr-4'));
  h.add('config', 'app-pr-4_conf_0123456789', NS('app-pr-4'));
  h.add('secret', 'app-pr-4_db_abcdef0123', { 'deploy-action.stack': 'app-pr-4', 'deploy-action.key': 'db' });
  h.add('secret', 'app-pr-4_token', { 'deploy-action.stack': 'app-pr-4', 'deploy-action.generated': 'true' });
  h.add('secret', 'shared_redis_1111111111', { 'deploy-action.shared': 'true' });
  h.add('secret', 'shared_mail_2222222222', { 'deploy-action.shared': 'true' });
  // The stack beside it: never touched.
  h.add('service', 'app_web', NS('app'));
  h.add('network', 'app_default', NS('app'));
  h.add('config', 'app_conf_0123456789', NS('app'));
  h.add('secret', 'app_db_abcdef0123', { 'deploy-action.stack': 'app', 'deploy-action.key': 'db' });
  h.file(
    '.da/stacks/app-pr-4/ledger.json',
    ledger('app-pr-4', [
      'app-pr-4_db_abcdef0123',
      'app-pr-4_token',
      'shared_redis_1111111111',
      'shared_mail_2222222222',
    ]),
  );
  h.file('.da/stacks/app-pr-4/releases/x/stack.yml', 'services: {}\n');
  h.file('.da/stacks/app-pr-4/lock/holder.json', '{}');
  h.file('.da/stacks/app/ledger.json', ledger('app', ['app_db_abcdef0123', 'shared_redis_1111111111']));
  return h;
}

test("planRemoval: the stack's services, networks, configs, own secrets and folder; a shared secret another ledger names is kept; reads only", async () => {
  const h = previewHost();
  const r = await planRemoval(h, '.da', 'app-pr-4');
  assert.deepEqual(r.services.sort(), ['app-pr-4_api', 'app-pr-4_web']);
  assert.deepEqual(r.networks, ['app-pr-4_default']);
  assert.deepEqual(r.configs, ['app-pr-4_conf_0123456789']);
  assert.deepEqual(r.secrets.sort(), ['app-pr-4_db_abcdef0123', 'app-pr-4_token']);
  assert.deepEqual(r.shared, ['shared_mail_2222222222']);
  assert.deepEqual(r.sharedKept, ['shared_redis_1111111111']);
  assert.equal(r.folder, true);
  assert.ok(!h.calls().some((c) => / rm /.test(` ${c} `)), `nothing removed: ${h.calls().join('; ')}`);
  assert.match(
    describeRemoval(r),
    /shared secrets kept \(another stack's ledger names them\): shared_redis_1111111111/,
  );
});

test('planRemoval: a stack that is not there is empty', async () => {
  const h = previewHost();
  h.file('.da/stacks/app-pr-5/lock/holder.json', '{}');
  const r = await planRemoval(h, '.da', 'app-pr-5');
  assert.ok(isEmpty(r), 'the lock this run took is no history');
  assert.match(describeRemoval(r), /nothing on the host/);
});

test('removeStack: stack rm, then networks (busy a while), configs and secrets once the services are gone, then the folder but the lock; the stack beside it untouched', async () => {
  const h = previewHost(3);
  const r = await planRemoval(h, '.da', 'app-pr-4');
  await removeStack(h, '.da', r, { timeoutMs: 30_000, pollMs: 1 });
  for (const [k, n] of [
    ['service', 'app-pr-4_web'],
    ['network', 'app-pr-4_default'],
    ['config', 'app-pr-4_conf_0123456789'],
    ['secret', 'app-pr-4_db_abcdef0123'],
    ['secret', 'app-pr-4_token'],
    ['secret', 'shared_mail_2222222222'],
  ]) {
    assert.equal(h.has(k, n), false, `${k} ${n} removed`);
  }
  for (const [k, n] of [
    ['service', 'app_web'],
    ['network', 'app_default'],
    ['config', 'app_conf_0123456789'],
    ['secret', 'app_db_abcdef0123'],
    ['secret', 'shared_redis_1111111111'],
  ]) {
    assert.equal(h.has(k, n), true, `${k} ${n} kept`);
  }
  assert.ok(
    h.calls().filter((c) => c.startsWith('network rm app-pr-4_default')).length >= 4,
    'network rm retried while busy',
  );
  assert.equal(h.exists('.da/stacks/app-pr-4/ledger.json'), false);
  assert.equal(h.exists('.da/stacks/app-pr-4/releases'), false);
  assert.equal(h.exists('.da/stacks/app-pr-4/lock/holder.json'), true, 'the lock this run holds stays until released');
  assert.equal(h.exists('.da/stacks/app/ledger.json'), true);
});

test('removeStack: what never goes away fails within the bound, naming what is left', async () => {
  const h = previewHost(1_000_000);
  const r = await planRemoval(h, '.da', 'app-pr-4');
  const t0 = Date.now();
  await assert.rejects(
    removeStack(h, '.da', r, { timeoutMs: 300, pollMs: 20 }),
    /not fully removed within 0 s; still there: network app-pr-4_default/,
  );
  assert.ok(Date.now() - t0 < 20_000);
  assert.equal(h.exists('.da/stacks/app-pr-4/ledger.json'), true, 'the ledger stays while the stack is not gone');
});

test('remove scripts: every name reaches the shell quoted', async () => {
  const h = new FakeDocker();
  const evil = "app-pr-4'; touch pwned; '";
  const r = await planRemoval(h, "x'; touch pwned2; '", evil);
  await removeStack(
    h,
    '.da',
    { ...r, services: [evil], networks: [`${evil}_n`], folder: true },
    { timeoutMs: 100, pollMs: 1 },
  ).catch(() => undefined);
  assert.equal(h.exists('pwned'), false);
  assert.equal(h.exists('pwned2'), false);
});

// ------------------------------------------------------------------ comment

function fakeApi(existing: { id: number; body: string }[] = []) {
  const comments = [...existing];
  const calls: string[] = [];
  const api: CommentApi = {
    list: async () => (calls.push('list'), comments),
    create: async (body) => {
      calls.push('create');
      const c = { id: 100 + comments.length, body };
      comments.push(c);
      return { id: c.id, html_url: `https://github.com/o/r/pull/4#issuecomment-${c.id}` };
    },
    update: async (id, body) => {
      calls.push(`update ${id}`);
      comments.find((c) => c.id === id)!.body = body;
      return { id };
    },
  };
  return { api, comments, calls };
}

test("upsertComment: posts one comment with the marker, then updates that one, never another's", async () => {
  const f = fakeApi([{ id: 1, body: 'LGTM' }]);
  const a = await upsertComment(f.api, 'Preview: https://pr-4.example.com');
  assert.equal(a.updated, false);
  assert.deepEqual(f.calls, ['list', 'create']);
  assert.equal(f.comments[1].body, `${MARKER}\nPreview: https://pr-4.example.com`);
  const b = await upsertComment(f.api, 'Preview: https://pr-4.example.com (sha 2)');
  assert.equal(b.updated, true);
  assert.equal(b.id, a.id);
  assert.equal(f.comments.length, 2, 'not duplicated');
  assert.equal(f.comments[0].body, 'LGTM');
  assert.match(f.comments[1].body, /sha 2/);
});

// ------------------------------------------------------------------ inputs

const SSH = {
  host: 'h.example.com',
  user: 'deploy',
  'ssh-key': 'KEY-KEY-KEY-KEY',
  'known-hosts': 'h ssh-ed25519 AAAA',
};
const ENV = {
  GITHUB_WORKSPACE: '/ws',
  GITHUB_REF: 'refs/heads/main',
  GITHUB_SHA: '0123456789abcdef0123456789abcdef01234567',
};
function read(values: Record<string, string>, env: NodeJS.ProcessEnv = ENV) {
  const stop = captureStdout();
  try {
    return { inputs: readInputs((n) => values[n] ?? '', env), out: stop() };
  } catch (e) {
    stop();
    throw e;
  }
}
const rejects = (values: Record<string, string>, input: string) =>
  assert.throws(
    () => read(values),
    (e: unknown) => e instanceof InputError && e.message.includes(`\`${input}\``),
  );

test('readInputs: remove needs a host and stacks like deploy; max-previews is a whole number, 0 by default', () => {
  const { inputs } = read({ ...SSH, command: 'remove', stacks: 'app-pr-4=stacks/app.yml' });
  assert.equal(inputs.command, 'remove');
  assert.equal(inputs.maxPreviews, 0);
  rejects({ command: 'remove', stacks: 'app-pr-4=stacks/app.yml' }, 'host');
  rejects({ ...SSH, command: 'remove' }, 'stacks');
  assert.equal(read({ ...SSH, stacks: 'a=a.yml', 'max-previews': '3' }).inputs.maxPreviews, 3);
  rejects({ ...SSH, stacks: 'a=a.yml', 'max-previews': 'three' }, 'max-previews');
});

test('readInputs: comment needs its text, a pull request and a token (masked); the number comes from the event when not given', () => {
  const { inputs, out } = read({
    command: 'comment',
    comment: 'Preview: x',
    'pull-request': '12',
    'github-token': 'ghs_tokentokentoken',
  });
  assert.equal(inputs.pullRequest, 12);
  assert.equal(inputs.githubToken, 'ghs_tokentokentoken');
  assert.match(out, /^::add-mask::ghs_tokentokentoken$/m);
  rejects({ command: 'comment', 'pull-request': '12', 'github-token': 't' }, 'comment');
  rejects({ command: 'comment', comment: 'x', 'github-token': 't' }, 'pull-request');
  rejects({ command: 'comment', comment: 'x', 'pull-request': '12' }, 'github-token');
  rejects({ command: 'comment', comment: 'x', 'pull-request': '12; rm', 'github-token': 't' }, 'pull-request');
  const event = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'event-')), 'event.json');
  fs.writeFileSync(event, JSON.stringify({ action: 'opened', pull_request: { number: 7 } }));
  assert.equal(
    read({ command: 'comment', comment: 'x', 'github-token': 't' }, { ...ENV, GITHUB_EVENT_PATH: event }).inputs
      .pullRequest,
    7,
  );
});

// ------------------------------------------------------------------ the bundled action

test('dist: command comment posts, then updates, one comment through GITHUB_API_URL with the token; a refused token is a clear error', async () => {
  const comments: { id: number; body: string }[] = [];
  const seen: string[] = [];
  let refuse = false;
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (c: Buffer) => (data += c.toString()));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization}`);
      const send = (status: number, body: unknown) => (
        res.writeHead(status, { 'content-type': 'application/json' }),
        res.end(JSON.stringify(body))
      );
      if (refuse) return send(403, { message: 'Resource not accessible by integration' });
      if (req.method === 'GET' && req.url?.startsWith('/repos/glasck/example/issues/4/comments'))
        return send(200, comments);
      if (req.method === 'POST' && req.url === '/repos/glasck/example/issues/4/comments') {
        const c = { id: 77, body: (JSON.parse(data) as { body: string }).body };
        comments.push(c);
        return send(201, c);
      }
      if (req.method === 'PATCH' && req.url === '/repos/glasck/example/issues/comments/77') {
        comments[0].body = (JSON.parse(data) as { body: string }).body;
        return send(200, comments[0]);
      }
      send(404, { message: 'Not Found' });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  try {
    const comment = (text: string) =>
      runAction({
        inputs: { command: 'comment', comment: text, 'pull-request': '4', 'github-token': 'ghs_unit_token_123' },
        env: { GITHUB_API_URL: url, GITHUB_REPOSITORY: 'glasck/example' },
        post: false,
        timeoutMs: 60_000,
      });
    const first = await comment('Preview: https://pr-4.example.com');
    assert.equal(first.code, 0, first.log);
    assert.equal(first.outputs.result, 'commented');
    const second = await comment('Preview: https://pr-4.example.com (again)');
    assert.equal(second.code, 0, second.log);
    assert.equal(comments.length, 1, 'updated, not duplicated');
    assert.equal(comments[0].body, `${MARKER}\nPreview: https://pr-4.example.com (again)`);
    assert.ok(
      seen.every((s) => s.endsWith('token ghs_unit_token_123')),
      seen.join('\n'),
    );
    assert.ok(!second.maskedLog.includes('ghs_unit_token_123'), 'the token is masked');
    refuse = true;
    const refused = await comment('x');
    assert.notEqual(refused.code, 0);
    assert.match(
      refused.errors.join('\n'),
      /Could not comment on pull request #4: Resource not accessible by integration.*pull-requests: write/s,
    );
  } finally {
    server.close();
  }
});
