"""Runs one of the app's processes (the `processes` setting) in the live release, with the app's
environment and settings, as gunicorn's workers have them. Installed by django-vps in root's
directory for the app; started by supervisor through bin/run-process, as the app user, from the
live release:

    django_vps_exec.py PROCESSES_JSON NAME

The commands are root's file (PROCESSES_JSON: name -> argv); `$NAME` and `${NAME}` in them are the
app's environment variables (as a Procfile's shell would expand them), and no shell runs them.
"""

import json
import os
import sys
from pathlib import Path

release = Path.cwd().resolve()
sys.path.insert(0, str(release))
import django_vps_wsgi  # noqa: E402  (the release's own copy, found through the line above)

facts = django_vps_wsgi.enter(release)
argv = [os.path.expandvars(word) for word in json.loads(Path(sys.argv[1]).read_text())[sys.argv[2]]]
project = release / facts["project_dir"]
venv = release / ".venv"
os.environ.update(
    VIRTUAL_ENV=str(venv),
    PATH=f"{venv}/bin:{os.environ.get('PATH', '/usr/bin:/bin')}",
    # The project's packages and the overlay, for commands that import them (celery -A main).
    PYTHONPATH=os.pathsep.join([str(project), str(release)]),
)
os.chdir(project)
os.execvp(argv[0], argv)
