"""gunicorn's entry: summon_platform.wsgi:application (pkg/children/web.go)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "summon_platform.settings")

application = get_wsgi_application()
