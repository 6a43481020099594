import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeDollars, interpolateDetailed, interpolateString } from '../../src/interpolate';

const env = { FOO: 'first', BAR: '', TAG: '1.2.3' };
const value = (s: string, e: Record<string, string | undefined> = env): string => {
  const r = interpolateString(s, e);
  assert.deepEqual(r.errors, [], `no errors for ${s}`);
  return r.value;
};

test('$VAR and ${VAR}', () => {
  assert.equal(value('app:$TAG'), 'app:1.2.3');
  assert.equal(value('app:${TAG}'), 'app:1.2.3');
  assert.equal(value('${FOO}${TAG}'), 'first1.2.3');
  assert.equal(value('$FOO.bar'), 'first.bar');
  assert.equal(value('no variables'), 'no variables');
  // Without braces, Docker reads an operator and an argument up to } or the end.
  assert.equal(value('$FOO-bar'), 'first');
  assert.equal(value('$MISSING:-def and more'), 'def and more');
});

test('unset variables without default become empty and are reported', () => {
  const r = interpolateString('app:${APP_VERSION} $OTHER ${APP_VERSION}', env);
  assert.equal(r.value, 'app:  ');
  assert.deepEqual(r.unset, ['APP_VERSION', 'OTHER']);
  assert.deepEqual(r.errors, []);
  // Set but empty is not "unset": Docker substitutes it without a warning.
  assert.deepEqual(interpolateString('x${BAR}y', env), { value: 'xy', unset: [], errors: [] });
  // An explicit undefined in the map is unset.
  assert.deepEqual(interpolateString('${U}', { U: undefined }).unset, ['U']);
});

test('${VAR:-default} and ${VAR-default}', () => {
  assert.equal(value('${MISSING:-def}'), 'def');
  assert.equal(value('${MISSING-def}'), 'def');
  assert.equal(value('${BAR:-def}'), 'def', ':- applies to empty');
  assert.equal(value('${BAR-def}'), '', '- does not apply to empty');
  assert.equal(value('${FOO:-def}'), 'first');
  assert.equal(value('${FOO-def}'), 'first');
  assert.equal(value('${BAR:-/non:-alphanumeric}'), '/non:-alphanumeric');
  assert.equal(value('${MISSING-}'), '');
  assert.deepEqual(interpolateString('${MISSING:-x}', env).unset, [], 'a default is not an unset reference');
});

test('${VAR:?msg} and ${VAR?msg}', () => {
  assert.deepEqual(interpolateString('${MISSING:?set it}', env).errors, [
    'required variable MISSING is missing a value: set it',
  ]);
  assert.deepEqual(interpolateString('${BAR:?empty}', env).errors, ['required variable BAR is missing a value: empty']);
  assert.deepEqual(interpolateString('${MISSING?}', env).errors, ['required variable MISSING is missing a value']);
  assert.equal(value('${BAR?err}'), '', '? accepts an empty value');
  assert.equal(value('${FOO:?err}'), 'first');
  assert.equal(value('${MISSING-myerror?msg}'), 'myerror?msg', '- is looked for before ?');
  // Docker looks for `-` before `:?`: the message is cut there and no longer an error.
  assert.equal(value('${MISSING:?bar-baz}'), 'baz');
});

test('defaults are literal up to the first }: no nesting, no unescaping', () => {
  assert.equal(value('${MISSING:-$2y$05$abc}'), '$2y$05$abc');
  assert.equal(value('${MISSING:-a$$b}'), 'a$$b');
  assert.equal(value('${MISSING:-${FOO}}'), '${FOO}');
  assert.equal(value('${FOO:-${B:-x}}'), 'first}');
  assert.equal(value('${FOO:-{x}}'), 'first}');
  assert.equal(value('${MISSING:-a}-${FOO}-${MISSING:-b}'), 'a-first-b');
  assert.deepEqual(interpolateString('${MISSING:-${ALSO_MISSING}}', env).unset, [], 'a default is never interpolated');
});

test('$$ is a literal $; any other lone $ is invalid, unless a later reference is valid', () => {
  assert.equal(value('$${foo}'), '${foo}');
  assert.equal(value('$$HOME and $$$$'), '$HOME and $$');
  assert.equal(value('$$$FOO'), '$first');
  assert.deepEqual(interpolateString('$${NOT_SET}', env).unset, []);
  for (const s of ['a $ string', '^REGEX$', '$}', '$', 'costs 5$', '$1']) {
    assert.match(interpolateString(s, env).errors[0] ?? '', /invalid interpolation format/, s);
  }
  // Docker keeps the error of the last reference only.
  assert.equal(value('$ ${FOO}'), ' first');
  assert.equal(value('${MISSING:?x} $FOO'), ' first');
});

test('invalid syntax is an error', () => {
  for (const s of [
    '${',
    '${}',
    '${ }',
    '${ foo}',
    '${foo }',
    '${foo!}',
    'x ${FOO',
    '${FOO:-unclosed',
    '${1X}',
    '${FOO:+alt}',
    '${FOO+alt}',
  ]) {
    const r = interpolateString(s, env);
    assert.equal(r.errors.length, 1, `one error for ${JSON.stringify(s)}`);
    assert.match(r.errors[0], /invalid interpolation/);
  }
});

test('interpolateDetailed gives offsets', () => {
  const r = interpolateDetailed('a ${X} b $Y ${Z:?no}', {});
  assert.deepEqual(
    r.unset.map((u) => [u.name, u.offset, u.braced]),
    [
      ['X', 2, true],
      ['Y', 9, false],
    ],
  );
  assert.deepEqual(
    r.errors.map((e) => e.offset),
    [12],
  );
});

test('escapeDollars round-trips through interpolation', () => {
  for (const s of ['$HOME', '${X}', 'a $ b', '$$', 'plain', '${A:-{x}}']) {
    assert.equal(value(escapeDollars(s), {}), s);
  }
});
