// The proxy-lab fixture shared by the verify and hooks tests: a site behind an nc proxy that routes by
// Host, published in host mode on a free port (the lab has no routing mesh).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { ActionRun, runAction } from '../helpers/action';
import { LabEnv, labInputs, tempDir } from '../helpers/lab';

const FIXTURE = path.resolve(__dirname, '..', 'fixtures', 'proxy-lab');

/** A port nothing listens on now, for the proxy's host-mode publish. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
    s.on('error', reject);
  });
}

export interface ProxyLab {
  lab: LabEnv;
  name: string;
  remoteDir: string;
  port: number;
  extra?: Record<string, string>;
}

/** Inputs for the two layers `<name>-infra` (proxy) and `<name>-app` (site). */
export function proxyLabInputs(p: ProxyLab): Record<string, string> {
  return {
    ...labInputs(p.lab, p.name, p.remoteDir),
    stacks: `${p.name}-infra=stacks/infra.yml\n${p.name}-app=stacks/app.yml`,
    env: `SITE_HOST=site.example\nAPP_STACK=${p.name}-app\nPROXY_PORT=${p.port}\nNETWORK=${p.name}_edge`,
    stability: '2',
    'lock-timeout': '120',
    ...p.extra,
  };
}

/** Builds the site at `version` in `mode` (ok, bad-version) from a copy of the fixture, then deploys it. */
export async function proxyLabRelease(
  p: ProxyLab,
  version: string,
  mode: string,
  deploy: Record<string, string>,
): Promise<ActionRun> {
  const dir = tempDir('proxy-lab-');
  fs.cpSync(FIXTURE, dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'service', 'site', 'VERSION'), `${version}\n`);
  fs.writeFileSync(path.join(dir, 'service', 'site', 'MODE'), `${mode}\n`);
  try {
    const build = await runAction({ inputs: { ...proxyLabInputs(p), command: 'build' }, cwd: dir });
    assert.equal(build.code, 0, build.maskedLog.slice(-3000));
    return await runAction({
      inputs: { ...proxyLabInputs(p), command: 'deploy', release: version, ...deploy },
      cwd: dir,
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
