#!/bin/sh
# Entry point of the service images; SERVICE_CLI (set per image) names the service's
# command line: api-studio, universal-webhook or clockify-addon.
#
#   docker run IMAGE                  the image's CMD: gunicorn with uvicorn workers
#   docker run IMAGE migrate          apply the migrations and exit (a Kubernetes Job, say)
#   docker run IMAGE worker           inbox and job workers without HTTP
#   docker run IMAGE show-config      the effective settings, secrets masked
#   docker run IMAGE sh               anything else runs as given
#
# Every process applies the migrations at startup under a lock unless
# {PREFIX}RUN_MIGRATIONS=false. MIGRATE_ON_START=true also applies them here, once,
# before the command: a failed migration then stops the container before it serves.
set -eu

case "${1:-}" in
  migrate | worker | serve | show-config | --help)
    exec "${SERVICE_CLI:?SERVICE_CLI names the service command}" "$@"
    ;;
esac

case "${MIGRATE_ON_START:-false}" in
  1 | true | TRUE | True | yes)
    "${SERVICE_CLI:?SERVICE_CLI names the service command}" migrate
    ;;
esac

exec "$@"
