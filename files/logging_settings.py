"""The seed's production logging block, ready to include in a Django settings module.

django-vps writes LOGS_DIR, LOG_FILENAME, LOG_SIZE (MB), LOG_ROTATE and LOG_LEVEL into the app's
.env file; python-decouple reads them. Use it at the end of main/settings.py:

    from decouple import config          # already there if your settings use decouple
    exec((BASE_DIR / "logging_settings.py").read_text())   # or paste this block in

It expects DEBUG, BASE_DIR and PROJECT_NAME to be defined, as in the seed. With DEBUG on it does
nothing, so development keeps logging to the console.
"""

from pathlib import Path

from decouple import config

if not DEBUG:  # type: ignore[name-defined]  # noqa: F821
    LOG_DIR = config("LOGS_DIR", default=BASE_DIR / "logs", cast=Path)  # type: ignore[name-defined]  # noqa: F821
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    LOG_FILENAME = config("LOG_FILENAME", default=f"{PROJECT_NAME}.log")  # type: ignore[name-defined]  # noqa: F821
    LOG_PATH = LOG_DIR / LOG_FILENAME
    LOG_SIZE = config("LOG_SIZE", default=2, cast=int) * 1024 * 1024
    LOG_ROTATE = config("LOG_ROTATE", default=3, cast=int)
    LOG_LEVEL = config("LOG_LEVEL", default="ERROR")
    LOGGING = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "file": {
                "formatter": "verbose",
                "class": "logging.handlers.RotatingFileHandler",
                "level": LOG_LEVEL,
                "filename": LOG_PATH,
                "maxBytes": LOG_SIZE,
                "backupCount": LOG_ROTATE,
            },
        },
        "formatters": {
            "verbose": {
                "format": "%(levelname)s %(asctime)s %(module)s %(message)s",
                "datefmt": "%d/%m/%Y %H:%M:%S",
            },
        },
        "loggers": {
            "django": {
                "handlers": ["file"],
                "level": LOG_LEVEL,
                "propagate": True,
            },
        },
    }
