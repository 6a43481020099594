import * as core from '@actions/core';
import * as http from 'http';
import { Duplex } from 'stream';

/** A connection to the host's Docker Engine API and the host's clock read when it opened. */
export interface Dialed {
  stream: Duplex;
  /** Host clock minus runner clock (ms), measured as the connection opened (or before: unchanged). */
  offsetMs?: number;
  /** What the far end said on its error stream, for the message when the connection breaks. */
  stderr: () => string;
}

/** The host's Docker Engine API, for the reads the gate repeats (unit tests give a fake). */
export interface Engine {
  /** GETs an Engine API path and returns its JSON; a refusal or a lost connection throws. */
  get(path: string, timeoutMs: number): Promise<unknown>;
  /** The host's clock now (ms), from the offset measured when the connection opened. */
  hostNow(): number;
  /** Requests sent so far (the benchmark's count). */
  readonly requests: number;
  close(): void;
}

/** The command that opens the connection: the host's clock, then the Engine API on stdin/stdout. */
export const DIAL_COMMAND = 'date +%s%3N && exec docker system dial-stdio';

/**
 * HTTP/1.1 over one connection that stays open (the engine's socket forwarded by sshd, or `docker
 * system dial-stdio` on the host): a poll costs two requests and no process on the host. A docker
 * CLI started per poll cost ~70 ms of the host's CPU each, four to eight times a second.
 */
export class EngineApi implements Engine {
  requests = 0;
  private offsetMs = 0;
  private agent: ChannelAgent;
  private tail: Promise<unknown> = Promise.resolve();
  /** How to fail each request in flight, for `drop`. */
  private readonly inFlight = new Set<(e: Error) => void>();

  /** `where` names the host in the debug log, which lists every request with its duration. */
  constructor(
    private readonly dial: () => Promise<Dialed>,
    private readonly where = 'host',
  ) {
    this.agent = this.newAgent();
  }

  private newAgent(): ChannelAgent {
    return new ChannelAgent(async () => {
      const d = await this.dial();
      if (d.offsetMs !== undefined) this.offsetMs = d.offsetMs;
      return d;
    });
  }

  /**
   * The connection under the stream is gone (SSH closed): fail the requests in flight now, and start
   * afresh. A channel of a dead SSH connection neither answers nor closes.
   */
  drop(why: Error): void {
    for (const fail of [...this.inFlight]) fail(why);
    this.agent.destroy();
    this.agent = this.newAgent();
  }

  /** The host's clock as measured elsewhere (the host's shell). */
  setOffset(ms: number): void {
    this.offsetMs = ms;
  }

  hostNow(): number {
    return Date.now() + this.offsetMs;
  }

  get(path: string, timeoutMs: number): Promise<unknown> {
    this.requests++;
    // One request at a time. The agent counts a connection only once its dial answered: requests
    // sent at once would each open their own, and one connection is what the gate keeps and drops.
    // Its bound counts from now, waiting included, as the agent's own queue had it.
    const until = Date.now() + timeoutMs;
    const sent = this.tail.then(() => this.timed(path, Math.max(0, until - Date.now()), timeoutMs));
    this.tail = sent.catch(() => undefined);
    return sent;
  }

  private timed(path: string, timeoutMs: number, boundMs: number): Promise<unknown> {
    if (!core.isDebug()) return this.request(path, timeoutMs, boundMs);
    const t0 = Date.now();
    const done = (end: string) =>
      core.debug(`${this.where} Engine API GET ${path.split('?')[0]} → ${end} (${Date.now() - t0} ms)`);
    return this.request(path, timeoutMs, boundMs).then(
      (body) => (done('ok'), body),
      (e: Error) => {
        done('error');
        throw e;
      },
    );
  }

  private request(path: string, timeoutMs: number, boundMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (f: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.inFlight.delete(abort);
        f();
      };
      const abort = (e: Error) => {
        settle(() => reject(e));
        req.socket?.emit('agentRemove');
        req.destroy(e);
      };
      const req = http.request({ agent: this.agent, host: 'docker', path, method: 'GET' }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('error', (e) => settle(() => reject(e)));
        res.on('end', () =>
          settle(() => {
            try {
              resolve(answer(res.statusCode ?? 0, body, path));
            } catch (e) {
              reject(e);
            }
          }),
        );
      });
      // A wedged engine: fail now, and take the connection out of the pool. Its close can wait for
      // ever (sshd confirms it once dial-stdio exits), so neither the answer nor the next request waits on it.
      const timer = setTimeout(() => {
        const err = new Error(
          `the engine did not answer within ${Math.round(boundMs / 1000)} s (GET ${path.split('?')[0]})`,
        );
        abort(this.agent.explain(err));
      }, timeoutMs);
      this.inFlight.add(abort);
      req.on('error', (e: Error) => settle(() => reject(this.agent.explain(e))));
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function answer(status: number, body: string, path: string): unknown {
  if (status !== 200) {
    let message = body;
    try {
      message = (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      // not JSON: keep the text
    }
    throw new Error(`the engine refused ${path.split('?')[0]} (HTTP ${status}): ${message.trim().slice(0, 300)}`);
  }
  return JSON.parse(body);
}

/** Node's keep-alive agent over our one stream: at most one connection, opened again when it broke. */
class ChannelAgent extends http.Agent {
  private lastStderr = () => '';

  constructor(private readonly dial: () => Promise<Dialed>) {
    super({ keepAlive: true, maxSockets: 1 });
  }

  override createConnection(_opts: unknown, cb: (err: Error | null, s?: Duplex) => void): undefined {
    this.dial().then(
      (d) => {
        this.lastStderr = d.stderr;
        // What a net.Socket has and a channel has not: the agent calls them on a kept-alive socket.
        Object.assign(d.stream, { ref() {}, unref() {}, setKeepAlive() {}, setTimeout() {}, setNoDelay() {} });
        cb(null, d.stream);
      },
      (e: Error) => cb(e),
    );
    return undefined;
  }

  override keepSocketAlive(): boolean {
    return true;
  }

  /** "socket hang up" says little: the far end's own words when it printed any. */
  explain(e: Error): Error {
    const said = this.lastStderr().trim().split('\n').slice(-3).join(' ');
    return said && !e.message.includes(said) ? new Error(`${e.message} (${said.slice(0, 300)})`) : e;
  }
}

/** Reads the stream's first line and puts back what came after it. */
export function firstLine(stream: Duplex): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const done = (err?: Error) => {
      stream.off('readable', onReadable);
      stream.off('close', onClose);
      if (err) return reject(err);
      const nl = buf.indexOf(10);
      if (nl + 1 < buf.length) stream.unshift(buf.subarray(nl + 1));
      resolve(buf.subarray(0, nl).toString('utf8').trim());
    };
    const onClose = () => done(new Error('the connection closed before the host answered'));
    const onReadable = () => {
      let chunk: Buffer | null;
      while ((chunk = stream.read() as Buffer | null) !== null) {
        buf = Buffer.concat([buf, chunk]);
        if (buf.includes(10)) return done();
      }
    };
    stream.on('readable', onReadable);
    stream.on('close', onClose);
  });
}
