"""manage.py of the live release, with what gunicorn has: the app's environment, the release's
settings module (the production overlay when it is on) and import path. Installed by django-vps in
root's directory for the app; run by bin/manage as the app user, from the live release:

    sudo django-vps-manage APP createsuperuser
"""

import runpy
import sys
from pathlib import Path

release = Path.cwd().resolve()
sys.path.insert(0, str(release))
import django_vps_wsgi  # noqa: E402  (the release's own copy, found through the line above)

facts = django_vps_wsgi.enter(release)
manage_py = release / facts["project_dir"] / "manage.py"
sys.argv = [str(manage_py), *sys.argv[1:]]
runpy.run_path(str(manage_py), run_name="__main__")
