#!/bin/bash
# sudo django-vps-manage APP COMMAND [ARGS...]: Django's manage.py for APP's live release, run as
# APP's user with the environment and settings gunicorn has. Installed by django-vps.
set -euo pipefail
app=${1:-}
if [[ ! $app =~ ^[a-z][a-z0-9_-]{0,31}$ ]] || [ ! -x "/opt/django-vps/$app/bin/manage" ]; then
    echo "usage: sudo django-vps-manage APP COMMAND [ARGS...], APP one of: $(cd /opt/django-vps 2>/dev/null && printf '%s ' *)" >&2
    exit 2
fi
shift
exec "/opt/django-vps/$app/bin/manage" "$@"
