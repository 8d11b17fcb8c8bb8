"""django-vps components: settings, rendering, and the Pulumi components that compose a site."""
