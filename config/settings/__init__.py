"""agentdeck settings: every value comes from the environment (see .env.example).

Production differs from ``make run`` only by environment variables. ``ENVIRONMENT=production``
turns the development conveniences off and makes the secrets mandatory, failing at start-up with
the variable's name. The parts, each importing what it uses from the others: ``base``
(environment, hosts, apps), ``database`` (database, cache, queue, channel layer), ``identity``,
``api``, ``web`` (static files, security), ``logs`` and ``runtime`` (runs, realtime, files).
"""

from config.settings.api import *  # noqa: F403
from config.settings.base import *  # noqa: F403
from config.settings.database import *  # noqa: F403
from config.settings.identity import *  # noqa: F403
from config.settings.logs import *  # noqa: F403
from config.settings.runtime import *  # noqa: F403
from config.settings.web import *  # noqa: F403
