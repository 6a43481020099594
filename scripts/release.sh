#!/usr/bin/env bash
# Release tags of glasck/deploy-action.
#
#   scripts/release.sh stamp vX.Y.Z       a maintainer, on the commit to release, before publishing
#   scripts/release.sh move-major vX.Y.Z  .github/workflows/release.yml, once the release is published
#
# A reusable workflow cannot see the ref it was called at, so the workflows on
# a branch run the action at the moving major tag (`glasck/deploy-action@v1`).
# `stamp` tags a new commit on top of HEAD (no branch moves) whose workflows
# run the action at HEAD's exact commit instead, so a caller pinned to the tag
# or to its commit gets the action it was released with. `move-major` moves
# `vX` to a published release only when its tag is stamped and is the highest
# `vX.Y.Z` (a backport leaves `vX` alone).
set -euo pipefail

OWN=glasck/deploy-action
WORKFLOWS=.github/workflows
NUM='(0|[1-9][0-9]*)'
RELEASE_RE="^v${NUM}\.${NUM}\.${NUM}\$"
PRERELEASE_RE="^v${NUM}\.${NUM}\.${NUM}-[0-9A-Za-z.-]+\$"
# A step that runs this action; the stamp replaces only these lines.
USES_RE="^([[:space:]]*(- )?uses:[[:space:]]*)${OWN}@"
# The ref of a stamped line; a backport branch made from a release tag has them.
STAMPED_RE='[0-9a-f]{40}[[:space:]]+#[[:space:]]*[^[:space:]]+[[:space:]]*'

die() {
  echo "::error::$*" >&2
  exit 1
}

usage() {
  echo "usage: $0 stamp|move-major vX.Y.Z" >&2
  exit 2
}

# The workflow files of a commit, one per line.
workflow_files() {
  git ls-tree --name-only "$1" -- "$WORKFLOWS/" | grep -E '\.ya?ml$' || true
}

stamp() {
  local tag=$1
  [[ $tag =~ $RELEASE_RE || $tag =~ $PRERELEASE_RE ]] || die "$tag is not vX.Y.Z or vX.Y.Z-prerelease"
  local major="v${BASH_REMATCH[1]}"
  git diff --quiet HEAD -- || die "there are uncommitted changes; stamp a committed state"
  if git rev-parse -q --verify "refs/tags/$tag" >/dev/null; then die "tag $tag exists"; fi
  local base
  base=$(git rev-parse 'HEAD^{commit}')

  # A private index: the work tree, the index and the branch stay as they are.
  local index
  index=$(mktemp)
  trap "rm -f '$index'" EXIT
  GIT_INDEX_FILE=$index git read-tree "$base"
  local file mode old new stamped=0
  while IFS= read -r file; do
    [ -n "$file" ] || continue
    mode=$(git ls-tree "$base" -- "$file" | cut -d' ' -f1)
    old=$(git rev-parse "$base:$file")
    new=$(git cat-file blob "$base:$file" |
      sed -E "s~${USES_RE}(${major}[[:space:]]*|${STAMPED_RE})\$~\\1${OWN}@${base} # ${tag}~" |
      git hash-object -w --stdin)
    [ "$new" != "$old" ] || continue
    GIT_INDEX_FILE=$index git update-index --cacheinfo "$mode,$new,$file"
    stamped=$((stamped + 1))
  done < <(workflow_files "$base")
  [ "$stamped" -gt 0 ] || die "no workflow in $WORKFLOWS runs ${OWN}@${major} (or a stamped commit)"
  local tree commit
  tree=$(GIT_INDEX_FILE=$index git write-tree)
  commit=$(git commit-tree "$tree" -p "$base" -m "Release $tag: the workflows run ${OWN}@${base}")
  # A workflow left at another ref (@main, another major) would defeat the stamp.
  check_stamp "$tag" "$commit"
  git tag -a "$tag" -m "$tag" "$commit"
  echo "Tagged $tag: $commit, whose workflows run ${OWN}@${base} (HEAD, unchanged)."
  echo "Next: git push origin refs/tags/$tag, then publish the release of the existing tag $tag."
}

# The tag's workflows must all run the action at one commit that is an
# ancestor of the tag and differs from it only in $WORKFLOWS: the action the
# workflows run is then the action released under the tag.
check_stamp() {
  local tag=$1 commit=$2 file line sha='' uses=0
  while IFS= read -r file; do
    [ -n "$file" ] || continue
    while IFS= read -r line; do
      [[ $line =~ ${USES_RE}([0-9a-f]{40})[[:space:]]+#[[:space:]]*([^[:space:]]+)[[:space:]]*$ ]] ||
        die "$tag is not stamped: $file has \"${line#"${line%%[![:space:]]*}"}\" (scripts/release.sh stamp makes release tags)"
      [ "${BASH_REMATCH[4]}" = "$tag" ] || die "$tag: $file is stamped for ${BASH_REMATCH[4]}"
      [ -z "$sha" ] || [ "$sha" = "${BASH_REMATCH[3]}" ] || die "$tag: the workflows name two commits, $sha and ${BASH_REMATCH[3]}"
      sha=${BASH_REMATCH[3]}
      uses=$((uses + 1))
    done < <(git cat-file blob "$commit:$file" | grep -E "${USES_RE}" || true)
  done < <(workflow_files "$commit")
  [ "$uses" -gt 0 ] || die "$tag: no workflow runs $OWN"
  git cat-file -e "$sha^{commit}" 2>/dev/null || die "$tag: the workflows name $sha, which is not in this repository"
  git merge-base --is-ancestor "$sha" "$commit" || die "$tag: the workflows name $sha, which is not an ancestor of the tag"
  git diff --quiet "$sha" "$commit" -- . ":(exclude)$WORKFLOWS" ||
    die "$tag: the workflows name $sha, whose files outside $WORKFLOWS differ from the tag's"
}

move_major() {
  local tag=$1
  if [[ ! $tag =~ $RELEASE_RE ]]; then
    echo "::notice::$tag is not vX.Y.Z; the major tag is left alone."
    return 0
  fi
  local major="v${BASH_REMATCH[1]}"
  local commit
  commit=$(git rev-parse "refs/tags/${tag}^{commit}")
  git cat-file -e "$commit:dist/index.js" 2>/dev/null ||
    die "$tag has no dist/index.js; users of @$major would get a broken action."
  check_stamp "$tag" "$commit"

  # What origin has now, not the tags fetched at checkout. For an annotated
  # tag, the peeled line (^{}) names the commit.
  local remote
  remote=$(git ls-remote --tags origin)
  local published
  published=$(awk -v t="refs/tags/$tag" '$2 == t && !c { c = $1 } $2 == t "^{}" { p = $1 } END { print p ? p : c }' <<<"$remote")
  [ "$published" = "$commit" ] || die "origin's $tag is ${published:-missing}, not the checked-out $commit"
  # Only vX.Y.Z without leading zeros gets here, where sort -V orders as semver does.
  local highest
  highest=$(sed -nE "s#^[0-9a-f]+[[:space:]]+refs/tags/(${major}\.${NUM}\.${NUM})\$#\1#p" <<<"$remote" | LC_ALL=C sort -V | tail -n 1)
  if [ "$highest" != "$tag" ]; then
    echo "::notice::$tag is not the highest $major.x.y ($highest is); $major is left alone."
    [ -z "${GITHUB_STEP_SUMMARY:-}" ] || echo "$major left at $highest ($tag is lower)." >>"$GITHUB_STEP_SUMMARY"
    return 0
  fi
  git tag --force "$major" "$commit"
  git push --force origin "refs/tags/$major"
  echo "Moved $major to $commit ($tag)."
  [ -z "${GITHUB_STEP_SUMMARY:-}" ] || echo "Moved $major to $commit ($tag)." >>"$GITHUB_STEP_SUMMARY"
}

[ $# -eq 2 ] || usage
cd "$(git rev-parse --show-toplevel)"
case $1 in
  stamp) stamp "$2" ;;
  move-major) move_major "$2" ;;
  *) usage ;;
esac
