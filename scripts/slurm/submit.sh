#!/usr/bin/env bash
# Submits an emobench edit as a Slurm array of N shards and, depending on it, the scoring and report
# job; prints "EDIT_JOB_ID SCORE_JOB_ID" on stdout.
#
#   scripts/slurm/submit.sh --work /shared/exp1 --sources /data/sources.csv [--tasks 4] \
#       [--emobench /path/to/emobench] [--sbatch-arg --partition=gpu]... [--score-arg ARG]... \
#       -- --method ct --references /data/references.csv [EDIT ARGS]
#
# Everything after -- goes to `emobench edit` (--out and --shard are set here); --score-arg
# arguments go to `emobench score` (e.g. --score-arg=--predictor --score-arg=/w/emo_predictor.pt);
# --sbatch-arg arguments go to both sbatch calls (partition, account, time, --gres=gpu:1). The jobs
# run inside WORK, so paths after -- and in --score-arg must be absolute.
# Results: WORK/runs (edits), WORK/scores (Table 1 etc.), WORK/site (report), WORK/logs.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
}

tasks=4
work=
sources=
emobench=${EMOBENCH:-emobench}
sbatch_args=()
score_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --work) work=${2:?--work needs a folder}; shift 2 ;;
    --work=*) work=${1#*=}; shift ;;
    --sources) sources=${2:?--sources needs a file}; shift 2 ;;
    --sources=*) sources=${1#*=}; shift ;;
    --tasks) tasks=${2:?--tasks needs a number}; shift 2 ;;
    --tasks=*) tasks=${1#*=}; shift ;;
    --emobench) emobench=${2:?--emobench needs a path}; shift 2 ;;
    --emobench=*) emobench=${1#*=}; shift ;;
    --sbatch-arg) sbatch_args+=("${2:?--sbatch-arg needs a value}"); shift 2 ;;
    --sbatch-arg=*) sbatch_args+=("${1#*=}"); shift ;;
    --score-arg) score_args+=("${2:?--score-arg needs a value}"); shift 2 ;;
    --score-arg=*) score_args+=("${1#*=}"); shift ;;
    --) shift; break ;;
    -h | --help) usage ;;
    *) echo "submit.sh: unknown option '$1' (edit arguments go after --)" >&2; exit 2 ;;
  esac
done
[ -n "$work" ] || { echo "submit.sh: --work FOLDER is required (on a filesystem all nodes see)" >&2; exit 2; }
[ -n "$sources" ] || { echo "submit.sh: --sources FILE is required" >&2; exit 2; }
[ -f "$sources" ] || { echo "submit.sh: --sources '$sources': no such file" >&2; exit 2; }
case $tasks in
  '' | *[!0-9]* | 0) echo "submit.sh: --tasks '$tasks': expected a positive integer" >&2; exit 2 ;;
esac
[ $# -gt 0 ] || { echo "submit.sh: no edit arguments after -- (at least --method NAME)" >&2; exit 2; }

mkdir -p "$work/logs"
work=$(cd "$work" && pwd)
sources=$(cd "$(dirname "$sources")" && pwd)/$(basename "$sources")
# The jobs run on other nodes with a copy of this environment; the binary must be a path they see.
if [[ $emobench == */* ]]; then
  emobench=$(cd "$(dirname "$emobench")" && pwd)/$(basename "$emobench")
fi

# --parsable prints "id" or "id;cluster".
edit_id=$(sbatch --parsable --export="ALL,EMOBENCH=$emobench" "${sbatch_args[@]}" \
  --array="0-$((tasks - 1))" --output="$work/logs/edit-%A_%a.out" \
  "$here/edit-array.sbatch" "$work" --sources "$sources" "$@")
edit_id=${edit_id%%;*}
# afterok on an array job waits for every task; a failed task cancels the scoring job instead of
# leaving it pending for ever.
score_id=$(sbatch --parsable --export="ALL,EMOBENCH=$emobench" "${sbatch_args[@]}" \
  --dependency="afterok:$edit_id" --kill-on-invalid-dep=yes --output="$work/logs/score-%j.out" \
  "$here/score-report.sbatch" "$work" --sources "$sources" "${score_args[@]}")
score_id=${score_id%%;*}
echo "submit.sh: edit array $edit_id ($tasks tasks), score and report $score_id (after it); logs in $work/logs" >&2
echo "$edit_id $score_id"
