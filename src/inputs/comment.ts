import * as fs from 'fs';
import { InputError } from '../errors';
import { Command, Get } from './values';

/** What command `comment` posts, and where. */
export interface CommentInputs {
  /** Markdown of the pull request comment (command comment). */
  comment: string;
  /** The pull request to comment on (command comment); 0 when not given and not a pull_request event. */
  pullRequest: number;
  /** Token for the GitHub API (command comment; masked). */
  githubToken: string;
}

export function readComment(get: Get, command: Command, env: NodeJS.ProcessEnv): CommentInputs {
  const comment = get('comment').trim();
  const pullRequest = pullRequestNumber(get('pull-request'), env);
  const githubToken = get('github-token').trim();
  if (command === 'comment') {
    if (!comment)
      throw new InputError(
        'Input `comment` is required for command comment: the Markdown to post on the pull request.',
      );
    if (!pullRequest)
      throw new InputError(
        'Input `pull-request` is required for command comment outside a pull_request event: ' +
          'the number of the pull request.',
      );
    if (!githubToken)
      throw new InputError(
        'Input `github-token` is required for command comment ' +
          '(e.g. the job token `github.token`, with `pull-requests: write`).',
      );
  }
  return { comment, pullRequest, githubToken };
}

/** `pull-request`: a number, or the pull request of a pull_request event (GITHUB_EVENT_PATH). */
function pullRequestNumber(raw: string, env: NodeJS.ProcessEnv): number {
  const v = raw.trim();
  if (v) {
    if (!/^[1-9]\d{0,9}$/.test(v))
      throw new InputError(`Input \`pull-request\` must be a pull request number, got "${v.slice(0, 40)}".`);
    return Number(v);
  }
  try {
    const event = JSON.parse(fs.readFileSync(env.GITHUB_EVENT_PATH ?? '', 'utf8')) as {
      pull_request?: { number?: unknown };
    };
    return typeof event.pull_request?.number === 'number' ? event.pull_request.number : 0;
  } catch {
    return 0;
  }
}
