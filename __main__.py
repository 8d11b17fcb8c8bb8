"""django-vps: a Django project from GitHub in production on a Hetzner Cloud server."""

import pulumi

from components.settings import load_settings
from components.site import DjangoSite

settings = load_settings()
site = DjangoSite(settings.app_name, settings)
for output_name, value in site.outputs.items():
    pulumi.export(output_name, value)
