#!/usr/bin/env bash
# Prepares the Django reference: a venv with Django 5.2, uWSGI and argon2-cffi from PyPI (kept between
# runs), a fresh SQLite database under STATE_DIR, and the user USERNAME / PASSWORD.
#
#   VENV=... STATE_DIR=... DJANGO_SECRET_KEY=... USERNAME=... PASSWORD=... setup.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
: "${VENV:?}" "${STATE_DIR:?}" "${DJANGO_SECRET_KEY:?}" "${USERNAME:?}" "${PASSWORD:?}"

# uWSGI has no wheels on PyPI: pip compiles it (gcc and the interpreter's headers, a minute or two).
if ! "$VENV/bin/python" -c 'import django, argon2; assert django.VERSION[:2] == (5, 2)' 2>/dev/null \
   || ! "$VENV/bin/uwsgi" --version >/dev/null 2>&1; then
  echo "== Django reference: installing Django 5.2, uWSGI and argon2-cffi into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'Django>=5.2,<5.3' uwsgi argon2-cffi
fi

rm -rf "$STATE_DIR"
mkdir -p "$STATE_DIR"
export DJANGO_STATE_DIR="$STATE_DIR"
cd "$HERE"
"$VENV/bin/python" manage.py migrate -v 0
"$VENV/bin/python" manage.py check --deploy --fail-level ERROR >/dev/null
BENCH_USERNAME="$USERNAME" BENCH_PASSWORD="$PASSWORD" "$VENV/bin/python" manage.py shell -v 0 -c '
import os
from django.contrib.auth.models import User
User.objects.create_user(os.environ["BENCH_USERNAME"], password=os.environ["BENCH_PASSWORD"])'
