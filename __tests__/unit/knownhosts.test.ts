import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, generateKeyPairSync, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { InputError } from '../../src/errors';
import { HostKey, fingerprint, hostKeyAlgorithms, hostToken, keysFor } from '../../src/knownhosts';

// ---------- real key blobs in SSH wire format ----------

function sshString(b: Buffer | string): Buffer {
  const body = typeof b === 'string' ? Buffer.from(b) : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

/** An mpint: big-endian, with a 0 byte in front when the high bit is set. */
function mpint(b: Buffer): Buffer {
  return sshString(b[0] & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
}

function ed25519Blob(): Buffer {
  const { publicKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return Buffer.concat([sshString('ssh-ed25519'), sshString(raw)]);
}

function rsaBlob(): Buffer {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const jwk = publicKey.export({ format: 'jwk' });
  return Buffer.concat([
    sshString('ssh-rsa'),
    mpint(Buffer.from(jwk.e as string, 'base64url')),
    mpint(Buffer.from(jwk.n as string, 'base64url')),
  ]);
}

const ED = ed25519Blob();
const ED2 = ed25519Blob();
const RSA = rsaBlob();
const ed = (hosts: string, blob = ED) => `${hosts} ssh-ed25519 ${blob.toString('base64')}`;
const rsa = (hosts: string) => `${hosts} ssh-rsa ${RSA.toString('base64')}`;

/** `ssh-keygen -H` style: |1|base64(salt)|base64(HMAC-SHA1(salt, token)). */
function hashed(token: string, salt = randomBytes(20)): string {
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(token).digest('base64')}`;
}

const blobs = (keys: HostKey[]) => keys.map((k) => k.blob.toString('base64'));
const matches = (text: string, host: string, port = 22) => keysFor(text, host, port).keys.length > 0;

// ---------- tests ----------

test('our key blobs have the SSH wire format (sanity of the fixtures)', () => {
  assert.equal(ED.length, 4 + 11 + 4 + 32);
  assert.equal(ED.readUInt32BE(0), 11);
  assert.equal(ED.subarray(4, 15).toString(), 'ssh-ed25519');
  assert.equal(RSA.subarray(4, 11).toString(), 'ssh-rsa');
});

test('hostToken: plain on port 22, [host]:port elsewhere', () => {
  assert.equal(hostToken('vps.example.com', 22), 'vps.example.com');
  assert.equal(hostToken('vps.example.com', 2222), '[vps.example.com]:2222');
  assert.equal(hostToken('10.0.0.5', 2200), '[10.0.0.5]:2200');
});

test('keysFor: a plain host line gives its key, type and blob', () => {
  const { keys, revoked } = keysFor(ed('vps.example.com'), 'vps.example.com', 22);
  assert.equal(keys.length, 1);
  assert.equal(keys[0].type, 'ssh-ed25519');
  assert.ok(keys[0].blob.equals(ED));
  assert.deepEqual(revoked, []);
});

test('keysFor: another host, or a host that only shares a prefix or suffix, does not match', () => {
  const kh = ed('vps.example.com');
  assert.equal(matches(kh, 'db.example.com'), false);
  assert.equal(matches(kh, 'vps.example.co'), false);
  assert.equal(matches(kh, 'vps.example.com.evil.org'), false);
  assert.equal(matches(kh, 'xvps.example.com'), false);
  // A dot is literal, not a regex wildcard.
  assert.equal(matches(ed('10.0.0.5'), '10x0x0x5'), false);
});

test('keysFor: [host]:port matches that port only; a plain line is for port 22 only', () => {
  const kh = [ed('[vps.example.com]:2222', ED), ed('vps.example.com', ED2)].join('\n');
  assert.deepEqual(blobs(keysFor(kh, 'vps.example.com', 2222).keys), [ED.toString('base64')]);
  assert.deepEqual(blobs(keysFor(kh, 'vps.example.com', 22).keys), [ED2.toString('base64')]);
  assert.deepEqual(keysFor(kh, 'vps.example.com', 2200).keys, []);
  assert.equal(matches(ed('[vps.example.com]:2222'), 'vps.example.com', 22222), false);
});

test('keysFor: comma-separated host lists (name and address, as ssh-keyscan and ssh write them)', () => {
  const kh = ed('vps.example.com,203.0.113.7,[vps.example.com]:2222');
  assert.ok(matches(kh, 'vps.example.com'));
  assert.ok(matches(kh, '203.0.113.7'));
  assert.ok(matches(kh, 'vps.example.com', 2222));
  assert.equal(matches(kh, '203.0.113.7', 2222), false);
  assert.equal(matches(kh, '203.0.113.70'), false);
});

test('keysFor: * and ? wildcards', () => {
  assert.ok(matches(ed('*.example.com'), 'web.example.com'));
  assert.ok(matches(ed('*.example.com'), 'a.b.example.com'));
  assert.equal(matches(ed('*.example.com'), 'example.com'), false);
  assert.equal(matches(ed('*.example.com'), 'web.example.org'), false);
  assert.ok(matches(ed('node?.example.com'), 'node1.example.com'));
  assert.equal(matches(ed('node?.example.com'), 'node12.example.com'), false);
  assert.ok(matches(ed('10.0.0.*'), '10.0.0.42'));
  assert.ok(matches(ed('[10.0.0.*]:2222'), '10.0.0.42', 2222));
});

test('keysFor: a !negated pattern excludes the host even when another pattern matches', () => {
  const kh = ed('*.example.com,!db.example.com');
  assert.ok(matches(kh, 'web.example.com'));
  assert.equal(matches(kh, 'db.example.com'), false);
  // Order does not matter, and a negation alone matches nothing.
  assert.equal(matches(ed('!db.example.com,*.example.com'), 'db.example.com'), false);
  assert.equal(matches(ed('!db.example.com'), 'web.example.com'), false);
  assert.equal(matches(ed('!*.internal,*'), 'x.internal'), false);
  assert.ok(matches(ed('!*.internal,*'), 'x.example.com'));
});

test('keysFor: hashed |1|salt|hash entries, port 22 and other ports', () => {
  const kh = [ed(hashed('vps.example.com'), ED), ed(hashed('[vps.example.com]:2222'), ED2)].join('\n');
  assert.deepEqual(blobs(keysFor(kh, 'vps.example.com', 22).keys), [ED.toString('base64')]);
  assert.deepEqual(blobs(keysFor(kh, 'vps.example.com', 2222).keys), [ED2.toString('base64')]);
  assert.deepEqual(keysFor(kh, 'db.example.com', 22).keys, []);
  assert.deepEqual(keysFor(kh, 'vps.example.com', 2200).keys, []);
});

test('keysFor: a hashed entry with a broken salt or hash matches nothing and does not throw', () => {
  assert.equal(matches(ed('|1|onlysalt'), 'vps.example.com'), false);
  assert.equal(matches(ed('|1||'), 'vps.example.com'), false);
  const salt = randomBytes(20);
  const good = hashed('vps.example.com', salt);
  assert.equal(matches(ed(good.slice(0, -4) + 'AAA='), 'vps.example.com'), false);
});

test('keysFor: hashed and plain entries mixed in one list', () => {
  const kh = ed(`${hashed('vps.example.com')},203.0.113.7`);
  assert.ok(matches(kh, 'vps.example.com'));
  assert.ok(matches(kh, '203.0.113.7'));
});

test('keysFor: @revoked keys come back apart from the pinned keys', () => {
  const kh = [
    ed('vps.example.com', ED),
    `@revoked ${ed('vps.example.com', ED2)}`,
    `@revoked ${ed('other.example.com', ED2)}`,
  ].join('\n');
  const { keys, revoked } = keysFor(kh, 'vps.example.com', 22);
  assert.deepEqual(blobs(keys), [ED.toString('base64')]);
  assert.deepEqual(blobs(revoked), [ED2.toString('base64')]);
});

test('keysFor: comments, blank lines, CRLF, indentation and trailing comments are fine', () => {
  const kh = [
    '# pinned with ssh-keyscan',
    '',
    '   ',
    `  ${ed('vps.example.com')} root@vps`,
    rsa('vps.example.com'),
    '# ' + ed('vps.example.com', ED2),
  ].join('\r\n');
  const { keys } = keysFor(kh, 'vps.example.com', 22);
  assert.deepEqual(
    keys.map((k) => k.type),
    ['ssh-ed25519', 'ssh-rsa'],
  );
  assert.ok(keys[1].blob.equals(RSA));
  assert.deepEqual(keysFor('', 'vps.example.com', 22), { keys: [], revoked: [] });
});

test('keysFor: a garbled key is an InputError naming the line', () => {
  const bad = ['# header', '', 'vps.example.com ssh-ed25519 !!!not-base64!!!'].join('\n');
  assert.throws(
    () => keysFor(bad, 'vps.example.com', 22),
    (e: unknown) =>
      e instanceof InputError &&
      /known-hosts` line 3\b/.test(e.message) &&
      /not a valid ssh-ed25519 key/.test(e.message),
  );
  // Valid base64 but not an SSH key blob.
  assert.throws(
    () =>
      keysFor(
        `vps.example.com ssh-ed25519 ${Buffer.from('hello world, no key here').toString('base64')}`,
        'vps.example.com',
        22,
      ),
    InputError,
  );
  assert.throws(() => keysFor('vps.example.com ssh-ed25519 AAAA', 'vps.example.com', 22), /line 1/);
});

test('keysFor: a key whose blob is of another type than the line says is rejected', () => {
  assert.throws(
    () => keysFor(`vps.example.com ssh-rsa ${ED.toString('base64')}`, 'vps.example.com', 22),
    /line 1: the key is not a valid ssh-rsa key/,
  );
});

test('keysFor: a line with too few fields is an InputError naming the line', () => {
  assert.throws(
    () => keysFor(`${ed('a.example.com')}\nvps.example.com ssh-ed25519`, 'vps.example.com', 22),
    (e: unknown) => e instanceof InputError && /line 2: expected "host key-type base64-key"/.test(e.message),
  );
  assert.throws(() => keysFor(`@revoked vps.example.com ssh-ed25519`, 'vps.example.com', 22), /line 1/);
});

test('keysFor: @cert-authority is refused with an InputError naming the line', () => {
  const kh = [ed('vps.example.com'), `@cert-authority *.example.com ssh-ed25519 ${ED2.toString('base64')}`].join('\n');
  assert.throws(
    () => keysFor(kh, 'vps.example.com', 22),
    (e: unknown) => e instanceof InputError && /line 2: @cert-authority entries are not supported/.test(e.message),
  );
});

test('keysFor: host names match case-insensitively, as in OpenSSH', () => {
  assert.ok(matches(ed('vps.example.com'), 'VPS.Example.com'));
  assert.ok(matches(ed('VPS.example.com'), 'vps.example.com'));
});

test('keysFor: a truncated key (type intact, key bytes cut) is rejected as the message promises', () => {
  const cut = ED.subarray(0, ED.length - 16).toString('base64');
  assert.throws(() => keysFor(`vps.example.com ssh-ed25519 ${cut}`, 'vps.example.com', 22), /line 1/);
});

test('fingerprint: SHA256 of the blob, base64 without padding, as ssh-keygen -l prints it', () => {
  const expected = 'SHA256:' + createHash('sha256').update(ED).digest('base64').replace(/=+$/, '');
  assert.equal(fingerprint(ED), expected);
  assert.doesNotMatch(fingerprint(ED), /=$/);
  assert.notEqual(fingerprint(ED), fingerprint(ED2));
});

test('hostKeyAlgorithms: ssh-rsa offers rsa-sha2-512, rsa-sha2-256 and ssh-rsa; others as they are; no duplicates', () => {
  const k = (type: string): HostKey => ({ type, blob: Buffer.alloc(0) });
  assert.deepEqual(hostKeyAlgorithms([k('ssh-rsa')]), ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
  assert.deepEqual(
    hostKeyAlgorithms([k('ssh-ed25519'), k('ssh-rsa'), k('ssh-ed25519'), k('ssh-rsa'), k('ecdsa-sha2-nistp256')]),
    ['ssh-ed25519', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa', 'ecdsa-sha2-nistp256'],
  );
  assert.deepEqual(hostKeyAlgorithms([]), []);
});

test('keysFor + hostKeyAlgorithms on a typical ssh-keyscan output', () => {
  const kh = [`# vps.example.com:22 SSH-2.0-OpenSSH_9.6`, rsa('vps.example.com'), ed('vps.example.com')].join('\n');
  assert.deepEqual(hostKeyAlgorithms(keysFor(kh, 'vps.example.com', 22).keys), [
    'rsa-sha2-512',
    'rsa-sha2-256',
    'ssh-rsa',
    'ssh-ed25519',
  ]);
});

const LAB = path.join(__dirname, '..', '..', 'lab', '.state', 'known_hosts');
test(
  "keysFor reads the lab's own known_hosts (when the lab has run)",
  { skip: !fs.existsSync(LAB) && 'no lab state' },
  () => {
    const text = fs.readFileSync(LAB, 'utf8');
    const m = /^\[([^\]]+)\]:(\d+)\s/m.exec(text) ?? /^(\S+)\s/m.exec(text);
    assert.ok(m, 'a host field');
    const host = m[1].split(',')[0];
    const port = m[2] ? Number(m[2]) : 22;
    const { keys } = keysFor(text, host, port);
    assert.ok(keys.length >= 1);
    for (const k of keys) assert.equal(k.blob.subarray(4, 4 + k.blob.readUInt32BE(0)).toString(), k.type);
  },
);
