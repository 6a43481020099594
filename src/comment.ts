/**
 * command: comment — one comment of the action per pull request, e.g. the preview's URL: found by a
 * hidden marker and updated in place, so later pushes do not pile up comments.
 */
import * as core from '@actions/core';
import type * as GitHub from '@actions/github';
import type { Outcome } from './commands';
import type { Inputs } from './inputs';

export const MARKER = '<!-- deploy-action:comment -->';

/** What the comment step needs of the GitHub API (the REST client, or a fake in the unit tests). */
export interface CommentApi {
  list(): Promise<{ id: number; body?: string | null }[]>;
  create(body: string): Promise<{ id: number; html_url?: string }>;
  update(id: number, body: string): Promise<{ id: number; html_url?: string }>;
}

/** Updates the comment carrying the marker, or creates it. */
export async function upsertComment(
  api: CommentApi,
  text: string,
): Promise<{ id: number; url: string; updated: boolean }> {
  const body = `${MARKER}\n${text}`;
  const mine = (await api.list()).find((c) => (c.body ?? '').startsWith(MARKER));
  const res = mine ? await api.update(mine.id, body) : await api.create(body);
  return { id: res.id, url: res.html_url ?? '', updated: !!mine };
}

/** The REST client of @actions/github: GITHUB_API_URL and GITHUB_REPOSITORY as the runner sets them. */
export function restApi(token: string, issue: number): CommentApi {
  // Loaded here, not at the top: the client is a large part of the bundle's load time, and only this
  // command needs it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const github = require('@actions/github') as typeof GitHub;
  const octokit = github.getOctokit(token);
  const { owner, repo } = github.context.repo;
  return {
    list: () => octokit.paginate(octokit.rest.issues.listComments, { owner, repo, issue_number: issue, per_page: 100 }),
    create: async (body) => (await octokit.rest.issues.createComment({ owner, repo, issue_number: issue, body })).data,
    update: async (id, body) => (await octokit.rest.issues.updateComment({ owner, repo, comment_id: id, body })).data,
  };
}

export async function commandComment(
  inputs: Inputs,
  api: CommentApi = restApi(inputs.githubToken, inputs.pullRequest),
): Promise<Outcome> {
  let done;
  try {
    done = await upsertComment(api, inputs.comment);
  } catch (e) {
    const err = e as Error & { status?: number };
    const hint =
      err.status === 403 || err.status === 401
        ? ' (does the job grant `pull-requests: write`, and is the token the job token of this repository?)'
        : '';
    throw new Error(`Could not comment on pull request #${inputs.pullRequest}: ${err.message}${hint}`);
  }
  const verb = done.updated ? 'Updated' : 'Posted';
  const link = done.url ? `: ${done.url}` : '';
  const note = `${verb} the comment on pull request #${inputs.pullRequest}${link}.`;
  core.info(note);
  return { result: 'commented', release: inputs.release, versions: {}, images: {}, layers: [], notes: [note] };
}
